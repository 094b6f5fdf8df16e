"""Assembling and running one kplane server process.

Opens the store, loads the watch cache, creates the first-start objects (the namespaces
``default``, ``kube-system`` and ``kube-public`` of the root logical cluster), starts the
in-process controllers, writes the admin kubeconfig, and serves HTTPS until told to stop.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import uvicorn
import uvloop

from kplane.apimachinery.errors import StatusError
from kplane.auth.authn import TokenAuthenticator
from kplane.auth.authorizer import Authorizer
from kplane.auth.kubeconfig import admin_kubeconfig, write_kubeconfig
from kplane.auth.maximal_permission import MaximalPermissionPolicies
from kplane.auth.pki import ensure_pki
from kplane.auth.serviceaccounts import ServiceAccountTokens
from kplane.auth.tokens import StaticTokenFile
from kplane.auth.type_use import TypeUsePermission
from kplane.controllers.apibinding import APIBindingController
from kplane.controllers.apiexport import APIExportController
from kplane.controllers.compaction import DEFAULT_INTERVAL_SECONDS, CompactionController
from kplane.controllers.crd import CustomResourceDefinitionController
from kplane.controllers.expiry import ExpiryController
from kplane.controllers.garbage_collector import GarbageCollector
from kplane.controllers.namespace import NamespaceController
from kplane.controllers.workspace import WorkspaceController
from kplane.registry import builtin
from kplane.registry.catalog import Catalog
from kplane.registry.codec import CacheDecoder
from kplane.registry.keys import ROOT as ROOT_PREFIX
from kplane.registry.options import WriteOptions
from kplane.registry.store import Store, Target
from kplane.server import metrics
from kplane.server.app import KplaneApp
from kplane.server.audit import AuditLog
from kplane.server.gc_tuning import settle_after_startup
from kplane.server.limits import DEFAULT_MAX_MUTATING, DEFAULT_MAX_READONLY, InflightLimiter
from kplane.server.reviews import Reviews
from kplane.server.security import Security
from kplane.server.tls import build_server_config
from kplane.storage.backend import Backend
from kplane.storage.cacher import Cacher
from kplane.storage.sqlite import SQLiteBackend
from kplane.tenancy.admission import WorkspaceAdmission
from kplane.tenancy.bootstrap import bootstrap_root
from kplane.tenancy.lifecycle import TerminatingWorkspaces
from kplane.tenancy.quota import ObjectCountQuota
from kplane.tenancy.resolver import ClusterResolver
from kplane.tenancy.types import WorkspaceTypes

log = logging.getLogger(__name__)

ROOT_CLUSTER = "root"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public")
BOOTSTRAP_MANAGER = "kplane-bootstrap"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    data_dir: Path
    secure_port: int = 6443
    bind_address: str = "127.0.0.1"
    etcd_servers: tuple[str, ...] = ()
    etcd_prefix: str = "/kplane"
    etcd_cafile: str | None = None
    etcd_certfile: str | None = None
    etcd_keyfile: str | None = None
    compaction_interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    token_auth_file: str | None = None
    audit_log_path: str | None = None
    max_requests_inflight: int = DEFAULT_MAX_READONLY
    max_mutating_requests_inflight: int = DEFAULT_MAX_MUTATING


def open_backend(options: ServeOptions) -> Backend:
    """SQLite in the data directory by default; etcd when servers are given."""
    if options.etcd_servers:
        # Imported here: gRPC costs start-up time that SQLite users need not pay.
        from kplane.storage.etcd import EtcdBackend

        return EtcdBackend(list(options.etcd_servers), prefix=options.etcd_prefix,
                           ca_file=options.etcd_cafile, cert_file=options.etcd_certfile,
                           key_file=options.etcd_keyfile)
    return SQLiteBackend(options.data_dir / "kplane.db")


def _url_host(address: str) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(address).version == 6:
            return f"[{address}]"
    return address


async def bootstrap(store: Store) -> None:
    """Create what a new cluster has before anyone uses it; a no-op on later starts."""
    for name in INITIAL_NAMESPACES:
        target = Target(builtin.NAMESPACES, ROOT_CLUSTER, "", name)
        if store.get_cached(target) is not None:
            continue
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        with contextlib.suppress(StatusError):
            await store.create(target, body, WriteOptions(field_manager=BOOTSTRAP_MANAGER))


def _service_account_uid(store: Store) -> Callable[[str, str, str], str | None]:
    """How token authentication checks a ServiceAccount still exists (and is the same one)."""

    def lookup(cluster: str, namespace: str, name: str) -> str | None:
        cached = store.get_cached(Target(builtin.SERVICEACCOUNTS, cluster, namespace, name))
        if cached is None:
            return None
        return str(orjson.loads(cached.raw)["metadata"].get("uid", ""))

    return lookup


async def serve(options: ServeOptions) -> None:
    data_dir = options.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    pki = ensure_pki(data_dir, hosts=[options.bind_address])
    backend = open_backend(options)
    await backend.start()
    catalog = Catalog()
    cacher = Cacher(backend, CacheDecoder(catalog))
    await cacher.start()
    metrics.count_cached_objects(lambda: cacher.count(ROOT_PREFIX))
    await catalog.custom.start(cacher)
    await catalog.bound.start(cacher)
    host = _url_host(options.bind_address)
    server_url = f"https://{host}:{options.secure_port}"
    resolver = ClusterResolver(cacher)
    types = WorkspaceTypes(cacher, resolver)
    authorizer = Authorizer(cacher)
    admission = WorkspaceAdmission(resolver=resolver, types=types, base_url=server_url,
                                   use_permission=TypeUsePermission(authorizer))
    quota = ObjectCountQuota(cacher=cacher, catalog=catalog, resolver=resolver)
    terminating = TerminatingWorkspaces(cacher=cacher, resolver=resolver)
    store = Store(backend=backend, cacher=cacher, catalog=catalog,
                  admission=[terminating, admission, quota])
    await bootstrap(store)
    await bootstrap_root(store, base_url=server_url)
    namespaces = NamespaceController(store=store, catalog=catalog)
    workspaces = WorkspaceController(store=store, catalog=catalog, resolver=resolver,
                                     types=types)
    compaction = CompactionController(backend=backend,
                                      interval_seconds=options.compaction_interval_seconds)
    expiry = ExpiryController(store=store)
    crds = CustomResourceDefinitionController(store=store, catalog=catalog)
    exports = APIExportController(store=store, resolver=resolver, base_url=server_url)
    bindings = APIBindingController(store=store, catalog=catalog, resolver=resolver)
    garbage_collector = GarbageCollector(store=store, catalog=catalog)
    await crds.start()
    await exports.start()
    await bindings.start()
    await namespaces.start()
    await workspaces.start()
    await garbage_collector.start()
    await expiry.start()
    await compaction.start()

    await authorizer.start()
    maximal_permission = MaximalPermissionPolicies(authorizer)
    await maximal_permission.start(cacher)
    sa_tokens = ServiceAccountTokens(private_key_pem=pki.sa_key_path.read_bytes(),
                                     public_key_pem=pki.sa_pub_path.read_bytes())
    token_authenticators: list[TokenAuthenticator] = []
    if options.token_auth_file:
        token_authenticators.append(StaticTokenFile.load(options.token_auth_file).authenticate)
    token_authenticators.append(sa_tokens.authenticator(lookup=_service_account_uid(store)))
    security = Security(authorizer=authorizer, token_authenticators=token_authenticators,
                        maximal_permission=maximal_permission)
    reviews = Reviews(security=security, store=store, token_authenticators=token_authenticators,
                      service_account_tokens=sa_tokens)
    audit = AuditLog(options.audit_log_path) if options.audit_log_path else None
    app = KplaneApp(store=store, catalog=catalog,
                    server_address=f"{host}:{options.secure_port}",
                    is_ready=lambda: cacher.ready, resolver=resolver, security=security,
                    reviews=reviews, audit=audit,
                    limiter=InflightLimiter(
                        max_readonly=options.max_requests_inflight,
                        max_mutating=options.max_mutating_requests_inflight))
    config = build_server_config(cast(Any, app), host=options.bind_address,
                                 port=options.secure_port, pki=pki, lifespan="off",
                                 log_level="warning")
    server = uvicorn.Server(config)
    kubeconfig_path = data_dir / "admin.kubeconfig"
    write_kubeconfig(kubeconfig_path,
                     admin_kubeconfig(pki, server_url=server_url))
    log.warning("kplane is serving on %s; admin kubeconfig: %s", server_url, kubeconfig_path)
    settle_after_startup()
    try:
        await server.serve()
    finally:
        await maximal_permission.stop()
        await authorizer.stop()
        if audit is not None:
            audit.close()
        await compaction.stop()
        await expiry.stop()
        await bindings.stop()
        await exports.stop()
        await crds.stop()
        await garbage_collector.stop()
        await catalog.bound.stop()
        await catalog.custom.stop()
        await workspaces.stop()
        await namespaces.stop()
        await cacher.stop()
        await backend.close()


def run(options: ServeOptions) -> None:
    uvloop.run(serve(options))

