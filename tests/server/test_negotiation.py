"""Content negotiation: which representation each Accept header real clients send gets."""

from __future__ import annotations

import pytest

from kplane.apimachinery.errors import StatusError
from kplane.server.negotiation import JSON, YAML, MediaRange, Representation, choose, parse_accept

KUBECTL_GET = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
               "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


def test_parse_accept_splits_types_and_parameters() -> None:
    assert parse_accept("Application/JSON ; as=Table; V=v1 ;g=meta.k8s.io, */*;q=0.8") == [
        MediaRange("application/json", {"as": "Table", "v": "v1", "g": "meta.k8s.io"}),
        MediaRange("*/*", {"q": "0.8"}),
    ]


def test_parse_accept_skips_empty_items_and_bounds_the_count() -> None:
    assert parse_accept(",, ;x=1,application/json") == [MediaRange("application/json", {})]
    assert len(parse_accept(",".join(["application/json"] * 100))) == 32


def test_no_accept_header_means_json() -> None:
    assert choose("", table_allowed=True) == Representation(JSON, "")


def test_kubectl_get_asks_for_a_v1_table() -> None:
    assert choose(KUBECTL_GET, table_allowed=True) == Representation(JSON, "v1")


def test_v1beta1_table_when_asked_first() -> None:
    header = "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    assert choose(header, table_allowed=True) == Representation(JSON, "v1beta1")


def test_table_not_allowed_falls_back_to_json() -> None:
    assert choose(KUBECTL_GET, table_allowed=False) == Representation(JSON, "")


@pytest.mark.parametrize("header", [
    "application/vnd.kubernetes.protobuf,application/json",
    "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json",
    "application/vnd.kubernetes.protobuf, */*",
    "application/*",
    "text/html, application/json;q=0.9",
])
def test_protobuf_first_and_wildcards_get_json(header: str) -> None:
    assert choose(header, table_allowed=True) == Representation(JSON, "")


@pytest.mark.parametrize("header", ["application/yaml", "application/x-yaml", "text/yaml",
                                    "application/vnd.kubernetes.protobuf,application/yaml"])
def test_yaml(header: str) -> None:
    assert choose(header, table_allowed=True) == Representation(YAML, "")


def test_only_protobuf_is_406() -> None:
    with pytest.raises(StatusError) as caught:
        choose("application/vnd.kubernetes.protobuf", table_allowed=True)
    assert (caught.value.code, caught.value.reason) == (406, "NotAcceptable")
    assert caught.value.message == (
        "only the following media types are accepted: application/json, application/yaml")


@pytest.mark.parametrize("header", [
    "application/json;as=Table;v=v1;g=example.com",
    "application/json;as=Table;v=v2;g=meta.k8s.io",
    "application/json;as=Table;v=v1",
])
def test_table_for_another_group_or_version_only_is_406(header: str) -> None:
    with pytest.raises(StatusError) as caught:
        choose(header, table_allowed=True)
    assert caught.value.code == 406
    assert caught.value.message == (
        "only the following media types are accepted: "
        "application/json;as=Table;g=meta.k8s.io;v=v1, "
        "application/json;as=Table;g=meta.k8s.io;v=v1beta1")


def test_table_for_another_group_then_plain_json_is_json() -> None:
    header = "application/json;as=Table;v=v1;g=example.com,application/json"
    assert choose(header, table_allowed=True) == Representation(JSON, "")


# What client-go's metadata client sends (protobuf first, then JSON, then plain JSON).
METADATA_GET = ("application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;"
                "v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
                "application/json")
METADATA_LIST = METADATA_GET.replace("PartialObjectMetadata", "PartialObjectMetadataList")


def test_metadata_clients_get_partial_object_metadata() -> None:
    assert choose(METADATA_GET, table_allowed=True) == Representation(
        JSON, metadata_version="v1")
    assert choose(METADATA_LIST, table_allowed=True, collection=True) == Representation(
        JSON, metadata_version="v1")
    beta = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"
    assert choose(beta, table_allowed=False).metadata_version == "v1beta1"


def test_the_metadata_kind_must_fit_the_response() -> None:
    # A list asked for as single objects (or the reverse) falls through to plain JSON...
    assert choose(METADATA_GET, table_allowed=True, collection=True) == Representation(JSON)
    assert choose(METADATA_LIST, table_allowed=True) == Representation(JSON)
    # ... and is refused when nothing else is acceptable.
    with pytest.raises(StatusError) as refused:
        choose("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
               table_allowed=True)
    assert refused.value.code == 406
