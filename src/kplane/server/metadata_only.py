"""Objects reduced to their metadata: meta.k8s.io's PartialObjectMetadata(List).

Clients that only need names, labels, owner references and finalizers (client-go's
metadata informers, garbage collectors, many operators) ask for these through the Accept
header (see :mod:`kplane.server.negotiation`), for single objects, lists and each event of
a watch. Sending only ``metadata`` keeps large objects (Secrets, big custom resources) off
their wire and out of their memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PARTIAL_OBJECT = "PartialObjectMetadata"
PARTIAL_LIST = "PartialObjectMetadataList"


def partial_object(obj: Mapping[str, Any], version: str) -> dict[str, Any]:
    """``obj`` as PartialObjectMetadata of meta.k8s.io/``version``."""
    return {"kind": PARTIAL_OBJECT, "apiVersion": f"meta.k8s.io/{version}",
            "metadata": obj.get("metadata") or {}}


def partial_list(objects: list[Mapping[str, Any]], list_meta: Mapping[str, Any],
                 version: str) -> dict[str, Any]:
    """A list's items as PartialObjectMetadataList of meta.k8s.io/``version``."""
    return {"kind": PARTIAL_LIST, "apiVersion": f"meta.k8s.io/{version}",
            "metadata": dict(list_meta),
            "items": [partial_object(obj, version) for obj in objects]}
