"""The PostgreSQL provider end to end: real PostgreSQL, a real kplane server, the provider as
its own process (the installed console script) and kubectl as the consumers' client.

One provider workspace exports ``postgresinstances.db.kplane.io``; two consumer workspaces
bind it and accept the claim on their Secrets. Instances become real databases whose
credentials work, consumers see only their own, deletion drops database and role, and a
provider restart picks up what happened while it was down without duplicating anything.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from kplane_postgres.naming import instance_names
from tests.e2e.server import KplaneProcess, free_port
from tests.providers.postgres.pg_server import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROVIDER_BIN = Path(sys.executable).parent / "kplane-postgres-provider"
GROUP = "db.kplane.io"
EXPORT = "postgres"
PROVIDERS, CONSUMER_A, CONSUMER_B = "providers", "consumer-a", "consumer-b"
# Binds the export but rejects the claim on its Secrets.
NO_SECRETS = "consumer-no-secrets"
APIS = "apis/apis.kcp.io"
WAIT = 60.0


def eventually(check: Callable[[], Any], *, timeout: float = WAIT, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


def ready_workspace(http: httpx.Client, name: str) -> str:
    """Create ``root:<name>``, wait until it is Ready; returns its logical cluster name."""
    created = http.post("/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces",
                        json={"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                              "metadata": {"name": name}, "spec": {}})
    assert created.status_code == 201, created.text

    def ready() -> str | None:
        workspace = http.get(f"/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/{name}")
        body = workspace.json()
        if (body.get("status") or {}).get("phase") == "Ready":
            return str(body["spec"]["cluster"])
        return None

    cluster: str = eventually(ready, what=f"workspace {name} Ready")
    return cluster


@dataclass
class Provider:
    """The provider process, started and stopped like a deployment would."""

    kubeconfig: Path
    dsn: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        log = self.log_path.open("ab")
        # The DSN (with its password) goes through the environment, not argv.
        env = {**os.environ, "KPLANE_POSTGRES_DSN": self.dsn}
        self.process = subprocess.Popen(
            [str(PROVIDER_BIN), "--kubeconfig", str(self.kubeconfig),
             "--workspace", f"root:{PROVIDERS}", "--group", GROUP, "--export", EXPORT,
             "--workers", "2", "--log-level", "DEBUG"],
            stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class World:
    kplane: KplaneProcess
    pg: PostgresServer
    provider: Provider
    http: httpx.Client
    clusters: dict[str, str]  # workspace name -> logical cluster name

    def kubectl(self, workspace: str, *args: str, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kplane.kubectl(*args, input=input, check=check,
                                   server=f"{self.kplane.url}/clusters/root:{workspace}")

    def kubectl_json(self, workspace: str, *args: str) -> Any:
        return json.loads(self.kubectl(workspace, *args, "-o", "json").stdout)

    def get(self, workspace: str, path: str) -> httpx.Response:
        return self.http.get(f"/clusters/root:{workspace}/{path}")

    def instance(self, workspace: str, name: str, namespace: str = "default") -> Any:
        response = self.get(workspace,
                            f"apis/{GROUP}/v1/namespaces/{namespace}/postgresinstances/{name}")
        return response.json() if response.status_code == 200 else None

    def role_and_databases(self, workspace: str, name: str,
                           namespace: str = "default") -> tuple[bool, list[str]]:
        """Whether the instance's role exists, and the databases it owns."""
        role = instance_names(self.clusters[workspace], namespace, name, group=GROUP).role
        with psycopg.connect(self.pg.dsn(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (role,)).fetchone() is not None
            owned = conn.execute(
                "SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
                " WHERE r.rolname = %s ORDER BY 1", (role,)).fetchall()
        return exists, [row[0] for row in owned]


def instance_manifest(name: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/v1", "kind": "PostgresInstance",
                       "metadata": {"name": name, "namespace": "default"}, "spec": spec})


def binding_manifest(claim: str = "Accepted") -> str:
    return json.dumps({
        "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
        "metadata": {"name": EXPORT},
        "spec": {"reference": {"export": {"path": f"root:{PROVIDERS}", "name": EXPORT}},
                 "permissionClaims": [{"group": "", "resource": "secrets", "verbs": ["*"],
                                       "selector": {"matchAll": True},
                                       "state": claim}]}})


