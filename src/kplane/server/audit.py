"""The audit log: one JSON line per request, in upstream's ``audit.k8s.io/v1`` Event shape.

Level ``Metadata``: who did what to which object in which workspace, and the response
code, without request or response bodies. Lines are written as each request completes and
flushed at once, so ``tail -f`` follows them and a crash loses at most the line being
written.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from kplane.auth.authn import UserInfo
from kplane.server.request_info import RequestInfo


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditLog:
    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = self._path.open("ab")

    def close(self) -> None:
        self._file.close()

    def record(self, *, info: RequestInfo | None, user: UserInfo | None, method: str,
               uri: str, code: int, source_ip: str, user_agent: str, received: float,
               workspace: str, impersonated_user: UserInfo | None = None) -> None:
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": str(uuid.uuid4()),
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": (info.verb if info is not None and info.verb else method.lower()),
            "user": (user.to_dict() if user is not None
                     else {"username": "system:anonymous", "groups": ["system:unauthenticated"]}),
            "sourceIPs": [source_ip] if source_ip else [],
            "userAgent": user_agent,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": _timestamp(received),
            "stageTimestamp": _timestamp(time.time()),
            "annotations": {"kcp.io/cluster": info.cluster if info is not None else "",
                            "kcp.io/path": workspace},
        }
        if impersonated_user is not None:
            event["impersonatedUser"] = impersonated_user.to_dict()
        if info is not None and info.is_resource_request:
            ref = {"resource": info.resource, "namespace": info.namespace, "name": info.name,
                   "apiGroup": info.group, "apiVersion": info.version,
                   "subresource": info.subresource}
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        self._file.write(orjson.dumps(event) + b"\n")
        self._file.flush()
