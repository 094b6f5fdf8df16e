"""Workspaces with kplane.io/expires-at are deleted by the server when the time passes."""

from __future__ import annotations

import asyncio
import pathlib
from datetime import UTC, datetime, timedelta

from kplane.controllers.expiry import EXPIRES_ANNOTATION, ExpiryController, parse_expiry
from kplane.registry import builtin
from kplane.registry.options import WriteOptions
from kplane.registry.store import Target
from tests.registry.test_store import running_store

OPTIONS = WriteOptions(field_manager="test")


def _stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_parse_expiry() -> None:
    assert parse_expiry("2026-11-28T18:00:00Z") == datetime(
        2026, 11, 28, 18, tzinfo=UTC).timestamp()
    assert parse_expiry("tomorrow") is None


async def _wait_gone(store: object, target: Target, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if store.get_cached(target) is None:  # type: ignore[attr-defined]
            return True
        await asyncio.sleep(0.05)
    return False


async def test_expired_workspaces_go_and_extended_ones_stay(tmp_path: pathlib.Path) -> None:
    async with running_store(tmp_path) as store:
        controller = ExpiryController(store=store)
        await controller.start()
        try:
            def workspace(name: str, expires: str | None) -> dict[str, object]:
                annotations = {EXPIRES_ANNOTATION: expires} if expires else {}
                return {"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                        "metadata": {"name": name, "annotations": annotations}}

            soon = Target(builtin.WORKSPACES, "root", "", "soon")
            later = Target(builtin.WORKSPACES, "root", "", "later")
            forever = Target(builtin.WORKSPACES, "root", "", "forever")
            await store.create(soon, workspace("soon", _stamp(timedelta(seconds=1))), OPTIONS)
            await store.create(later, workspace("later", _stamp(timedelta(seconds=1))),
                               OPTIONS)
            await store.create(forever, workspace("forever", None), OPTIONS)

            def extend(current: dict[str, object]) -> dict[str, object]:
                meta = current["metadata"]
                assert isinstance(meta, dict)
                meta["annotations"][EXPIRES_ANNOTATION] = _stamp(timedelta(hours=1))
                return current

            await store.update_with(later, extend, OPTIONS)
            assert await _wait_gone(store, soon, 5.0)
            await asyncio.sleep(0.5)
            assert store.get_cached(later) is not None
            assert store.get_cached(forever) is not None
        finally:
            await controller.stop()
