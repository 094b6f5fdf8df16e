"""``kplane-postgres-provider``: the command line, and wiring the pieces together.

Start-up order: check PostgreSQL, publish the schema and export in the provider workspace,
wait for the export's virtual workspace, then run one Informer over every consumer's
PostgresInstances, one over the Secrets the provider wrote (so a deleted or edited Secret is
repaired at once), and a Controller. SIGTERM or SIGINT stops it cleanly; in-flight work is
abandoned and picked up again by the next start, which is safe because every step is
idempotent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from kplane.sdk import (
    ApiError,
    Client,
    Controller,
    Informer,
    Kubeconfig,
    KubeconfigError,
    ObjectKey,
    TransportError,
    cluster_of,
)
from kplane_postgres import api
from kplane_postgres.bootstrap import publish, wait_for_endpoint
from kplane_postgres.database import Postgres
from kplane_postgres.reconciler import Reconciler, Settings
from kplane_postgres.secret import instance_label, owner_name

log = logging.getLogger("kplane_postgres")
DSN_ENV = "KPLANE_POSTGRES_DSN"


class ConfigError(Exception):
    """The command line or environment cannot work; the message says why."""


@dataclass(frozen=True, slots=True)
class Options:
    kubeconfig: str
    context: str | None
    workspace: str
    dsn: str
    group: str
    export: str
    workers: int
    public_host: str
    public_port: int
    resync_seconds: float
    startup_timeout: float


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="kplane-postgres-provider",
        description="Serve PostgresInstance objects from a kplane APIExport with real "
                    "PostgreSQL databases.")
    parser.add_argument("--kubeconfig", required=True,
                        help="kubeconfig of a user allowed to manage APIExports in the "
                             "provider workspace")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    parser.add_argument("--workspace", required=True,
                        help="the provider workspace path, e.g. root:providers")
    parser.add_argument("--postgres-dsn", default=os.environ.get(DSN_ENV),
                        help=f"libpq DSN or URL of a PostgreSQL superuser (default: ${DSN_ENV}; "
                             "the environment keeps the password out of the process list)")
    parser.add_argument("--group", default="db.kplane.io", help="API group to export")
    parser.add_argument("--export", default="postgres", help="APIExport name")
    parser.add_argument("--workers", type=int, default=4, help="concurrent reconciles")
    parser.add_argument("--public-host", default=None,
                        help="host written into Secrets (default: the DSN's host)")
    parser.add_argument("--public-port", type=int, default=None,
                        help="port written into Secrets (default: the DSN's port)")
    parser.add_argument("--resync-seconds", type=float, default=600.0,
                        help="how often a Ready instance is checked again for drift")
    parser.add_argument("--startup-timeout", type=float, default=120.0,
                        help="how long to wait for the export's virtual workspace")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # One line per HTTP request is debugging detail.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if not args.postgres_dsn:
        parser.error(f"--postgres-dsn (or ${DSN_ENV}) is required")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        host, port = _public_address(args.postgres_dsn, args.public_host, args.public_port)
    except ConfigError as error:
        parser.error(str(error))
    return Options(kubeconfig=args.kubeconfig, context=args.context, workspace=args.workspace,
                   dsn=args.postgres_dsn, group=args.group, export=args.export,
                   workers=args.workers, public_host=host, public_port=port,
                   resync_seconds=args.resync_seconds, startup_timeout=args.startup_timeout)


def _public_address(dsn: str, host: str | None, port: int | None) -> tuple[str, int]:
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        raise ConfigError(f"--postgres-dsn is not a valid DSN: {error}") from None
    if host is None:
        # libpq allows a comma-separated list of hosts; consumers get the first.
        host = str(params.get("host") or "localhost").split(",")[0]
        if host.startswith("/"):
            raise ConfigError("the DSN names a Unix socket; give --public-host for consumers")
    if port is None:
        port = int(str(params.get("port") or "5432").split(",")[0])
    return host, port


async def check_postgres(postgres: Postgres) -> None:
    async with postgres.connect() as conn:
        cur = await conn.execute(
            "SELECT rolsuper, current_setting('server_version') FROM pg_roles"
            " WHERE rolname = current_user")
        row = await cur.fetchone()
    if row is None or not row[0]:
        raise ConfigError("the --postgres-dsn user must be a PostgreSQL superuser")
    log.info("PostgreSQL %s reachable", row[1])


async def run(options: Options, stop: asyncio.Event, serving: asyncio.Event) -> None:
    """Start up, then serve until ``stop`` is set; ``serving`` is set in between."""
    postgres = Postgres(options.dsn)
    await check_postgres(postgres)
    try:
        config = Kubeconfig.load(options.kubeconfig, context=options.context)
    except KubeconfigError as error:
        raise ConfigError(str(error)) from None

    async with Client(config, user_agent="kplane-postgres-provider") as base:
        workspace = base.with_base(f"{config.server_root}/clusters/{options.workspace}")
        await publish(workspace, group=options.group, export=options.export)
        _, url = await wait_for_endpoint(workspace, export=options.export,
                                         timeout=options.startup_timeout)
        vw = base.with_base(url)
        instances = Informer(vw, api.instances(options.group), cluster="*")
        secrets = Informer(vw, api.SECRETS, cluster="*",
                           label_selector=instance_label(options.group))
        settings = Settings(group=options.group, public_host=options.public_host,
                            public_port=options.public_port,
                            resync_seconds=options.resync_seconds)
        controller = Controller(Reconciler(vw, instances, postgres, settings),
                                informers=[instances], workers=options.workers,
                                name="postgres")

        def secret_changed(_event: str, secret: dict[str, Any]) -> None:
            owner = owner_name(secret, options.group)
            if owner:
                namespace = str((secret.get("metadata") or {}).get("namespace") or "")
                controller.enqueue(ObjectKey(cluster_of(secret), namespace, owner))

        secrets.add_handler(secret_changed)
        await controller.start()
        await secrets.start()
        log.info("serving %s.%s from APIExport %s in %s", api.PLURAL, options.group,
                 options.export, options.workspace)
        serving.set()
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            await secrets.stop()
            await controller.stop()


async def _main(options: Options) -> None:
    stop, serving = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    work = asyncio.create_task(run(options, stop, serving))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not serving.is_set() and not work.done():
        # A signal during start-up (e.g. while waiting for the export): nothing to wind down.
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return
    await work  # serving ends by itself once stop is set; errors propagate


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        asyncio.run(_main(options))
    except (ConfigError, TimeoutError) as error:
        log.error("%s", error)
        return 2
    except psycopg.OperationalError as error:
        log.error("cannot reach PostgreSQL: %s", error)
        return 2
    except TransportError as error:
        log.error("cannot reach kplane: %s", error)
        return 2
    except ApiError as error:
        log.error("kplane refused a start-up request: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
