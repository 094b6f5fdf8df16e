"""Stored bytes and cached entries: resourceVersion lives in the key's revision only."""

from __future__ import annotations

from typing import Any

import orjson

from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.codec import CacheDecoder, decode_stored, encode_for_storage
from kplane.registry.keys import object_key
from kplane.storage.backend import KeyValue


def kv(key: str, obj: dict[str, Any], revision: int = 9) -> KeyValue:
    return KeyValue(key=key, value=encode_for_storage(obj), create_revision=revision,
                    mod_revision=revision)


def test_storage_drops_the_resource_version_without_touching_the_object() -> None:
    obj: dict[str, Any] = {"kind": "ConfigMap",
                           "metadata": {"name": "a", "resourceVersion": "5"}}
    value = encode_for_storage(obj)
    assert orjson.loads(value) == {"kind": "ConfigMap", "metadata": {"name": "a"}}
    assert obj["metadata"]["resourceVersion"] == "5"


def test_round_trip_sets_the_revision_as_resource_version() -> None:
    obj = {"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "5"},
           "data": {"k": "v"}}
    back = decode_stored(encode_for_storage(obj), 17)
    assert back == {**obj, "metadata": {"name": "a", "resourceVersion": "17"}}


def test_an_object_without_metadata_gets_some() -> None:
    assert encode_for_storage({"kind": "X"}) == b'{"kind":"X"}'
    assert decode_stored(b'{"kind":"X"}', 3) == {"kind": "X", "metadata": {"resourceVersion": "3"}}


def test_cache_decoder_builds_the_cached_object() -> None:
    decoder = CacheDecoder(Catalog())
    key = object_key(builtin.CONFIGMAPS, "root", "default", "a")
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "default", "labels": {"app": "web"}}}
    cached = decoder(kv(key, obj, revision=12))
    assert (cached.key, cached.revision, cached.name, cached.namespace) == (
        key, 12, "a", "default")
    assert cached.labels == {"app": "web"}
    assert cached.fields == {"metadata.name": "a", "metadata.namespace": "default"}
    assert orjson.loads(cached.raw) == {**obj, "metadata": {**obj["metadata"],
                                                            "resourceVersion": "12"}}


def test_cache_decoder_uses_the_kinds_selectable_fields() -> None:
    decoder = CacheDecoder(Catalog())
    secret = decoder(kv(object_key(builtin.SECRETS, "root", "default", "s"),
                        {"metadata": {"name": "s", "namespace": "default"}, "type": "Opaque"}))
    assert secret.fields == {"metadata.name": "s", "metadata.namespace": "default",
                             "type": "Opaque"}
    namespace = decoder(kv(object_key(builtin.NAMESPACES, "root", "", "team"),
                           {"metadata": {"name": "team"}, "status": {"phase": "Active"}}))
    assert namespace.fields == {"metadata.name": "team", "status.phase": "Active"}


def test_cache_decoder_falls_back_for_unknown_resources() -> None:
    decoder = CacheDecoder(Catalog())
    cached = decoder(kv("/registry/example.com/widgets/root/default/w",
                        {"metadata": {"name": "w", "namespace": "default"}}))
    assert cached.fields == {"metadata.name": "w", "metadata.namespace": "default"}
    assert cached.labels == {}
