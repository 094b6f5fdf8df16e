"""The custom type index: which Established CRDs add which resource types to which cluster."""

from __future__ import annotations

from typing import Any

import orjson

from kplane.registry.custom_types import (
    CRD_PREFIX,
    CustomTypeIndex,
    is_established,
    resource_types_for,
    storage_version,
)
from kplane.registry.tables import table_for_kind
from kplane.storage.cacher import CachedObject, CacheWatcher

GROUP = "example.kplane.io"


def crd(*, established: bool = True, scope: str = "Namespaced") -> dict[str, Any]:
    version: dict[str, Any] = {
        "served": True, "subresources": {"status": {}, "scale": {
            "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
        "selectableFields": [{"jsonPath": ".spec.color"}],
        "schema": {"openAPIV3Schema": {"type": "object"}}}
    return {
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {"group": GROUP, "scope": scope,
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                           "shortNames": ["wg"], "categories": ["all"]},
                 "versions": [{**version, "name": "v1", "storage": True},
                              {**version, "name": "v1beta1", "storage": False},
                              {**version, "name": "v1alpha1", "storage": False,
                               "served": False}]},
        "status": {"conditions": [{"type": "Established",
                                   "status": "True" if established else "False"}]},
    }


def cached(obj: dict[str, Any], cluster: str, revision: int = 1) -> CachedObject:
    return CachedObject(key=f"{CRD_PREFIX}{cluster}/{obj['metadata']['name']}",
                        raw=orjson.dumps(obj), revision=revision,
                        name=obj["metadata"]["name"], namespace="", labels={}, fields={})


def test_established_and_storage_version() -> None:
    assert is_established(crd())
    assert not is_established(crd(established=False))
    assert not is_established({"status": {}})
    assert storage_version(crd()["spec"]) == "v1"
    assert storage_version({"versions": []}) == ""


def test_resource_types_cover_served_versions_only() -> None:
    found = resource_types_for(crd(), "c1")
    assert [rt.version for rt, _ in found] == ["v1", "v1beta1"]
    rt, strategy = found[1]
    assert (rt.group, rt.resource, rt.kind, rt.singular) == (GROUP, "widgets", "Widget", "widget")
    assert rt.namespaced and rt.cluster == "c1"
    assert rt.short_names == ("wg",) and rt.categories == ("all",)
    assert rt.subresources == ("status", "scale")
    assert rt.selectable_fields == ("spec.color",)
    assert rt.supports_strategic_merge is False
    assert strategy.storage_api_version == f"{GROUP}/v1"
    assert not resource_types_for(crd(scope="Cluster"), "c1")[0][0].namespaced


def test_index_follows_establishment_and_deletion() -> None:
    index = CustomTypeIndex()
    changed: list[str] = []
    index.on_change(changed.append)
    index.apply(cached(crd(established=False), "c1"), deleted=False)
    assert index.types("c1") == [] and changed == []
    index.apply(cached(crd(), "c1", revision=5), deleted=False)
    assert [rt.version for rt, _ in index.types("c1")] == ["v1", "v1beta1"]
    assert index.types("c2") == []
    assert (changed, index.revision) == (["c1"], 5)
    index.apply(cached(crd(), "c1", revision=6), deleted=False)
    assert changed == ["c1"], "an unchanged CRD must not notify"
    index.apply(cached(crd(), "c1", revision=7), deleted=True)
    assert index.types("c1") == [] and changed == ["c1", "c1"]


def test_a_version_without_printer_columns_prints_its_age_as_upstream() -> None:
    (_, strategy), *_ = resource_types_for(crd(), "c1")
    obj = {"apiVersion": f"{GROUP}/v1", "kind": "Widget",
           "metadata": {"name": "w", "namespace": "ns",
                        "creationTimestamp": "2026-01-01T00:00:00Z"}}
    table = table_for_kind(strategy, [obj], include_object="None", list_meta={})
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]


def test_bound_types_are_stored_under_the_exports_identity() -> None:
    types = resource_types_for(crd(), "", identity="abc123")
    assert {rt.stored_resource for rt, _ in types} == {"widgets:abc123"}
    assert {rt.resource for rt, _ in types} == {"widgets"}


def watcher() -> CacheWatcher:
    return CacheWatcher(prefix=f"/registry/{GROUP}/widgets/c1/", after_revision=0,
                        predicate=None, queue_limit=10, on_close=lambda _: None)


def test_watches_end_when_their_version_stops_being_served() -> None:
    index = CustomTypeIndex()
    index.apply(cached(crd(), "c1", revision=1), deleted=False)
    v1, v1beta1 = (rt for rt, _ in index.types("c1"))
    assert index.serves(v1) and index.serves(v1beta1)
    on_v1, on_beta = watcher(), watcher()
    index.track_watch(v1, on_v1)
    index.track_watch(v1beta1, on_beta)
    unserved = crd()
    unserved["spec"]["versions"][1]["served"] = False
    index.apply(cached(unserved, "c1", revision=2), deleted=False)
    assert on_beta.closed and not on_v1.closed
    assert not index.serves(v1beta1)
    index.apply(cached(unserved, "c1", revision=3), deleted=True)
    assert on_v1.closed
    late = watcher()
    index.track_watch(v1, late)
    assert late.closed, "a watch of a type no longer served ends at once"
