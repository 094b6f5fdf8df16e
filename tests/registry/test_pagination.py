"""Continue tokens: round trips, and refusal of anything a client could have forged."""

from __future__ import annotations

import base64

import orjson
import pytest

from kplane.apimachinery.errors import StatusError
from kplane.registry.pagination import after_key, decode_continue, encode_continue
from kplane.storage.cacher import CachedObject


def token_of(doc: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")


def cached(key: str) -> CachedObject:
    return CachedObject(key, b"{}", 1, key.rsplit("/", 1)[-1], "", {}, {})


def test_round_trip() -> None:
    token = encode_continue(start_after="default/web-1", revision=42)
    assert "=" not in token
    decoded = decode_continue(token)
    assert (decoded.start_after, decoded.revision) == ("default/web-1", 42)


def test_token_has_upstreams_shape() -> None:
    token = encode_continue(start_after="a", revision=7)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert orjson.loads(raw) == {"v": "meta.k8s.io/v1", "rv": 7, "start": "a\x00"}


def test_a_token_without_the_terminator_is_accepted() -> None:
    decoded = decode_continue(token_of({"v": "meta.k8s.io/v1", "rv": 3, "start": "b"}))
    assert (decoded.start_after, decoded.revision) == ("b", 3)


@pytest.mark.parametrize(("token", "detail"), [
    ("!!!", "not a continue token"),
    (base64.urlsafe_b64encode(b"not json").decode(), "not a continue token"),
    (token_of(["a"]), "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
    (token_of({"v": "meta.k8s.io/v2", "rv": 3, "start": "a"}),
     "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
    (token_of({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}),
     "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
    (token_of({"v": "meta.k8s.io/v1", "rv": "3", "start": "a"}),
     "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
    (token_of({"v": "meta.k8s.io/v1", "rv": True, "start": "a"}),
     "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
    (token_of({"v": "meta.k8s.io/v1", "rv": 3}),
     "incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
    (token_of({"v": "meta.k8s.io/v1", "rv": 3, "start": ""}), "invalid start key"),
    (token_of({"v": "meta.k8s.io/v1", "rv": 3, "start": "/registry/core/secrets/x"}),
     "invalid start key"),
    (token_of({"v": "meta.k8s.io/v1", "rv": 3, "start": "../kube-system/x"}),
     "invalid start key"),
    (token_of({"v": "meta.k8s.io/v1", "rv": 3, "start": "a/../../b"}), "invalid start key"),
    ("a" * 4097, "too long"),
])
def test_forged_tokens_are_bad_requests(token: str, detail: str) -> None:
    with pytest.raises(StatusError) as info:
        decode_continue(token)
    assert (info.value.code, info.value.message) == (400, f"continue key is not valid: {detail}")


def test_dots_inside_a_name_are_not_a_parent_reference() -> None:
    assert decode_continue(encode_continue(start_after="ns/a..b", revision=1)).start_after == \
        "ns/a..b"


def test_after_key_is_strictly_after() -> None:
    objects = [cached(f"/p/{n}") for n in ["a", "b", "c"]]
    assert [o.name for o in after_key(objects, "/p/a")] == ["b", "c"]
    assert [o.name for o in after_key(objects, "/p/aa")] == ["b", "c"]
    assert [o.name for o in after_key(objects, "/p/")] == ["a", "b", "c"]
    assert after_key(objects, "/p/c") == []
