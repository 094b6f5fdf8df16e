"""Reading DeleteOptions: type errors are 400 BadRequest, bad values 422, as upstream."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest

from kplane.apimachinery.errors import StatusError
from kplane.registry.options import DeleteOptions
from kplane.server.delete_options import delete_options

JSON = "application/json"


def from_body(body: Any, content_type: str = JSON, query: str = "") -> DeleteOptions:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return delete_options(raw, content_type, *_query(query))


def from_query(query: str) -> DeleteOptions:
    return delete_options(b"", "", *_query(query))


def _query(query: str) -> tuple[dict[str, str], Any]:
    pairs = parse_qsl(query, keep_blank_values=True)
    first: dict[str, str] = {}
    for key, value in pairs:
        first.setdefault(key, value)
    return first, lambda name: [v for k, v in pairs if k == name]


def refused(code: int, call: Any, *args: Any) -> StatusError:
    with pytest.raises(StatusError) as caught:
        call(*args)
    assert caught.value.code == code, caught.value.message
    assert caught.value.reason == {400: "BadRequest", 415: "UnsupportedMediaType",
                                   422: "Invalid"}[code]
    return caught.value


def test_no_body_and_no_query_is_the_default() -> None:
    assert from_query("") == DeleteOptions()
    assert delete_options(b"  \n", JSON, {}, lambda _: []) == DeleteOptions()


def test_a_complete_body() -> None:
    options = from_body({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                         "preconditions": {"uid": "u-1", "resourceVersion": "7"},
                         "propagationPolicy": "Foreground", "dryRun": ["All"],
                         "ignoreStoreReadErrorWithClusterBreakingPotential": False})
    assert options == DeleteOptions(uid="u-1", resource_version="7",
                                    propagation_policy="Foreground", grace_period_seconds=0,
                                    dry_run=True)


@pytest.mark.parametrize("api_version", ["", "v1", "meta.k8s.io/v1", "apps/v1", "x.io/v9"])
def test_delete_options_of_any_group_version_decode(api_version: str) -> None:
    # Upstream registers DeleteOptions as an unversioned kind: per-group bodies still work.
    body = {"kind": "DeleteOptions", "apiVersion": api_version, "dryRun": ["All"]}
    assert from_body(body).dry_run
    assert from_body({"apiVersion": api_version, "dryRun": ["All"]}).dry_run


def test_nulls_mean_absent_as_in_go() -> None:
    assert from_body({"preconditions": None, "gracePeriodSeconds": None, "dryRun": None,
                      "propagationPolicy": None, "orphanDependents": None,
                      "kind": None, "apiVersion": None}) == DeleteOptions()
    assert from_body({"preconditions": {"uid": None, "resourceVersion": None}}) == (
        DeleteOptions())
    assert from_body(b"null") == DeleteOptions()


@pytest.mark.parametrize(("body", "field", "go_type"), [
    ({"preconditions": "x"}, "preconditions", "v1.Preconditions"),
    ({"preconditions": ["x"]}, "preconditions", "v1.Preconditions"),
    ({"preconditions": 5}, "preconditions", "v1.Preconditions"),
    ({"preconditions": {"uid": 5}}, "preconditions.uid", "types.UID"),
    ({"preconditions": {"uid": {"a": 1}}}, "preconditions.uid", "types.UID"),
    ({"preconditions": {"resourceVersion": 7}}, "preconditions.resourceVersion", "string"),
    ({"preconditions": {"resourceVersion": True}}, "preconditions.resourceVersion", "string"),
    ({"gracePeriodSeconds": "abc"}, "gracePeriodSeconds", "int64"),
    ({"gracePeriodSeconds": "5"}, "gracePeriodSeconds", "int64"),
    ({"gracePeriodSeconds": 1.5}, "gracePeriodSeconds", "int64"),
    ({"gracePeriodSeconds": True}, "gracePeriodSeconds", "int64"),
    ({"gracePeriodSeconds": 2**63}, "gracePeriodSeconds", "int64"),
    ({"orphanDependents": "true"}, "orphanDependents", "bool"),
    ({"orphanDependents": 1}, "orphanDependents", "bool"),
    ({"propagationPolicy": 1}, "propagationPolicy", "v1.DeletionPropagation"),
    ({"propagationPolicy": ["Orphan"]}, "propagationPolicy", "v1.DeletionPropagation"),
    ({"dryRun": "All"}, "dryRun", "[]string"),
    ({"dryRun": [1]}, "dryRun", "string"),
    ({"ignoreStoreReadErrorWithClusterBreakingPotential": "yes"},
     "ignoreStoreReadErrorWithClusterBreakingPotential", "bool"),
    ({"kind": 5}, "kind", "string"),
    ({"apiVersion": ["v1"]}, "apiVersion", "string"),
])
def test_a_field_of_the_wrong_type_is_a_decode_error(body: dict[str, Any], field: str,
                                                    go_type: str) -> None:
    message = refused(400, from_body, body).message
    assert message.startswith("json: cannot unmarshal ")
    assert f"into Go struct field DeleteOptions.{field} of type {go_type}" in message


def test_the_decode_error_names_the_json_type_found() -> None:
    assert refused(400, from_body, {"preconditions": "x"}).message == (
        "json: cannot unmarshal string into Go struct field DeleteOptions.preconditions of "
        "type v1.Preconditions")
    assert refused(400, from_body, {"gracePeriodSeconds": 2**63}).message == (
        f"json: cannot unmarshal number {2**63} into Go struct field "
        "DeleteOptions.gracePeriodSeconds of type int64")


def test_yaml_bodies_are_checked_the_same_way() -> None:
    raw = b"kind: DeleteOptions\napiVersion: v1\npreconditions: x\n"
    assert "DeleteOptions.preconditions of type v1.Preconditions" in refused(
        400, from_body, raw, "application/yaml").message
    assert from_body(b"gracePeriodSeconds: 5\ndryRun: [All]\n", "application/yaml") == (
        DeleteOptions(grace_period_seconds=5, dry_run=True))


@pytest.mark.parametrize("body", [[1], "x", 5, True])
def test_a_body_that_is_not_an_object_is_400(body: Any) -> None:
    assert "into Go value of type v1.DeleteOptions" in refused(400, from_body, body).message


@pytest.mark.parametrize(("body", "words"), [
    ({"kind": "Pod", "apiVersion": "v1"}, 'no kind "Pod" is registered'),
    ({"kind": "ListOptions", "apiVersion": "meta.k8s.io/v1"}, 'no kind "ListOptions"'),
    ({"kind": "deleteoptions"}, 'no kind "deleteoptions"'),
    ({"kind": "DeleteOptions", "apiVersion": "a/b/c"}, "unexpected GroupVersion string"),
])
def test_another_kind_or_a_malformed_api_version_is_400(body: dict[str, Any],
                                                        words: str) -> None:
    assert words in refused(400, from_body, body).message


def test_an_unsupported_content_type_is_415() -> None:
    refused(415, from_body, {"dryRun": ["All"]}, "text/plain")
    refused(415, from_body, {"dryRun": ["All"]}, "application/x-www-form-urlencoded")
    assert from_body({"dryRun": ["All"]}, "").dry_run


@pytest.mark.parametrize(("body", "message"), [
    ({"propagationPolicy": "Sideways"},
     'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
     '"Sideways": supported values: "Foreground", "Background", "Orphan", "nil"'),
    ({"propagationPolicy": ""}, 'propagationPolicy: Unsupported value: ""'),
    ({"dryRun": ["All", "Sometimes"]}, 'dryRun: Unsupported value: "Sometimes"'),
    ({"dryRun": [None]}, 'dryRun: Unsupported value: ""'),
    ({"orphanDependents": True, "propagationPolicy": "Orphan"},
     "orphanDependents and deletionPropagation cannot be both set"),
])
def test_values_upstream_validation_refuses_are_422(body: dict[str, Any],
                                                    message: str) -> None:
    assert message in refused(422, from_body, body).message


def test_an_empty_dry_run_list_is_not_a_dry_run() -> None:
    assert not from_body({"dryRun": []}).dry_run


def test_orphan_dependents_is_the_old_spelling_of_a_policy() -> None:
    assert from_body({"orphanDependents": True}).propagation_policy == "Orphan"
    assert from_body({"orphanDependents": False}).propagation_policy == "Background"
    assert from_query("orphanDependents=maybe").propagation_policy == "Orphan"
    assert from_query("orphanDependents=false").propagation_policy == "Background"


def test_a_negative_grace_period_is_one_second_as_upstream() -> None:
    assert from_body({"gracePeriodSeconds": -30}).grace_period_seconds == 1
    assert from_query("gracePeriodSeconds=-30").grace_period_seconds == 1
    assert from_query("gracePeriodSeconds=0").grace_period_seconds == 0


def test_the_query_is_read_only_without_a_body() -> None:
    assert from_query("dryRun=All&propagationPolicy=Orphan&gracePeriodSeconds=3") == (
        DeleteOptions(propagation_policy="Orphan", grace_period_seconds=3, dry_run=True))
    # Upstream decodes a body and then never looks at the query.
    assert from_body({}, query="dryRun=All&gracePeriodSeconds=abc") == DeleteOptions()


@pytest.mark.parametrize("value", ["abc", "", " 5", "1.5", "1e3", "0x10", "1_0",
                                   "99999999999999999999"])
def test_a_grace_period_in_the_query_that_is_not_an_int64_is_400(value: str) -> None:
    assert "gracePeriodSeconds" in refused(
        400, from_query, f"gracePeriodSeconds={value}").message


@pytest.mark.parametrize(("query", "words"), [
    ("propagationPolicy=Sideways", 'Unsupported value: "Sideways"'),
    ("propagationPolicy=", 'Unsupported value: ""'),
    ("dryRun=All&dryRun=Maybe", 'dryRun: Unsupported value: "Maybe"'),
    ("dryRun=", 'dryRun: Unsupported value: ""'),
    ("orphanDependents=true&propagationPolicy=Background", "cannot be both set"),
])
def test_bad_query_values_are_422(query: str, words: str) -> None:
    assert words in refused(422, from_query, query).message