def ready_condition(instance: Any) -> dict[str, Any] | None:
    for condition in ((instance or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def wait_ready(world: World, workspace: str, name: str) -> Any:
    def check() -> Any:
        instance = world.instance(workspace, name)
        condition = ready_condition(instance)
        return instance if condition and condition["status"] == "True" else None

    try:
        return eventually(check, what=f"{workspace}/{name} Ready")
    except AssertionError:
        print(world.provider.log()[-6000:])
        raise


def wait_reason(world: World, workspace: str, name: str, reason: str) -> dict[str, Any]:
    def check() -> Any:
        condition = ready_condition(world.instance(workspace, name))
        return condition if condition and condition.get("reason") == reason else None

    found: dict[str, Any] = eventually(check, what=f"{workspace}/{name} {reason}")
    return found


def read_secret(world: World, workspace: str, name: str) -> dict[str, str]:
    secret = world.kubectl_json(workspace, "get", "secret", name, "-n", "default")
    assert secret["type"] == "Opaque"
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def query_with(credentials: dict[str, str], query: str) -> Any:
    with psycopg.connect(credentials["uri"], connect_timeout=5) as conn:
        return conn.execute(query).fetchall()


def bind(world: World, consumer: str, claim: str = "Accepted") -> None:
    def created() -> bool:
        # Refused until the export exists, which the provider publishes when it starts.
        return world.kubectl(consumer, "apply", "-f", "-", input=binding_manifest(claim),
                             check=False).returncode == 0

    def bound() -> bool:
        binding = world.get(consumer, f"{APIS}/v1alpha2/apibindings/{EXPORT}").json()
        return bool((binding.get("status") or {}).get("phase") == "Bound")

    eventually(created, what=f"{consumer} binding created")
    eventually(bound, what=f"{consumer} binding Bound")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg: PostgresServer) -> Iterator[World]:
    base = tmp_path_factory.mktemp("pg-e2e")
    kplane = KplaneProcess(data_dir=base / "data", port=free_port())
    kplane.start()
    provider = Provider(kubeconfig=kplane.kubeconfig, dsn=pg.url(),
                        log_path=base / "provider.log")
    try:
        with kplane.client() as http:
            clusters = {name: ready_workspace(http, name)
                        for name in (PROVIDERS, CONSUMER_A, CONSUMER_B, NO_SECRETS)}
            provider.start()
            world = World(kplane=kplane, pg=pg, provider=provider, http=http,
                          clusters=clusters)
            for consumer in (CONSUMER_A, CONSUMER_B):
                bind(world, consumer)
            bind(world, NO_SECRETS, claim="Rejected")
            yield world
    finally:
        if provider.alive():
            provider.stop()
        kplane.stop()


def test_the_provider_publishes_its_api(world: World) -> None:
    schemas = world.get(PROVIDERS, f"{APIS}/v1alpha1/apiresourceschemas").json()["items"]
    names = [s["metadata"]["name"] for s in schemas]
    assert len(names) == 1 and names[0].startswith("v1-")
    assert names[0].endswith(f".postgresinstances.{GROUP}")
    export = world.get(PROVIDERS, f"{APIS}/v1alpha2/apiexports/{EXPORT}").json()
    assert export["spec"]["resources"][0]["schema"] == names[0]
    assert export["spec"]["permissionClaims"][0]["resource"] == "secrets"
    assert len(export["status"]["identityHash"]) == 64
    # Consumers see the kind like a built-in one.
    resources = world.kubectl(CONSUMER_A, "api-resources", f"--api-group={GROUP}").stdout
    assert "postgresinstances" in resources and "PostgresInstance" in resources


def test_an_instance_becomes_a_database_its_secret_unlocks(world: World) -> None:
    world.kubectl(CONSUMER_A, "apply", "-f", "-",
                  input=instance_manifest("orders", extensions=["citext"]))
    instance = wait_ready(world, CONSUMER_A, "orders")
    assert instance["metadata"]["finalizers"] == [f"{GROUP}/postgres"]
    status = instance["status"]
    names = instance_names(world.clusters[CONSUMER_A], "default", "orders", group=GROUP)
    assert status["database"] == names.default_database
    assert status["username"] == names.role
    assert status["secretName"] == "orders-postgres"
    assert (ready_condition(instance) or {}).get("reason") == "Provisioned"

    credentials = read_secret(world, CONSUMER_A, "orders-postgres")
    assert credentials["host"] == "127.0.0.1" and credentials["port"] == str(world.pg.port)
    assert credentials["database"] == names.default_database
    assert credentials["username"] == names.role
    rows = query_with(credentials, "SELECT current_user, current_database(),"
                                   " 'A'::citext = 'a'::citext")
    assert rows == [(names.role, names.default_database, True)]
    secret = world.kubectl_json(CONSUMER_A, "get", "secret", "orders-postgres", "-n", "default")
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "PostgresInstance", "orders", instance["metadata"]["uid"])

    # kubectl's table shows the printer columns.
    table = world.kubectl(CONSUMER_A, "get", "postgresinstances", "-n", "default").stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "DATABASE", "AGE"]
    assert row.split()[:3] == ["orders", "True", names.default_database]
    # The short name and the category work too.
    for alias in ("pgi", "databases"):
        assert world.kubectl(CONSUMER_A, "get", alias, "-n", "default", "-o", "name").stdout \
            .split() == [f"postgresinstance.{GROUP}/orders"]


