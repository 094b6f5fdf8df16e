"""Content negotiation: which representation a client's ``Accept`` header asks for.

Clients ask for a Table (``kubectl get``), for JSON, sometimes for YAML, and client-go lists
protobuf first in some calls; we serve JSON for those, since JSON is always acceptable to
them. Metadata-only clients (client-go's metadata informers, garbage collectors, operators
watching objects they only need the names and labels of) ask for
``as=PartialObjectMetadata`` (one object, and each watch event) or
``as=PartialObjectMetadataList`` (a list). A media range is parsed once into
(type, parameters).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from kplane.apimachinery import errors

JSON = "application/json"
YAML = "application/yaml"


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class Representation:
    """What to send back: plain JSON/YAML, a Table, or objects reduced to their metadata
    (the meta.k8s.io version of either, when asked for)."""

    media_type: str = JSON
    table_version: str = ""
    metadata_version: str = ""


_META_VERSIONS = ("v1", "v1beta1")


def parse_accept(header: str) -> list[MediaRange]:
    ranges: list[MediaRange] = []
    for item in header.split(",")[:32]:
        pieces = [p.strip() for p in item.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            if "=" in piece:
                key, _, value = piece.partition("=")
                params[key.strip().lower()] = value.strip()
        ranges.append(MediaRange(pieces[0].lower(), params))
    return ranges


@functools.lru_cache(maxsize=256)
def choose(header: str, *, table_allowed: bool, collection: bool = False) -> Representation:
    """The representation for a resource response; 406 when nothing acceptable is offered.

    ``collection``: the response is a list, so PartialObjectMetadataList is what may be
    asked for (PartialObjectMetadata otherwise). Cached: clients send the same few Accept
    headers over and over."""
    if not header:
        return Representation()
    saw_table_request = False
    metadata_kind = "PartialObjectMetadataList" if collection else "PartialObjectMetadata"
    for media in parse_accept(header):
        as_kind = media.params.get("as")
        if as_kind:
            in_meta_group = (media.params.get("g") == "meta.k8s.io"
                             and media.params.get("v") in _META_VERSIONS)
            if as_kind == "Table" and media.type in (JSON, "*/*"):
                saw_table_request = True
                if table_allowed and in_meta_group:
                    return Representation(JSON, media.params["v"])
            elif as_kind == metadata_kind and media.type in (JSON, "*/*") and in_meta_group:
                return Representation(JSON, metadata_version=media.params["v"])
            continue
        if media.type in (JSON, "application/*", "*/*"):
            return Representation(JSON)
        if media.type in (YAML, "application/x-yaml", "text/yaml"):
            return Representation(YAML)
    if saw_table_request:
        raise errors.not_acceptable(
            "only the following media types are accepted: "
            "application/json;as=Table;g=meta.k8s.io;v=v1, "
            "application/json;as=Table;g=meta.k8s.io;v=v1beta1")
    raise errors.not_acceptable(
        "only the following media types are accepted: application/json, application/yaml")
