"""Strategic merge patch on built-in kinds, with patches shaped like kubectl's.

``kubectl apply`` (client-side) sends a three-way patch: changed fields, ``null`` for
fields dropped from the manifest, ``$setElementOrder`` for every merged list it touches,
``$patch: delete`` elements and ``$deleteFromPrimitiveList`` for removed list members,
``$retainKeys`` for union types. ``kubectl edit``/``patch`` send two-way patches.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kplane.apimachinery.builtin_schemas import GroupVersionKind, type_node
from kplane.apimachinery.errors import StatusError
from kplane.apimachinery.strategic import apply_strategic_merge_patch
from kplane.apimachinery.typeinfo import TypeNode

RBAC = "rbac.authorization.k8s.io"


def schema(group: str, version: str, kind: str) -> TypeNode:
    node = type_node(GroupVersionKind(group, version, kind))
    assert node is not None
    return node


CONFIG_MAP = schema("", "v1", "ConfigMap")
NAMESPACE = schema("", "v1", "Namespace")
SERVICE_ACCOUNT = schema("", "v1", "ServiceAccount")
SERVICE = schema("", "v1", "Service")
ROLE_BINDING = schema(RBAC, "v1", "RoleBinding")
CLUSTER_ROLE = schema(RBAC, "v1", "ClusterRole")
DEPLOYMENT = schema("apps", "v1", "Deployment")
CRD = schema("apiextensions.k8s.io", "v1", "CustomResourceDefinition")


def patched(obj: dict[str, Any], patch: Any, node: TypeNode | None) -> dict[str, Any]:
    """Apply, and check on the way that neither input was touched."""
    obj_before, patch_before = copy.deepcopy(obj), copy.deepcopy(patch)
    result = apply_strategic_merge_patch(obj, patch, node)
    assert obj == obj_before
    assert patch == patch_before
    return result


def rejected(obj: dict[str, Any], patch: Any, node: TypeNode | None) -> StatusError:
    with pytest.raises(StatusError) as caught:
        apply_strategic_merge_patch(obj, patch, node)
    return caught.value


def names(items: list[dict[str, Any]], key: str = "name") -> list[Any]:
    return [item[key] for item in items]


# ConfigMap and metadata.


def config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "settings",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"owner": "team-a"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "data": {"mode": "fast", "level": "3"},
    }


def test_kubectl_apply_on_config_map_changes_and_drops_keys() -> None:
    patch = {
        "data": {"level": None, "mode": "slow", "new": "1"},
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
            "labels": {"tier": None},
        },
    }
    result = patched(config_map(), patch, CONFIG_MAP)
    assert result["data"] == {"mode": "slow", "new": "1"}
    assert result["metadata"]["labels"] == {"app": "web"}
    assert result["metadata"]["annotations"] == {
        "owner": "team-a",
        "kubectl.kubernetes.io/last-applied-configuration": "{}\n",
    }
    assert result["metadata"]["name"] == "settings"


def test_null_for_absent_key_is_ignored_and_nested_nulls_of_new_maps_dropped() -> None:
    result = patched(
        config_map(), {"binaryData": None, "metadata": {"ownerReferences": None,
                                                        "x": {"y": None, "z": 1}}},
        CONFIG_MAP,
    )
    assert "binaryData" not in result
    assert "ownerReferences" not in result["metadata"]
    assert result["metadata"]["x"] == {"z": 1}


def test_finalizers_are_a_union_and_new_values_come_first() -> None:
    result = patched(config_map(), {"metadata": {"finalizers": ["example.com/c",
                                                               "example.com/a"]}}, CONFIG_MAP)
    # "a" is live and named again; "b" only live; "c" new. Upstream puts patch items in
    # patch order, then live-only items, except where the live list ranks one earlier.
    assert result["metadata"]["finalizers"] == ["example.com/c", "example.com/a",
                                                "example.com/b"]


def test_finalizers_keep_live_order_for_existing_values() -> None:
    obj = config_map()
    obj["metadata"]["finalizers"] = ["a", "b", "c"]
    result = patched(obj, {"metadata": {"finalizers": ["c", "a"]}}, CONFIG_MAP)
    assert result["metadata"]["finalizers"] == ["b", "c", "a"]


def test_delete_from_primitive_list_removes_values() -> None:
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a", "nope"]}}
    result = patched(config_map(), patch, CONFIG_MAP)
    assert result["metadata"]["finalizers"] == ["example.com/b"]


def test_delete_from_primitive_list_of_absent_list_adds_nothing() -> None:
    obj = config_map()
    del obj["metadata"]["finalizers"]
    result = patched(obj, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}},
                     CONFIG_MAP)
    assert "finalizers" not in result["metadata"]


def test_kubectl_apply_adds_and_removes_finalizers_in_manifest_order() -> None:
    obj = config_map()
    obj["metadata"]["finalizers"] = ["a", "b", "x"]  # "x" added by a controller
    patch = {"metadata": {
        "$setElementOrder/finalizers": ["a", "c"],
        "$deleteFromPrimitiveList/finalizers": ["b"],
        "finalizers": ["c"],
    }}
    assert patched(obj, patch, CONFIG_MAP)["metadata"]["finalizers"] == ["a", "c", "x"]


def test_set_element_order_alone_reorders_a_primitive_list() -> None:
    obj = config_map()
    obj["metadata"]["finalizers"] = ["a", "b", "c"]
    patch = {"metadata": {"$setElementOrder/finalizers": ["c", "z", "a"]}}
    # "c" and "a" follow the order list; "b" is not named and stood before "c" live.
    assert patched(obj, patch, CONFIG_MAP)["metadata"]["finalizers"] == ["b", "c", "a"]


def owner(uid: str, name: str, controller: bool = False) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid,
            "controller": controller}


def test_owner_references_merge_by_uid() -> None:
    obj = config_map()
    obj["metadata"]["ownerReferences"] = [owner("u1", "one"), owner("u2", "two")]
    patch = {"metadata": {"ownerReferences": [
        {"uid": "u2", "controller": True, "blockOwnerDeletion": True},
        owner("u3", "three"),
    ]}}
    refs = patched(obj, patch, CONFIG_MAP)["metadata"]["ownerReferences"]
    assert names(refs, "uid") == ["u1", "u2", "u3"]
    assert refs[1] == {**owner("u2", "two"), "controller": True, "blockOwnerDeletion": True}
    assert refs[2] == owner("u3", "three")


def test_owner_reference_new_uid_goes_first_without_an_order() -> None:
    obj = config_map()
    obj["metadata"]["ownerReferences"] = [owner("u1", "one")]
    patch = {"metadata": {"ownerReferences": [owner("u9", "nine")]}}
    refs = patched(obj, patch, CONFIG_MAP)["metadata"]["ownerReferences"]
    assert names(refs, "uid") == ["u9", "u1"]


def test_owner_reference_delete_directive() -> None:
    obj = config_map()
    obj["metadata"]["ownerReferences"] = [owner("u1", "one"), owner("u2", "two")]
    patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "u1"}]}}
    refs = patched(obj, patch, CONFIG_MAP)["metadata"]["ownerReferences"]
    assert refs == [owner("u2", "two")]


def test_labels_map_can_be_replaced_or_deleted() -> None:
    replaced = patched(config_map(), {"metadata": {"labels": {"$patch": "replace", "only": "me"}}},
                       CONFIG_MAP)
    assert replaced["metadata"]["labels"] == {"only": "me"}
    deleted = patched(config_map(), {"metadata": {"labels": {"$patch": "delete"}}}, CONFIG_MAP)
    assert "labels" not in deleted["metadata"]
    assert deleted["metadata"]["annotations"] == {"owner": "team-a"}


def test_replace_directive_at_top_level_replaces_the_object() -> None:
    patch = {"$patch": "replace", "apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "settings"}, "data": {"only": "this"}}
    result = patched(config_map(), patch, CONFIG_MAP)
    assert result == {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "settings"}, "data": {"only": "this"}}


def test_result_shares_nothing_with_the_patch() -> None:
    patch: dict[str, Any] = {
        "metadata": {"labels": {"new": "1"}, "ownerReferences": [owner("u1", "one")]},
        "data": {"x": "y"},
    }
    result = apply_strategic_merge_patch(config_map(), patch, CONFIG_MAP)
    result["metadata"]["ownerReferences"][0]["name"] = "changed"
    result["metadata"]["labels"]["more"] = "2"
    assert patch["metadata"]["ownerReferences"][0]["name"] == "one"
    assert patch["metadata"]["labels"] == {"new": "1"}


# Namespaces, service accounts, RBAC.


def test_namespace_spec_finalizers_are_replaced() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"},
                 "spec": {"finalizers": ["kubernetes", "example.com/x"]}}
    result = patched(namespace, {"spec": {"finalizers": ["example.com/y"]}}, NAMESPACE)
    assert result["spec"]["finalizers"] == ["example.com/y"]
    emptied = patched(namespace, {"spec": {"finalizers": []}}, NAMESPACE)
    assert emptied["spec"]["finalizers"] == []


def service_account() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "builder", "namespace": "ci"},
        "secrets": [{"name": "a"}, {"name": "b"}, {"name": "token-x"}],
        "imagePullSecrets": [{"name": "pull-1"}, {"name": "pull-2"}],
    }


def test_service_account_secrets_merge_by_name_as_kubectl_apply_sends() -> None:
    patch = {
        "$setElementOrder/secrets": [{"name": "a"}, {"name": "c"}],
        "secrets": [{"name": "c"}, {"$patch": "delete", "name": "b"}],
    }
    result = patched(service_account(), patch, SERVICE_ACCOUNT)
    # token-x was added by a controller, not the manifest: it stays, after its live peers.
    assert names(result["secrets"]) == ["a", "c", "token-x"]
    assert result["imagePullSecrets"] == service_account()["imagePullSecrets"]


def test_service_account_image_pull_secrets_are_replaced() -> None:
    result = patched(service_account(), {"imagePullSecrets": [{"name": "pull-3"}]},
                     SERVICE_ACCOUNT)
    assert result["imagePullSecrets"] == [{"name": "pull-3"}]
    assert names(result["secrets"]) == ["a", "b", "token-x"]


def test_role_binding_subjects_are_atomic() -> None:
    binding = {
        "apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
        "metadata": {"name": "rb", "namespace": "ns"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": RBAC},
                     {"kind": "ServiceAccount", "name": "bot", "namespace": "ns"}],
    }
    patch = {"subjects": [{"kind": "User", "name": "bob", "apiGroup": RBAC, "namespace": None}]}
    result = patched(binding, patch, ROLE_BINDING)
    assert result["subjects"] == [{"kind": "User", "name": "bob", "apiGroup": RBAC}]
    assert result["roleRef"] == binding["roleRef"]


def test_cluster_role_rules_are_replaced() -> None:
    role = {
        "apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": "view"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                  {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["watch"]}]
    assert patched(role, {"rules": rules}, CLUSTER_ROLE)["rules"] == rules


def test_service_ports_merge_by_port() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                  {"name": "https", "port": 443}]}}
    patch = {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}
    ports = patched(service, patch, SERVICE)["spec"]["ports"]
    assert ports == [{"name": "http", "port": 80, "targetPort": 9090},
                     {"name": "https", "port": 443}]


# A Deployment's pod template: nested merge keys and every directive.


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:1",
                            "args": ["--a", "--b"],
                            "command": ["/bin/app"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"},
                                    {"name": "INJECTED", "value": "x"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                          "requests": {"cpu": "100m"}},
                            "securityContext": {"runAsNonRoot": True},
                            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                        },
                        {"name": "sidecar", "image": "proxy:1"},
                    ],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "volumes": [{"name": "cache", "emptyDir": {}},
                                {"name": "conf", "configMap": {"name": "conf"}}],
                },
            },
        },
    }


def pod_spec(result: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = result["spec"]["template"]["spec"]
    return spec


def container(result: dict[str, Any], name: str) -> dict[str, Any]:
    for item in pod_spec(result)["containers"]:
        if item["name"] == name:
            return dict(item)
    raise AssertionError(f"no container {name}")


def template_patch(spec_patch: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec_patch}}}


def test_kubectl_apply_changes_image_and_env_of_one_container() -> None:
    patch = template_patch({
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{
            "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
            "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
            "image": "app:2",
            "name": "app",
        }],
    })
    result = patched(deployment(), patch, DEPLOYMENT)
    app = container(result, "app")
    assert app["image"] == "app:2"
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"},
                          {"name": "INJECTED", "value": "x"}]
    assert app["args"] == ["--a", "--b"]
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert container(result, "sidecar") == {"name": "sidecar", "image": "proxy:1"}
    assert names(pod_spec(result)["containers"]) == ["app", "sidecar"]


def test_new_container_goes_where_set_element_order_says() -> None:
    patch = template_patch({
        "$setElementOrder/containers": [{"name": "app"}, {"name": "logger"},
                                        {"name": "sidecar"}],
        "containers": [{"name": "logger", "image": "log:1"}],
    })
    result = patched(deployment(), patch, DEPLOYMENT)
    assert names(pod_spec(result)["containers"]) == ["app", "logger", "sidecar"]
    assert container(result, "logger") == {"name": "logger", "image": "log:1"}


def test_new_container_without_order_goes_first() -> None:
    patch = template_patch({"containers": [{"name": "logger", "image": "log:1"}]})
    result = patched(deployment(), patch, DEPLOYMENT)
    assert names(pod_spec(result)["containers"]) == ["logger", "app", "sidecar"]


def test_patch_order_wins_over_live_order_for_named_elements() -> None:
    patch = template_patch({"containers": [{"name": "sidecar", "image": "proxy:2"},
                                           {"name": "app", "image": "app:2"}]})
    result = patched(deployment(), patch, DEPLOYMENT)
    assert names(pod_spec(result)["containers"]) == ["sidecar", "app"]


def test_container_ports_merge_by_container_port() -> None:
    patch = template_patch({"containers": [{"name": "app", "ports": [
        {"containerPort": 80, "name": "http"}, {"containerPort": 9090, "name": "metrics"},
    ]}]})
    ports = container(patched(deployment(), patch, DEPLOYMENT), "app")["ports"]
    assert ports == [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                     {"containerPort": 9090, "name": "metrics"}]


def test_atomic_lists_in_a_container_are_replaced() -> None:
    patch = template_patch({
        "containers": [{"name": "app", "args": ["--c"], "command": None}],
        "tolerations": [{"key": "b", "operator": "Equal", "value": "v"}],
    })
    result = patched(deployment(), patch, DEPLOYMENT)
    app = container(result, "app")
    assert app["args"] == ["--c"]
    assert "command" not in app
    assert pod_spec(result)["tolerations"] == [{"key": "b", "operator": "Equal", "value": "v"}]


def test_delete_container_and_volume_mount() -> None:
    patch = template_patch({
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [
            {"name": "app", "$setElementOrder/volumeMounts": [],
             "volumeMounts": [{"$patch": "delete", "mountPath": "/cache"}]},
            {"$patch": "delete", "name": "sidecar"},
        ],
    })
    result = patched(deployment(), patch, DEPLOYMENT)
    assert names(pod_spec(result)["containers"]) == ["app"]
    assert container(result, "app")["volumeMounts"] == []


def test_retain_keys_switches_a_volume_source() -> None:
    patch = template_patch({
        "$setElementOrder/volumes": [{"name": "cache"}, {"name": "conf"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cache-cm"},
                     "emptyDir": None, "name": "cache"}],
    })
    volumes = pod_spec(patched(deployment(), patch, DEPLOYMENT))["volumes"]
    assert volumes == [{"name": "cache", "configMap": {"name": "cache-cm"}},
                       {"name": "conf", "configMap": {"name": "conf"}}]


def test_retain_keys_on_deployment_strategy() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                                   "rollingUpdate": None}}}
    assert patched(deployment(), patch, DEPLOYMENT)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_must_list_every_field_the_patch_sets() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "RollingUpdate",
                                   "rollingUpdate": {"maxSurge": 1}}}}
    error = rejected(deployment(), patch, DEPLOYMENT)
    assert error.code == 400
    assert "rollingUpdate" in error.message
    assert "spec.strategy" in error.message


def test_replace_directive_on_a_nested_map() -> None:
    patch = template_patch({"containers": [{"name": "app", "resources": {
        "$patch": "replace", "limits": {"cpu": "2"}}}]})
    app = container(patched(deployment(), patch, DEPLOYMENT), "app")
    assert app["resources"] == {"limits": {"cpu": "2"}}


def test_delete_directive_on_a_nested_map() -> None:
    patch = template_patch({"containers": [{"name": "app",
                                            "securityContext": {"$patch": "delete"}}]})
    app = container(patched(deployment(), patch, DEPLOYMENT), "app")
    assert "securityContext" not in app
    assert app["image"] == "app:1"


def test_replace_directive_element_replaces_the_whole_list() -> None:
    patch = template_patch({"containers": [{"name": "solo", "image": "solo:1"},
                                           {"$patch": "replace"}]})
    result = patched(deployment(), patch, DEPLOYMENT)
    assert pod_spec(result)["containers"] == [{"name": "solo", "image": "solo:1"}]


def test_replace_directive_alone_empties_a_merged_list() -> None:
    patch = template_patch({"volumes": [{"$patch": "replace"}]})
    assert pod_spec(patched(deployment(), patch, DEPLOYMENT))["volumes"] == []


def test_delete_directive_removes_every_duplicate() -> None:
    obj = deployment()
    app = pod_spec(obj)["containers"][0]
    app["env"] = [{"name": "A", "value": "1"}, {"name": "A", "value": "again"},
                  {"name": "B", "value": "2"}]
    patch = template_patch({"containers": [{"name": "app",
                                            "env": [{"$patch": "delete", "name": "A"}]}]})
    assert container(patched(obj, patch, DEPLOYMENT), "app")["env"] == [{"name": "B",
                                                                         "value": "2"}]


def test_new_field_gets_its_directives_applied_not_stored() -> None:
    obj = deployment()
    del pod_spec(obj)["volumes"]
    patch = template_patch({
        "volumes": [{"name": "v", "$retainKeys": ["name", "secret"],
                     "secret": {"secretName": "s", "optional": None}},
                    {"$patch": "delete", "name": "gone"}],
        "$setElementOrder/initContainers": [{"name": "init"}],
        "initContainers": [{"name": "init", "image": "i:1",
                            "$setElementOrder/env": [{"name": "X"}],
                            "env": [{"name": "X", "value": "1"}]}],
    })
    result = pod_spec(patched(obj, patch, DEPLOYMENT))
    assert result["volumes"] == [{"name": "v", "secret": {"secretName": "s"}}]
    assert result["initContainers"] == [{"name": "init", "image": "i:1",
                                         "env": [{"name": "X", "value": "1"}]}]


def test_set_element_order_must_agree_with_the_patch_list() -> None:
    patch = template_patch({
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"name": "sidecar", "image": "p:2"}, {"name": "app", "image": "a:2"}],
    })
    error = rejected(deployment(), patch, DEPLOYMENT)
    assert error.code == 422
    assert "$setElementOrder" in error.message


def test_unknown_fields_merge_like_a_json_merge_patch() -> None:
    obj = deployment()
    obj["spec"]["extra"] = {"keep": 1, "list": [1, 2], "drop": True}
    patch = {"spec": {"extra": {"list": [3], "drop": None, "new": {"a": None, "b": 2}}}}
    assert patched(obj, patch, DEPLOYMENT)["spec"]["extra"] == {
        "keep": 1, "list": [3], "new": {"b": 2}}


def test_without_a_schema_lists_are_replaced() -> None:
    obj = {"metadata": {"finalizers": ["a"]}, "spec": {"items": [{"name": "x"}]}}
    patch = {"metadata": {"finalizers": ["b"]}, "spec": {"items": [{"name": "y"}]}}
    assert patched(obj, patch, None) == patch


def test_dollar_keys_that_are_schema_fields_are_data() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {"versions": [{"name": "v1", "served": True, "storage": True}]},
    }
    schema_props = {"type": "object", "properties": {"spec": {"$ref": "#/defs/x"}}}
    patch = {"spec": {"versions": [{"name": "v1", "served": True, "storage": True,
                                    "schema": {"openAPIV3Schema": schema_props}}]}}
    result = patched(crd, patch, CRD)
    assert result["spec"]["versions"][0]["schema"]["openAPIV3Schema"] == schema_props


# Rejections.


@pytest.mark.parametrize("document", [[{"op": "add"}], "text", 1, None])
def test_patch_that_is_not_an_object_is_400(document: Any) -> None:
    error = rejected(config_map(), document, CONFIG_MAP)
    assert error.code == 400
    assert "must be a JSON object" in error.message


@pytest.mark.parametrize(("patch", "code", "fragment"), [
    ({"metadata": {"labels": {"$patch": "explode"}}}, 422, "unknown $patch directive"),
    ({"metadata": {"$frobnicate": 1}}, 422, "unknown strategic merge patch directive"),
    ({"$setElementOrderfinalizers": []}, 400, "malformed directive"),
    ({"metadata": {"$setElementOrder/finalizers": "a"}}, 400, "must be a list"),
    ({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, 400, "list of scalar"),
    ({"metadata": {"$deleteFromPrimitiveList/finalizers": [{"a": 1}]}}, 400, "list of scalar"),
    ({"metadata": {"$retainKeys": "name"}}, 400, "$retainKeys must be a list"),
    ({"metadata": {"ownerReferences": [{"name": "no-uid"}]}}, 422, "no merge key 'uid'"),
    ({"metadata": {"ownerReferences": [{"$patch": "delete", "name": "x"}]}}, 422,
     "needs the merge key"),
    ({"metadata": {"ownerReferences": [{"$patch": "merge"}]}}, 422,
     "merging lists cannot yet be specified"),
    ({"metadata": {"ownerReferences": [{"$patch": "sideways"}]}}, 422, "unknown $patch"),
    ({"metadata": {"finalizers": [["nested"]]}}, 422, "lists of lists"),
    ({"metadata": {"finalizers": [{"uid": "x"}]}}, 422, "not identical"),
    ({"$patch": "delete"}, 422, "cannot delete the whole object"),
])
def test_malformed_patches_are_rejected(patch: dict[str, Any], code: int, fragment: str) -> None:
    error = rejected(config_map(), patch, CONFIG_MAP)
    assert error.code == code
    assert fragment in error.message


def test_rejection_names_the_field_path() -> None:
    patch = template_patch({"containers": [{"name": "app", "env": [{"value": "no name"}]}]})
    error = rejected(deployment(), patch, DEPLOYMENT)
    assert error.code == 422
    assert "spec.template.spec.containers[0].env[0]" in error.message


def test_merge_keys_are_compared_as_json_values() -> None:
    service = {"spec": {"ports": [{"port": 1, "name": "one"}]}}
    # true is not 1 in JSON: the patch element is a new port, not the existing one.
    result = patched(service, {"spec": {"ports": [{"port": True, "name": "odd"}]}}, SERVICE)
    assert result["spec"]["ports"] == [{"port": True, "name": "odd"}, {"port": 1, "name": "one"}]


def test_large_merged_lists_stay_fast() -> None:
    obj = config_map()
    obj["metadata"]["ownerReferences"] = [owner(f"u{i}", f"n{i}") for i in range(20_000)]
    patch = {"metadata": {"ownerReferences": [{"uid": f"u{i}", "controller": True}
                                              for i in range(0, 20_000, 2)]}}
    refs = apply_strategic_merge_patch(obj, patch, CONFIG_MAP)["metadata"]["ownerReferences"]
    assert len(refs) == 20_000
    assert sum(1 for ref in refs if ref["controller"]) == 10_000


def test_many_delete_directives_stay_fast() -> None:
    obj = config_map()
    obj["metadata"]["ownerReferences"] = [owner(f"u{i}", f"n{i}") for i in range(20_000)]
    patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": f"u{i}"}
                                              for i in range(1, 20_000, 2)]}}
    refs = apply_strategic_merge_patch(obj, patch, CONFIG_MAP)["metadata"]["ownerReferences"]
    assert names(refs, "uid") == [f"u{i}" for i in range(0, 20_000, 2)]


def test_element_without_merge_key_next_to_set_element_order_names_the_key() -> None:
    patch = template_patch({
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"image": "nameless:1"}],
    })
    error = rejected(deployment(), patch, DEPLOYMENT)
    assert error.code == 422
    assert "no merge key 'name'" in error.message
