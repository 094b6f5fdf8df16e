"""An APIExport's maximalPermissionPolicy, end to end with kubectl and the Python client.

``mpp-provider`` exports ``widgets.example.io`` with ``maximalPermissionPolicy.local``;
``mpp-open`` exports ``gadgets.example.io`` without one; ``mpp-consumer`` binds both. Users
who are cluster-admin in the consumer may use gadgets at once, but widgets only as far as the
provider grants ``apis.kcp.io:binding:<user or group>`` in its own workspace. system:masters
and the provider's virtual workspace are not subject to the policy, as in kcp.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.e2e.server import KplaneProcess
from tests.e2e.test_apis import (
    APIS,
    RBAC,
    SCHEMA,
    create_workspace,
    wait_bound,
    wait_for,
    widget,
)
from tests.e2e.test_authorization import bind_cluster_role, mint_kubeconfig, run_kubectl

PROVIDER, OPEN, CONSUMER = "mpp-provider", "mpp-open", "mpp-consumer"
CONSUMER_PATH = f"root:{CONSUMER}"
GADGET_SCHEMA: dict[str, Any] = {
    "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIResourceSchema",
    "metadata": {"name": "v1.gadgets.example.io"},
    "spec": {"group": "example.io",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
                       "listKind": "GadgetList"},
             "scope": "Namespaced",
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"type": "object",
                                      "x-kubernetes-preserve-unknown-fields": True}}]},
}


@dataclass
class World:
    kplane: KplaneProcess
    http: httpx.Client
    consumer_cluster: str
    endpoint: str                       # the widgets export's virtual workspace URL
    kubeconfigs: dict[str, Path]


def export(name: str, *, policy: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"resources": [{"group": "example.io", "name": name,
                                           "schema": f"v1.{name}.example.io",
                                           "storage": {"crd": {}}}]}
    if policy:
        spec["maximalPermissionPolicy"] = {"local": {}}
    return {"apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIExport",
            "metadata": {"name": name}, "spec": spec}


def post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def grant(http: httpx.Client, *, name: str, verbs: list[str], user: str = "",
          group: str = "") -> None:
    """A ClusterRole on widgets and its ClusterRoleBinding, in the provider's workspace."""
    post(http, f"/clusters/root:{PROVIDER}{RBAC}/clusterroles", {
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["example.io"], "resources": ["widgets"], "verbs": verbs}]})
    bind_cluster_role(http, workspace=f"root:{PROVIDER}", name=name, role=name, user=user,
                      group=group)


@pytest.fixture(scope="module")
def world(kplane: KplaneProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    http = kplane.client()
    clusters = {name: create_workspace(http, name) for name in (PROVIDER, OPEN, CONSUMER)}
    for workspace, schema, name, policy in ((PROVIDER, SCHEMA, "widgets", True),
                                            (OPEN, GADGET_SCHEMA, "gadgets", False)):
        base = f"/clusters/root:{workspace}"
        post(http, f"{base}/apis/apis.kcp.io/v1alpha1/apiresourceschemas", schema)
        post(http, f"{base}{APIS}/apiexports", export(name, policy=policy))
        post(http, f"/clusters/{CONSUMER_PATH}{APIS}/apibindings", {
            "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
            "metadata": {"name": name},
            "spec": {"reference": {"export": {"path": f"root:{workspace}", "name": name}}}})
        wait_bound(http, CONSUMER, name)

    def endpoint() -> str | None:
        response = http.get(f"/clusters/root:{PROVIDER}/apis/apis.kcp.io/v1alpha1/"
                            "apiexportendpointslices/widgets")
        found = (response.json().get("status") or {}).get("endpoints") or [] \
            if response.status_code == 200 else []
        return str(found[0]["url"]) if found else None

    # Full rights in the consumer: erin by name, frank through his group.
    bind_cluster_role(http, workspace=CONSUMER_PATH, name="erin-admin", role="cluster-admin",
                      user="erin")
    bind_cluster_role(http, workspace=CONSUMER_PATH, name="team-x-admin",
                      role="cluster-admin", group="team-x")
    # The provider's own grants to erin are no ceiling for what she does elsewhere.
    bind_cluster_role(http, workspace=f"root:{PROVIDER}", name="erin-admin",
                      role="cluster-admin", user="erin")
    directory = tmp_path_factory.mktemp("mpp")
    kubeconfigs = {
        "erin": mint_kubeconfig(kplane, workspace=CONSUMER_PATH, user="erin",
                                out=directory / "erin.kubeconfig"),
        "frank": mint_kubeconfig(kplane, workspace=CONSUMER_PATH, user="frank",
                                 groups=("team-x",), out=directory / "frank.kubeconfig"),
        "pat": mint_kubeconfig(kplane, workspace=f"root:{PROVIDER}", user="pat",
                               out=directory / "pat.kubeconfig"),
    }
    try:
        yield World(kplane, http, clusters[CONSUMER], wait_for("endpoint", endpoint),
                    kubeconfigs)
    finally:
        http.close()


@contextlib.contextmanager
def custom_objects(kubeconfig: Path) -> Iterator[kubernetes.client.CustomObjectsApi]:
    """The official client's custom-objects API, as the kubeconfig's user."""
    api_client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig))
    try:
        yield kubernetes.client.CustomObjectsApi(api_client)
    finally:
        api_client.close()


def create_widget(api: kubernetes.client.CustomObjectsApi, name: str) -> dict[str, Any]:
    created = api.create_namespaced_custom_object(
        "example.io", "v1", "default", "widgets", widget(name))
    assert isinstance(created, dict)
    return created


