"""PartialObjectMetadata(List): an object's metadata and nothing else."""

from __future__ import annotations

from kplane.server.metadata_only import partial_list, partial_object

SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"k": "dg=="},
          "metadata": {"name": "s", "namespace": "d", "labels": {"a": "b"}}}


def test_an_object_keeps_only_its_metadata() -> None:
    assert partial_object(SECRET, "v1") == {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"name": "s", "namespace": "d", "labels": {"a": "b"}}}


def test_a_list_keeps_its_list_metadata() -> None:
    listed = partial_list([SECRET], {"resourceVersion": "7", "continue": "x"}, "v1beta1")
    assert listed["kind"] == "PartialObjectMetadataList"
    assert listed["apiVersion"] == "meta.k8s.io/v1beta1"
    assert listed["metadata"] == {"resourceVersion": "7", "continue": "x"}
    assert listed["items"] == [partial_object(SECRET, "v1beta1")]