def test_consumers_only_see_their_own_instances(world: World) -> None:
    # Same namespace and name in both consumers: two different databases.
    world.kubectl(CONSUMER_B, "apply", "-f", "-", input=instance_manifest("orders"))
    b = wait_ready(world, CONSUMER_B, "orders")
    a = wait_ready(world, CONSUMER_A, "orders")
    assert a["status"]["database"] != b["status"]["database"]
    for workspace, own in ((CONSUMER_A, a), (CONSUMER_B, b)):
        listed = world.kubectl_json(workspace, "get", "postgresinstances", "-A")["items"]
        assert [i["metadata"]["uid"] for i in listed] == [own["metadata"]["uid"]]
    creds_a = read_secret(world, CONSUMER_A, "orders-postgres")
    creds_b = read_secret(world, CONSUMER_B, "orders-postgres")
    assert creds_a["password"] != creds_b["password"]
    # A's role may not even connect to B's database.
    crossed = dict(creds_a, uri=creds_a["uri"].rsplit("/", 1)[0] + "/" + creds_b["database"])
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        query_with(crossed, "SELECT 1")


def test_a_database_name_is_not_handed_to_a_second_tenant(world: World) -> None:
    world.kubectl(CONSUMER_A, "apply", "-f", "-",
                  input=instance_manifest("first", databaseName="popular_name"))
    wait_ready(world, CONSUMER_A, "first")
    world.kubectl(CONSUMER_B, "apply", "-f", "-",
                  input=instance_manifest("second", databaseName="popular_name"))
    condition = wait_reason(world, CONSUMER_B, "second", "DatabaseNameTaken")
    assert condition["status"] == "False" and "popular_name" in condition["message"]
    assert world.role_and_databases(CONSUMER_A, "first") == (True, ["popular_name"])
    assert world.role_and_databases(CONSUMER_B, "second") == (False, [])
    for workspace, name in ((CONSUMER_B, "second"), (CONSUMER_A, "first")):
        world.kubectl(workspace, "delete", "postgresinstance", name, "-n", "default",
                      "--timeout=60s")
    assert world.role_and_databases(CONSUMER_A, "first") == (False, [])


def test_without_the_secrets_claim_an_instance_says_why(world: World) -> None:
    world.kubectl(NO_SECRETS, "apply", "-f", "-", input=instance_manifest("lonely"))
    condition = wait_reason(world, NO_SECRETS, "lonely", "SecretAccessDenied")
    assert "permission claim" in condition["message"]
    assert world.role_and_databases(NO_SECRETS, "lonely") == (False, [])
    world.kubectl(NO_SECRETS, "delete", "postgresinstance", "lonely", "-n", "default",
                  "--timeout=60s")


def test_the_schema_refuses_bad_specs(world: World) -> None:
    result = world.kubectl(CONSUMER_A, "apply", "-f", "-", check=False,
                           input=instance_manifest("bad", databaseName="Not-Valid",
                                                   connectionLimit=-5))
    assert result.returncode != 0
    assert "databaseName" in result.stderr and "connectionLimit" in result.stderr
    assert world.instance(CONSUMER_A, "bad") is None