def test_a_consumer_admin_is_refused_until_the_provider_grants_the_verb(world: World) -> None:
    erin = world.kubeconfigs["erin"]
    with custom_objects(erin) as api:
        with pytest.raises(ApiException) as refused:
            create_widget(api, "w-erin")
        assert refused.value.status == 403
        status = json.loads(str(refused.value.body))
        assert (status["kind"], status["code"], status["reason"]) == (
            "Status", 403, "Forbidden")
        # The same words as any RBAC refusal: kcp does not reveal the policy's reason.
        assert status["message"] == (
            'widgets.example.io is forbidden: User "erin" cannot create resource "widgets" '
            'in API group "example.io" in the namespace "default" in workspace '
            f'"{CONSUMER_PATH}"')
        assert status["details"] == {"group": "example.io", "kind": "widgets"}
        listing = run_kubectl(erin, "get", "widgets", "-n", "default")
        assert listing.returncode != 0 and "Forbidden" in listing.stderr, listing.stderr
        assert 'cannot list resource "widgets"' in listing.stderr
        # An access review answers as the request would.
        review = run_kubectl(erin, "auth", "can-i", "create", "widgets.example.io",
                             "-n", "default")
        assert review.stdout.strip() == "no", (review.stdout, review.stderr)

        grant(world.http, name="erin-widgets", verbs=["get", "list", "create"],
              user="apis.kcp.io:binding:erin")

        def created() -> dict[str, Any] | None:
            try:
                return create_widget(api, "w-erin")
            except ApiException as exc:
                assert exc.status == 403, exc.body
                return None

        assert wait_for("erin may create widgets", created)["metadata"]["name"] == "w-erin"
    review = run_kubectl(erin, "auth", "can-i", "create", "widgets.example.io", "-n", "default")
    assert review.stdout.strip() == "yes", (review.stdout, review.stderr)
    review = run_kubectl(erin, "auth", "can-i", "delete", "widgets.example.io", "-n", "default")
    assert review.stdout.strip() == "no", (review.stdout, review.stderr)
    listing = run_kubectl(erin, "get", "widgets", "-n", "default", "-o", "name")
    assert listing.returncode == 0, listing.stderr
    assert "widget.example.io/w-erin" in listing.stdout.split()
    # Still the ceiling: delete and the status subresource were not granted.
    deleting = run_kubectl(erin, "delete", "widget", "w-erin", "-n", "default")
    assert deleting.returncode != 0, deleting.stdout
    assert 'cannot delete resource "widgets"' in deleting.stderr, deleting.stderr
    with custom_objects(erin) as api, pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object_status(
            "example.io", "v1", "default", "widgets", "w-erin", {"status": {"ready": True}})
    assert refused.value.status == 403
    message = json.loads(str(refused.value.body))["message"]
    assert 'cannot patch resource "widgets/status"' in message, message


def test_a_grant_to_the_prefixed_group_covers_its_members(world: World) -> None:
    frank = world.kubeconfigs["frank"]
    refused = run_kubectl(frank, "get", "widgets", "-n", "default")
    assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stderr
    grant(world.http, name="team-x-widgets", verbs=["get", "list"],
          group="apis.kcp.io:binding:team-x")
    wait_for("frank may list widgets", lambda: run_kubectl(
        frank, "get", "widgets", "-n", "default").returncode == 0)
    creating = run_kubectl(frank, "create", "-n", "default", "-f", "-",
                           input=json.dumps(widget("w-frank")))
    assert creating.returncode != 0
    assert 'cannot create resource "widgets"' in creating.stderr, creating.stderr


def test_an_export_without_a_policy_is_unaffected(world: World) -> None:
    gadget = ('{"apiVersion": "example.io/v1", "kind": "Gadget", '
              '"metadata": {"name": "g-erin"}}')
    created = run_kubectl(world.kubeconfigs["erin"], "create", "-n", "default", "-f", "-",
                          input=gadget)
    assert created.returncode == 0, created.stderr
    assert "gadget.example.io/g-erin created" in created.stdout


def test_system_masters_are_not_subject_to_the_policy(world: World) -> None:
    # kcp's always-allow group comes before every other authorizer, this one included.
    created = world.kplane.kubectl(
        "create", "-n", "default", "-f", "-",
        input='{"apiVersion": "example.io/v1", "kind": "Widget", '
              '"metadata": {"name": "w-admin"}}',
        server=f"{world.kplane.url}/clusters/{CONSUMER_PATH}")
    assert "widget.example.io/w-admin created" in created.stdout


def test_the_virtual_workspace_is_not_subject_to_the_policy(world: World) -> None:
    post(world.http, f"/clusters/root:{PROVIDER}{RBAC}/clusterroles", {
        "metadata": {"name": "widgets-content"},
        "rules": [{"apiGroups": ["apis.kcp.io"], "resources": ["apiexports/content"],
                   "resourceNames": ["widgets"], "verbs": ["*"]}]})
    bind_cluster_role(world.http, workspace=f"root:{PROVIDER}", name="pat-content",
                      role="widgets-content", user="pat")
    server = f"{world.endpoint}/clusters/{world.consumer_cluster}"
    body = '{"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w-pat"}}'

    def created() -> str | None:
        result = run_kubectl(world.kubeconfigs["pat"], "--server", server, "create", "-n",
                             "default", "-f", "-", input=body)
        return result.stdout if result.returncode == 0 else None

    # pat holds no apis.kcp.io:binding: grant: the provider's controller view is unbounded.
    assert "widget.example.io/w-pat created" in wait_for("pat's write", created)
