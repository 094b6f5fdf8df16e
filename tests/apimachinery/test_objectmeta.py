from __future__ import annotations

from typing import Any

import pytest

from kplane.apimachinery.errors import Cause, StatusError
from kplane.apimachinery.names import (
    validate_dns_label_name,
    validate_dns_subdomain_name,
    validate_path_segment_name,
)
from kplane.apimachinery.objectmeta import (
    apply_request_namespace,
    validate_object_meta,
    validate_object_meta_update,
)


def create_causes(meta: Any, *, namespaced: bool = True, request_namespace: str | None = None,
                  validator: Any = validate_dns_subdomain_name) -> list[Cause]:
    return validate_object_meta(
        meta, namespaced=namespaced, name_validator=validator,
        request_namespace=request_namespace,
    )


def summary(causes: list[Cause]) -> list[tuple[str, str, str]]:
    return [(c.field, c.reason, c.message) for c in causes]


def test_valid_namespaced_meta() -> None:
    meta = {
        "name": "web", "namespace": "prod",
        "labels": {"app": "web", "example.com/tier": ""},
        "annotations": {"Example.com/Note": "anything at all"},
        "finalizers": ["example.com/cleanup"],
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1",
             "controller": True},
        ],
        "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1"}],
        "generation": 3,
    }
    assert create_causes(meta, request_namespace="prod") == []


def test_name_or_generate_name_required() -> None:
    assert summary(create_causes({"namespace": "a"})) == [(
        "metadata.name", "FieldValueRequired",
        "Required value: name or generateName is required",
    )]
    assert create_causes({"generateName": "web-", "namespace": "a"}) == []
    assert summary(create_causes(None)) == [
        ("metadata.name", "FieldValueRequired",
         "Required value: name or generateName is required"),
        ("metadata.namespace", "FieldValueRequired", "Required value"),
    ]


def test_invalid_names() -> None:
    causes = create_causes({"name": "Web", "generateName": "Web-", "namespace": "a"})
    assert [c.field for c in causes] == ["metadata.generateName", "metadata.name"]
    assert causes[1].message.startswith(
        'Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of'
    )
    rbac = create_causes({"name": "a/b"}, namespaced=False, validator=validate_path_segment_name)
    assert summary(rbac) == [("metadata.name", "FieldValueInvalid",
                              "Invalid value: \"a/b\": may not contain '/'")]
    assert create_causes({"name": "system:admin"}, namespaced=False,
                         validator=validate_path_segment_name) == []


def test_custom_generate_name_validator() -> None:
    causes = validate_object_meta(
        {"generateName": "."}, namespaced=False, name_validator=validate_path_segment_name,
        request_namespace=None,
        generate_name_validator=lambda prefix: validate_path_segment_name(prefix, prefix=True),
    )
    assert causes == []


def test_namespace_rules() -> None:
    assert summary(create_causes({"name": "n", "namespace": "x"}, namespaced=False)) == [
        ("metadata.namespace", "FieldValueForbidden", "Forbidden: not allowed on this type"),
    ]
    causes = create_causes({"name": "n", "namespace": "a.b"})
    assert summary(causes) == [
        ("metadata.namespace", "FieldValueInvalid", 'Invalid value: "a.b": must not contain dots'),
    ]
    assert create_causes({"name": "ns1"}, namespaced=False, validator=validate_dns_label_name) == []


def test_namespace_mismatch_with_the_url_is_a_bad_request() -> None:
    with pytest.raises(StatusError) as caught:
        create_causes({"name": "n", "namespace": "other"}, request_namespace="mine")
    assert caught.value.code == 400
    assert caught.value.message == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )


def test_apply_request_namespace() -> None:
    meta: dict[str, Any] = {"name": "n"}
    apply_request_namespace(meta, namespaced=True, request_namespace="prod")
    assert meta["namespace"] == "prod"

    cluster_scoped: dict[str, Any] = {"name": "n", "namespace": "ignored"}
    apply_request_namespace(cluster_scoped, namespaced=False, request_namespace=None)
    assert "namespace" not in cluster_scoped

    with pytest.raises(StatusError):
        apply_request_namespace(
            {"name": "n", "namespace": "a"}, namespaced=True, request_namespace="b"
        )


def test_labels_annotations_and_finalizers() -> None:
    causes = create_causes({
        "name": "n", "namespace": "a",
        "labels": {"bad key": "ok", "k": "bad value"},
        "annotations": {"/x": "v"},
        "finalizers": ["a/b/c", "orphan", "foregroundDeletion"],
    })
    assert [(c.field, c.message.split(":")[1].strip()) for c in causes] == [
        ("metadata.labels", '"bad key"'),
        ("metadata.labels", '"bad value"'),
        ("metadata.annotations", '"/x"'),
        ("metadata.finalizers", '"a/b/c"'),
        ("metadata.finalizers", "\"['a/b/c', 'orphan', 'foregroundDeletion']\""),
    ]
    assert causes[-1].message.endswith("finalizer orphan and foregroundDeletion cannot be both set")


def test_annotation_size_limit_counts_keys_and_values() -> None:
    at_limit = {"a": "x" * (262144 - 1)}
    assert create_causes({"name": "n", "namespace": "a", "annotations": at_limit}) == []
    over = {"a": "x" * 262144}
    assert summary(create_causes({"name": "n", "namespace": "a", "annotations": over})) == [
        ("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes"),
    ]


