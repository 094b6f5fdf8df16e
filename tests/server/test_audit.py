"""The audit log: one valid JSON line per request, naming who, what, where and the outcome."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest

from kplane.auth.authn import UserInfo
from kplane.server.audit import AuditLog
from kplane.server.request_info import parse_request
from tests.server.harness import ADMIN, SecureStack, Stack, cert_user, configmap, secured

BOB = cert_user("bob")


@pytest.fixture
def audit(tmp_path: pathlib.Path) -> Iterator[AuditLog]:
    log = AuditLog(tmp_path / "logs" / "audit.log")
    yield log
    log.close()


@pytest.fixture
async def secure(stack: Stack, tmp_path: pathlib.Path,
                 audit: AuditLog) -> AsyncIterator[SecureStack]:
    async with secured(stack, tmp_path / "pki", audit=audit) as s:
        yield s


def events(tmp_path: pathlib.Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "logs" / "audit.log").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def test_record_writes_one_flushed_line(tmp_path: pathlib.Path, audit: AuditLog) -> None:
    info = parse_request("GET", "/clusters/team/api/v1/namespaces/default/configmaps/a",
                         watch=False)
    audit.record(info=info, user=UserInfo(name="bob", groups=("g",), uid="u"), method="GET",
                 uri="/x?y=1", code=200, source_ip="10.0.0.1", user_agent="kubectl/v1.31",
                 received=0.0, workspace="root:team")
    (event,) = events(tmp_path)  # readable before close: flushed at once
    assert event["kind"] == "Event"
    assert event["apiVersion"] == "audit.k8s.io/v1"
    assert event["level"] == "Metadata"
    assert event["stage"] == "ResponseComplete"
    assert event["verb"] == "get"
    assert event["requestURI"] == "/x?y=1"
    assert event["user"] == {"username": "bob", "uid": "u", "groups": ["g"]}
    assert "impersonatedUser" not in event
    assert event["sourceIPs"] == ["10.0.0.1"]
    assert event["userAgent"] == "kubectl/v1.31"
    assert event["responseStatus"] == {"metadata": {}, "code": 200}
    assert event["requestReceivedTimestamp"] == "1970-01-01T00:00:00.000000Z"
    assert event["objectRef"] == {"resource": "configmaps", "namespace": "default",
                                  "name": "a", "apiVersion": "v1"}
    assert event["annotations"] == {"kcp.io/cluster": "team", "kcp.io/path": "root:team"}


async def test_one_line_per_request(tmp_path: pathlib.Path, secure: SecureStack) -> None:
    created = await secure.request("POST", "/clusters/root/api/v1/namespaces/default/configmaps",
                                   body=configmap("a"), query="fieldManager=x")
    assert created.status == 201
    await secure.request("GET", "/clusters/team/api/v1/namespaces", user=None)
    await secure.request("GET", "/clusters/team/apis/apps/v1/deployments", user=BOB)
    await secure.request("GET", "/healthz", user=None)
    create, unauthenticated, forbidden, health = events(tmp_path)

    assert create["verb"] == "create"
    assert create["requestURI"] == \
        "/clusters/root/api/v1/namespaces/default/configmaps?fieldManager=x"
    assert create["user"]["username"] == ADMIN.name
    # As upstream, the created object is named even at level Metadata.
    assert create["objectRef"] == {"resource": "configmaps", "namespace": "default",
                                   "name": "a", "apiVersion": "v1"}
    assert create["responseStatus"]["code"] == 201
    assert create["annotations"] == {"kcp.io/cluster": "root", "kcp.io/path": "root"}
    assert create["sourceIPs"] == ["127.0.0.1"]

    assert unauthenticated["responseStatus"]["code"] == 401
    assert unauthenticated["user"]["username"] == "system:anonymous"
    assert unauthenticated["annotations"]["kcp.io/path"] == "team"

    assert forbidden["responseStatus"]["code"] == 403
    assert forbidden["user"] == {"username": "bob", "groups": ["system:authenticated"]}
    assert forbidden["verb"] == "list"
    assert forbidden["objectRef"] == {"resource": "deployments", "apiGroup": "apps",
                                      "apiVersion": "v1"}

    assert health["verb"] == "get"
    assert health["responseStatus"]["code"] == 200
    assert "objectRef" not in health


async def test_impersonation_names_both_users(tmp_path: pathlib.Path,
                                              secure: SecureStack) -> None:
    await secure.request("GET", "/clusters/team/api/v1/namespaces",
                         headers=[("Impersonate-User", "bob")])
    (event,) = events(tmp_path)[-1:]
    assert event["user"]["username"] == ADMIN.name
    assert event["impersonatedUser"] == {"username": "bob",
                                         "groups": ["system:authenticated"]}
    assert event["responseStatus"]["code"] == 403