@pytest.mark.parametrize(("name", "spec", "reason"), [
    ("reserved", {"databaseName": "postgres"}, "InvalidDatabaseName"),
    ("untrusted", {"extensions": ["file_fdw"]}, "ExtensionNotAllowed"),
    ("missing-ext", {"extensions": ["no_such_extension"]}, "ExtensionUnavailable"),
])
def test_specs_the_provider_cannot_honour_are_reported(world: World, name: str,
                                                       spec: dict[str, Any],
                                                       reason: str) -> None:
    world.kubectl(CONSUMER_B, "apply", "-f", "-", input=instance_manifest(name, **spec))
    condition = wait_reason(world, CONSUMER_B, name, reason)
    assert condition["status"] == "False" and condition["message"]
    assert world.provider.alive()
    # Refused before anything was made in PostgreSQL, and deletion still works.
    assert world.role_and_databases(CONSUMER_B, name) == (False, [])
    world.kubectl(CONSUMER_B, "delete", "postgresinstance", name, "-n", "default",
                  "--timeout=60s")
    assert world.role_and_databases(CONSUMER_B, name) == (False, [])


def test_a_deleted_secret_is_written_again(world: World) -> None:
    world.kubectl(CONSUMER_B, "delete", "secret", "orders-postgres", "-n", "default")

    def recreated() -> dict[str, str] | None:
        result = world.kubectl(CONSUMER_B, "get", "secret", "orders-postgres", "-n", "default",
                               "-o", "json", check=False)
        if result.returncode != 0:
            return None
        data = json.loads(result.stdout)["data"]
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    credentials: dict[str, str] = eventually(recreated, what="Secret again")
    # A new password (the old one was only in the deleted Secret), and it works.
    assert query_with(credentials, "SELECT 1") == [(1,)]


