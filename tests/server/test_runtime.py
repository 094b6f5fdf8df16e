"""Assembling the server: first-start objects and the URL host helper."""

from __future__ import annotations

import orjson

from kplane.registry import builtin
from kplane.registry.keys import object_key
from kplane.registry.store import Target
from kplane.server.runtime import INITIAL_NAMESPACES, ROOT_CLUSTER, _url_host, bootstrap
from tests.server.harness import Stack


def _namespace_names(stack: Stack) -> list[str]:
    prefix = "/registry/core/namespaces/"
    return sorted(orjson.loads(o.raw)["metadata"]["name"] for o in stack.cacher.list(prefix))


async def test_bootstrap_creates_the_initial_namespaces(stack: Stack) -> None:
    assert INITIAL_NAMESPACES == ("default", "kube-system", "kube-public")
    assert _namespace_names(stack) == ["default", "kube-public", "kube-system"]
    for name in INITIAL_NAMESPACES:
        cached = stack.store.get_cached(Target(builtin.NAMESPACES, ROOT_CLUSTER, "", name))
        assert cached is not None
        obj = orjson.loads(cached.raw)
        assert obj["kind"] == "Namespace"
        assert obj["status"]["phase"] == "Active"


async def test_bootstrap_is_idempotent(stack: Stack) -> None:
    revision = await stack.backend.current_revision()
    await bootstrap(stack.store)
    await bootstrap(stack.store)
    assert await stack.backend.current_revision() == revision
    assert _namespace_names(stack) == ["default", "kube-public", "kube-system"]


async def test_bootstrap_leaves_a_terminating_namespace_alone(stack: Stack) -> None:
    response = await stack.request("DELETE", "/api/v1/namespaces/kube-public")
    assert response.status == 200
    assert response.json()["status"]["phase"] == "Terminating"
    before = await stack.backend.current_revision()
    await bootstrap(stack.store)
    assert await stack.backend.current_revision() == before


async def test_bootstrap_recreates_a_missing_namespace(stack: Stack) -> None:
    key = object_key(builtin.NAMESPACES, ROOT_CLUSTER, "", "kube-public")
    deleted = await stack.backend.delete(key)
    await stack.cacher.wait_for_revision(deleted.mod_revision)
    assert _namespace_names(stack) == ["default", "kube-system"]
    await bootstrap(stack.store)
    assert _namespace_names(stack) == ["default", "kube-public", "kube-system"]


def test_url_host_brackets_ipv6_only() -> None:
    assert _url_host("127.0.0.1") == "127.0.0.1"
    assert _url_host("::1") == "[::1]"
    assert _url_host("localhost") == "localhost"
