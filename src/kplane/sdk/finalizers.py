"""Adding and removing a finalizer without losing anyone else's.

``metadata.finalizers`` is a list several controllers write. Both helpers send a JSON patch
that first tests the object's resourceVersion, so the list they write is exactly the list
they read plus (or minus) their own entry; when someone wrote in between, the test fails
(409 or 422), and they read the object again and retry.
"""

from __future__ import annotations

from typing import Any

from kplane.sdk.client import Client
from kplane.sdk.errors import ApiError, NotFound
from kplane.sdk.resource import Resource, cluster_of

_ATTEMPTS = 10
_RETRY_STATUSES = (409, 422)


async def ensure_finalizer(client: Client, res: Resource, obj: dict[str, Any], finalizer: str,
                           cluster: str | None = None) -> dict[str, Any]:
    """The object with ``finalizer`` in its finalizers (added if missing).

    ``cluster`` defaults to the object's own logical cluster (``cluster_of(obj)``), for a
    client whose base URL names no cluster; pass "" to use the base URL as it is.
    """
    updated = await _edit(client, res, obj, finalizer, cluster, add=True)
    if updated is None:
        meta = obj.get("metadata") or {}
        raise NotFound(404, "NotFound", f"{res} {meta.get('name')!r} not found")
    return updated


async def remove_finalizer(client: Client, res: Resource, obj: dict[str, Any], finalizer: str,
                           cluster: str | None = None) -> dict[str, Any] | None:
    """The object without ``finalizer``; None when the object is gone."""
    return await _edit(client, res, obj, finalizer, cluster, add=False)


async def _edit(client: Client, res: Resource, obj: dict[str, Any], finalizer: str,
                cluster: str | None, *, add: bool) -> dict[str, Any] | None:
    where = cluster_of(obj) if cluster is None else cluster
    current = obj
    for _attempt in range(_ATTEMPTS):
        meta = current.get("metadata") or {}
        name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
        finalizers = [str(f) for f in meta.get("finalizers") or []]
        if (finalizer in finalizers) == add:
            return current
        wanted = [*finalizers, finalizer] if add else [f for f in finalizers if f != finalizer]
        version = str(meta.get("resourceVersion") or "")
        patch: list[dict[str, Any]] = []
        if version:
            patch.append({"op": "test", "path": "/metadata/resourceVersion", "value": version})
        # "add" replaces a member that exists and creates one that does not.
        patch.append({"op": "add", "path": "/metadata/finalizers", "value": wanted})
        try:
            return await client.patch(res, name, patch, namespace=namespace, cluster=where,
                                      patch_type="json")
        except NotFound:
            return None
        except ApiError as error:
            if error.status not in _RETRY_STATUSES:
                raise
            fresh = await _reread(client, res, name, namespace, where)
            if fresh is None:
                return None
            fresh_version = str((fresh.get("metadata") or {}).get("resourceVersion") or "")
            if fresh_version == version:
                raise  # not a race: the patch itself was refused
            current = fresh
    raise RuntimeError(f"{res} {current.get('metadata', {}).get('name')!r}: finalizers kept "
                       f"changing under us after {_ATTEMPTS} attempts")


async def _reread(client: Client, res: Resource, name: str, namespace: str,
                  cluster: str) -> dict[str, Any] | None:
    try:
        return await client.get(res, name, namespace=namespace, cluster=cluster)
    except NotFound:
        return None