def test_a_new_secret_name_moves_the_same_credentials(world: World) -> None:
    world.kubectl(CONSUMER_A, "apply", "-f", "-", input=instance_manifest("moving"))
    wait_ready(world, CONSUMER_A, "moving")
    before = read_secret(world, CONSUMER_A, "moving-postgres")
    world.kubectl(CONSUMER_A, "patch", "postgresinstance", "moving", "-n", "default",
                  "--type=merge", "-p", '{"spec": {"secretName": "moved-creds"}}')
    eventually(lambda: (world.instance(CONSUMER_A, "moving")["status"].get("secretName")
                        == "moved-creds"), what="status.secretName moved")
    assert read_secret(world, CONSUMER_A, "moved-creds") == before
    gone = world.kubectl(CONSUMER_A, "get", "secret", "moving-postgres", "-n", "default",
                         check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    assert query_with(before, "SELECT 1") == [(1,)]
    world.kubectl(CONSUMER_A, "delete", "postgresinstance", "moving", "-n", "default",
                  "--timeout=60s")
    assert world.role_and_databases(CONSUMER_A, "moving") == (False, [])


def test_deleting_an_instance_drops_its_database_and_role(world: World) -> None:
    world.kubectl(CONSUMER_A, "apply", "-f", "-",
                  input=instance_manifest("scratch", databaseName="scratch_db",
                                          secretName="scratch-creds"))
    wait_ready(world, CONSUMER_A, "scratch")
    credentials = read_secret(world, CONSUMER_A, "scratch-creds")
    assert credentials["database"] == "scratch_db"
    assert world.role_and_databases(CONSUMER_A, "scratch") == (True, ["scratch_db"])
    # The schema's transition rule keeps the database name fixed.
    renamed = world.kubectl(CONSUMER_A, "patch", "postgresinstance", "scratch", "-n",
                            "default", "--type=merge", "-p",
                            '{"spec": {"databaseName": "other_db"}}', check=False)
    assert renamed.returncode != 0 and "databaseName is immutable" in renamed.stderr

    world.kubectl(CONSUMER_A, "delete", "postgresinstance", "scratch", "-n", "default",
                  "--timeout=60s")
    assert world.instance(CONSUMER_A, "scratch") is None
    assert world.role_and_databases(CONSUMER_A, "scratch") == (False, [])
    gone = world.kubectl(CONSUMER_A, "get", "secret", "scratch-creds", "-n", "default",
                         check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    with pytest.raises(psycopg.OperationalError):
        query_with(credentials, "SELECT 1")
    # The other instances were not touched.
    assert world.role_and_databases(CONSUMER_A, "orders")[1] != []


def test_a_restart_resumes_without_duplicates_or_losses(world: World) -> None:
    before_a = read_secret(world, CONSUMER_A, "orders-postgres")
    before_b = read_secret(world, CONSUMER_B, "orders-postgres")
    with psycopg.connect(world.pg.dsn()) as conn:
        roles_before = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'kp\\_%'").fetchone()
    export_before = world.get(PROVIDERS, f"{APIS}/v1alpha2/apiexports/{EXPORT}").json()
    assert world.provider.stop() == 0

    # While it is down: one instance is created and one is deleted (its finalizer holds it).
    world.kubectl(CONSUMER_B, "apply", "-f", "-", input=instance_manifest("while-down"))
    world.kubectl(CONSUMER_A, "delete", "postgresinstance", "orders", "-n", "default",
                  "--wait=false")
    terminating = world.instance(CONSUMER_A, "orders")
    assert terminating["metadata"]["deletionTimestamp"]
    assert world.role_and_databases(CONSUMER_A, "orders")[0]

    world.provider.start()
    wait_ready(world, CONSUMER_B, "while-down")
    eventually(lambda: world.instance(CONSUMER_A, "orders") is None,
               what="orders in A deleted")
    assert world.role_and_databases(CONSUMER_A, "orders") == (False, [])
    assert world.role_and_databases(CONSUMER_B, "while-down")[1] != []

    # B's original instance kept its credentials: nothing was rotated or recreated.
    assert read_secret(world, CONSUMER_B, "orders-postgres") == before_b
    assert query_with(before_b, "SELECT 1") == [(1,)]
    with pytest.raises(psycopg.OperationalError):
        query_with(before_a, "SELECT 1")
    with psycopg.connect(world.pg.dsn()) as conn:
        roles_after = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'kp\\_%'").fetchone()
    # One role gone (A's orders), one added (B's while-down).
    assert roles_after == roles_before
    # Still exactly one schema, and the export was not even rewritten.
    schemas = world.get(PROVIDERS, f"{APIS}/v1alpha1/apiresourceschemas").json()["items"]
    assert len(schemas) == 1
    export_after = world.get(PROVIDERS, f"{APIS}/v1alpha2/apiexports/{EXPORT}").json()
    assert export_after["metadata"]["resourceVersion"] == \
        export_before["metadata"]["resourceVersion"]
    assert "Traceback" not in world.provider.log()


def test_unbinding_a_workspace_cleans_up_its_databases(world: World) -> None:
    live = [item["metadata"]["name"] for item in world.kubectl_json(
        CONSUMER_B, "get", "postgresinstances", "-n", "default")["items"]]
    assert sorted(live) == ["orders", "while-down"]
    assert all(world.role_and_databases(CONSUMER_B, name)[1] for name in live)
    world.kubectl(CONSUMER_A, "apply", "-f", "-", input=instance_manifest("keeper"))
    keeper = wait_ready(world, CONSUMER_A, "keeper")
    world.kubectl(CONSUMER_B, "delete", "apibinding", EXPORT, "--wait=false")
    # The server deletes the bound objects with their finalizers honoured: the provider
    # drops each database before the object and then the binding go.
    eventually(lambda: world.get(CONSUMER_B, f"{APIS}/v1alpha2/apibindings/{EXPORT}")
               .status_code == 404, what="binding gone")
    for name in live:
        assert world.role_and_databases(CONSUMER_B, name) == (False, [])
    # Consumer A is untouched.
    assert world.role_and_databases(CONSUMER_A, "keeper") == (
        True, [keeper["status"]["database"]])
    assert query_with(read_secret(world, CONSUMER_A, "keeper-postgres"), "SELECT 1") == [(1,)]
    assert world.provider.alive()


def test_deleting_a_consumer_workspace_drops_its_databases(world: World) -> None:
    consumer = "consumer-leaving"
    world.clusters[consumer] = ready_workspace(world.http, consumer)
    bind(world, consumer)
    world.kubectl(consumer, "apply", "-f", "-", input=instance_manifest("doomed"))
    wait_ready(world, consumer, "doomed")
    assert world.role_and_databases(consumer, "doomed")[1] != []

    deleted = world.http.delete(
        f"/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/{consumer}")
    assert deleted.status_code in (200, 202), deleted.text
    # The workspace's content is deleted with finalizers honoured, so the provider sees
    # the instance go and drops its database before the workspace disappears.
    eventually(lambda: world.http.get(
        f"/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/{consumer}")
        .status_code == 404, what="workspace gone")
    assert world.role_and_databases(consumer, "doomed") == (False, [])
    assert world.provider.alive()
    assert "Traceback" not in world.provider.log()
