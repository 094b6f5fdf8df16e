"""How objects become stored bytes and cached entries, and back.

Stored values are the object's JSON without ``metadata.resourceVersion``: the revision a
backend assigns is only known after the write, so readers derive the resourceVersion from
the key's ``mod_revision``. The watch cache decodes each stored value once, sets the
resourceVersion and keeps the resulting bytes, so GET and LIST hand those bytes to the socket
without decoding or encoding again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from kplane.registry.catalog import Catalog
from kplane.registry.keys import parse_key
from kplane.storage.backend import KeyValue
from kplane.storage.cacher import CachedObject

log = logging.getLogger(__name__)


def encode_for_storage(obj: Mapping[str, Any]) -> bytes:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and "resourceVersion" in meta:
        stripped = dict(meta)
        del stripped["resourceVersion"]
        return orjson.dumps({**obj, "metadata": stripped})
    return orjson.dumps(obj)


def decode_stored(value: bytes, revision: int) -> dict[str, Any]:
    """The object a stored value holds, with its resourceVersion set."""
    obj: dict[str, Any] = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


class CacheDecoder:
    """Turns stored key-values into :class:`CachedObject` for the watch cache."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def __call__(self, kv: KeyValue) -> CachedObject:
        parsed = parse_key(kv.key)
        obj = decode_stored(kv.value, kv.mod_revision)
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        fields: dict[str, str]
        rt = (self._catalog.by_storage(parsed.group, parsed.resource, parsed.cluster)
              if parsed else None)
        if rt is not None:
            fields = self._catalog.strategy(rt).selectable_fields(obj)
        else:
            fields = {"metadata.name": str(meta.get("name", "")),
                      "metadata.namespace": str(meta.get("namespace", ""))}
        return CachedObject(
            key=kv.key,
            raw=orjson.dumps(obj),
            revision=kv.mod_revision,
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            labels=labels,
            fields=fields,
        )