def test_owner_references() -> None:
    causes = create_causes({"name": "n", "namespace": "a", "ownerReferences": [
        {"apiVersion": "", "kind": "", "name": "", "uid": ""},
        {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"},
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True},
    ]})
    assert [(c.field, c.message.rsplit(": ", 1)[-1]) for c in causes] == [
        ("metadata.ownerReferences.apiVersion", "version must not be empty"),
        ("metadata.ownerReferences.kind", "kind must not be empty"),
        ("metadata.ownerReferences.name", "name must not be empty"),
        ("metadata.ownerReferences.uid", "uid must not be empty"),
        ("metadata.ownerReferences", "/v1, Kind=Event is disallowed from being an owner"),
        ("metadata.ownerReferences",
         'Only one reference can have Controller set to true. Found "true" in references for '
         "A/a and B/b"),
    ]


def test_owner_reference_api_version_with_too_many_slashes_has_no_version() -> None:
    causes = create_causes({"name": "n", "namespace": "a", "ownerReferences": [
        {"apiVersion": "a/b/c", "kind": "K", "name": "x", "uid": "u"},
    ]})
    assert [c.field for c in causes] == ["metadata.ownerReferences.apiVersion"]


def test_generation_and_managed_fields() -> None:
    causes = create_causes({
        "name": "n", "namespace": "a", "generation": -1,
        "managedFields": [{"manager": "m" * 129, "operation": "Patch", "fieldsType": "FieldsV2"}],
    })
    assert [(c.field, c.reason) for c in causes] == [
        ("metadata.generation", "FieldValueInvalid"),
        ("metadata.managedFields[0].operation", "FieldValueInvalid"),
        ("metadata.managedFields[0].fieldsType", "FieldValueInvalid"),
        ("metadata.managedFields[0].manager", "FieldValueTooLong"),
    ]
    assert causes[0].message == "Invalid value: -1: must be greater than or equal to 0"


def test_wrong_types_do_not_crash() -> None:
    causes = create_causes({"name": 5, "namespace": "a", "labels": ["x"], "annotations": "y",
                            "finalizers": [1], "ownerReferences": {}})
    assert [c.field for c in causes] == [
        "metadata.name", "metadata.name", "metadata.labels", "metadata.annotations",
        "metadata.ownerReferences", "metadata.finalizers",
    ]
    assert summary(create_causes([], namespaced=False)) == [
        ("metadata", "FieldValueInvalid", 'Invalid value: "[]": must be an object'),
    ]


OLD = {
    "name": "web", "namespace": "prod", "uid": "u1", "resourceVersion": "5",
    "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 2,
}


def test_update_allows_unchanged_identity() -> None:
    new = {**OLD, "labels": {"a": "b"}, "generation": 3}
    assert validate_object_meta_update(new, OLD) == []


def test_update_immutable_fields() -> None:
    new = {**OLD, "name": "other", "namespace": "dev", "uid": "u2",
           "creationTimestamp": "2025-01-01T00:00:00Z", "deletionTimestamp": "2025-01-01T00:00:00Z"}
    causes = validate_object_meta_update(new, OLD)
    assert summary(causes) == [
        ("metadata.name", "FieldValueInvalid", 'Invalid value: "other": field is immutable'),
        ("metadata.namespace", "FieldValueInvalid", 'Invalid value: "dev": field is immutable'),
        ("metadata.uid", "FieldValueInvalid", 'Invalid value: "u2": field is immutable'),
        ("metadata.creationTimestamp", "FieldValueInvalid",
         'Invalid value: "2025-01-01T00:00:00Z": field is immutable'),
        ("metadata.deletionTimestamp", "FieldValueInvalid",
         'Invalid value: "2025-01-01T00:00:00Z": field is immutable'),
    ]


def test_update_removing_an_immutable_field_is_a_change() -> None:
    new = {k: v for k, v in OLD.items() if k != "uid"}
    assert [c.field for c in validate_object_meta_update(new, OLD)] == ["metadata.uid"]


def test_update_resource_version_generation_and_finalizers() -> None:
    deleting = {**OLD, "deletionTimestamp": "2024-02-02T00:00:00Z", "finalizers": ["a/x"]}
    new = {**deleting, "resourceVersion": "", "generation": 1, "finalizers": ["a/x", "b/y"]}
    causes = validate_object_meta_update(new, deleting)
    assert summary(causes) == [
        ("metadata.finalizers", "FieldValueForbidden",
         "Forbidden: no new finalizers can be added if the object is being deleted, "
         'found new finalizers []string{"b/y"}'),
        ("metadata.resourceVersion", "FieldValueInvalid",
         'Invalid value: "": must be specified for an update'),
        ("metadata.generation", "FieldValueInvalid", "Invalid value: 1: must not be decremented"),
    ]
    relaxed = validate_object_meta_update(
        {**OLD, "resourceVersion": ""}, OLD, require_resource_version=False
    )
    assert relaxed == []


def test_update_still_checks_labels() -> None:
    causes = validate_object_meta_update({**OLD, "labels": {"a": "-"}}, OLD)
    assert [c.field for c in causes] == ["metadata.labels"]
