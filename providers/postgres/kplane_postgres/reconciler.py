"""Reconciling one PostgresInstance of one consumer workspace, through the export's virtual
workspace.

A live instance gets the provider's finalizer, then its role and database (PostgreSQL
first, so the Secret never advertises credentials that do not work yet), then its Secret,
then ``Ready=True``. A spec the provider cannot honour, or a PostgreSQL refusal such as a
database name that is taken, becomes ``Ready=False`` with a reason and is looked at again
later; errors that may pass (PostgreSQL or the server unreachable) are raised, and the
Controller retries them with backoff. A deleted instance loses its database, role and
Secret, then the finalizer.

Everything is derived from the instance's key and the catalogs, so a restarted provider
simply reconciles every instance again and finds its previous work done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from kplane.sdk import (
    ApiError,
    Client,
    Conflict,
    Informer,
    NotFound,
    ObjectKey,
    Resource,
    Result,
    ensure_finalizer,
    remove_finalizer,
)
from kplane_postgres import api
from kplane_postgres.database import Postgres, ProvisionError
from kplane_postgres.naming import instance_names
from kplane_postgres.secret import (
    Credentials,
    is_owned_by,
    needs_update,
    new_password,
    secret_body,
    stored_password,
)
from kplane_postgres.spec import SECRET_SUFFIX, SpecError, parse_spec
from kplane_postgres.status import build_status, differs

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settings:
    group: str
    # Where consumers reach PostgreSQL (written into Secrets).
    public_host: str
    public_port: int
    # Look at a Ready instance again this often, to repair drift (a dropped database...).
    resync_seconds: float = 600.0
    # Look at a failed instance again this often (a taken name may be freed).
    retry_seconds: float = 30.0

    @property
    def finalizer(self) -> str:
        return f"{self.group}/postgres"


class Reconciler:
    """The Controller's reconcile function, with what it needs to reach both sides."""

    def __init__(self, vw: Client, informer: Informer, postgres: Postgres,
                 settings: Settings) -> None:
        self._vw = vw
        self._informer = informer
        self._postgres = postgres
        self._settings = settings
        self._resource: Resource = api.instances(settings.group)

    async def __call__(self, key: ObjectKey) -> Result | None:
        instance = self._informer.get(key)
        if instance is None:
            return None  # gone; the finalizer made sure it was cleaned up first
        if (instance.get("metadata") or {}).get("deletionTimestamp"):
            await self._finalize(key, instance)
            return None
        try:
            instance = await ensure_finalizer(self._vw, self._resource, instance,
                                              self._settings.finalizer, cluster=key.cluster)
        except NotFound:
            return None  # deleted since the informer saw it; its DELETED event is coming
        return await self._provision(key, instance)

    # Live instances --------------------------------------------------------------------

    async def _provision(self, key: ObjectKey, instance: dict[str, Any]) -> Result | None:
        try:
            spec = parse_spec(instance)
        except SpecError as error:
            await self._fail(key, instance, error.reason, error.message)
            return None  # only a new spec can fix it, and that comes with an event
        names = instance_names(key.cluster, key.namespace, key.name,
                               group=self._settings.group)

        try:
            secret = await self._get_secret(key, spec.secret_name)
        except ApiError as error:
            if error.status >= 500 or error.status == 429:
                raise
            await self._fail(key, instance, "SecretAccessDenied",
                             f"cannot read Secret {spec.secret_name!r}: {error.message} "
                             "(has this workspace accepted the export's permission claim on "
                             "secrets?)")
            return Result(requeue_after=self._settings.retry_seconds)
        if secret is not None and not is_owned_by(secret, instance):
            await self._fail(key, instance, "SecretNameConflict",
                             f"Secret {spec.secret_name!r} exists and does not belong to this "
                             "instance; delete it or choose spec.secretName")
            return Result(requeue_after=self._settings.retry_seconds)
        password = await self._reusable_password(key, instance, secret)

        try:
            database = await self._postgres.ensure(names, spec, password)
        except ProvisionError as error:
            await self._fail(key, instance, error.reason, error.message)
            return Result(requeue_after=self._settings.retry_seconds)
        except psycopg.Error as error:
            await self._fail(key, instance, "PostgresError", f"PostgreSQL: {error}")
            raise

        credentials = Credentials(host=self._settings.public_host,
                                  port=self._settings.public_port, database=database,
                                  username=names.role, password=password)
        wanted = secret_body(instance, name=spec.secret_name, group=self._settings.group,
                             version=api.VERSION, credentials=credentials, existing=secret)
        try:
            if secret is None:
                await self._vw.create(api.SECRETS, wanted, namespace=key.namespace,
                                      cluster=key.cluster)
                log.info("%s: wrote Secret %s", key, spec.secret_name)
            elif needs_update(secret, wanted):
                await self._vw.update(api.SECRETS, wanted, namespace=key.namespace,
                                      cluster=key.cluster)
                log.info("%s: updated Secret %s", key, spec.secret_name)
        except ApiError as error:
            if isinstance(error, Conflict) or error.status >= 500 or error.status == 429:
                raise  # a race or a passing server problem: retry with backoff
            await self._fail(key, instance, "SecretWriteFailed",
                             f"cannot write Secret {spec.secret_name!r}: {error.message} "
                             "(was the secrets permission claim accepted?)")
            return Result(requeue_after=self._settings.retry_seconds)

        await self._delete_previous_secret(key, instance, spec.secret_name)
        await self._write_status(key, instance, build_status(
            instance, ready=True, reason="Provisioned",
            message=f"database {database!r} is ready; credentials are in Secret "
                    f"{spec.secret_name!r}",
            database=database, username=names.role, secret_name=spec.secret_name))
        return Result(requeue_after=self._settings.resync_seconds)

    async def _reusable_password(self, key: ObjectKey, instance: Mapping[str, Any],
                                 secret: Mapping[str, Any] | None) -> str:
        """The password of the instance's Secret; after a spec.secretName change, that of the
        Secret it used before; a new one only when neither has one."""
        if secret is not None and (password := stored_password(secret)):
            return password
        previous = (instance.get("status") or {}).get("secretName")
        if isinstance(previous, str) and previous:
            old = await self._get_secret(key, previous)
            if (old is not None and is_owned_by(old, instance)
                    and (password := stored_password(old))):
                return password
        return new_password()

    async def _delete_previous_secret(self, key: ObjectKey, instance: Mapping[str, Any],
                                      current: str) -> None:
        previous = (instance.get("status") or {}).get("secretName")
        if isinstance(previous, str) and previous and previous != current:
            await self._delete_owned_secret(key, instance, previous)

    # Deleted instances -----------------------------------------------------------------

    async def _finalize(self, key: ObjectKey, instance: dict[str, Any]) -> None:
        finalizer = self._settings.finalizer
        if finalizer not in ((instance.get("metadata") or {}).get("finalizers") or []):
            return
        names = instance_names(key.cluster, key.namespace, key.name,
                               group=self._settings.group)
        dropped = await self._postgres.remove(names)
        log.info("%s: removed from PostgreSQL (databases dropped: %s)", key,
                 ", ".join(dropped) or "none")
        for name in self._secret_names(instance):
            await self._delete_owned_secret(key, instance, name)
        await remove_finalizer(self._vw, self._resource, instance, finalizer,
                               cluster=key.cluster)

    @staticmethod
    def _secret_names(instance: Mapping[str, Any]) -> list[str]:
        """Every Secret name this instance may have written (its spec may be invalid now)."""
        names: list[str] = []
        status_name = (instance.get("status") or {}).get("secretName")
        spec_name = (instance.get("spec") or {}).get("secretName")
        default = f"{(instance.get('metadata') or {}).get('name', '')}{SECRET_SUFFIX}"
        for candidate in (status_name, spec_name, default):
            if isinstance(candidate, str) and candidate and candidate not in names:
                names.append(candidate)
        return names

    # Consumer-side helpers -------------------------------------------------------------

    async def _get_secret(self, key: ObjectKey, name: str) -> dict[str, Any] | None:
        try:
            return await self._vw.get(api.SECRETS, name, namespace=key.namespace,
                                      cluster=key.cluster)
        except NotFound:
            return None

    async def _delete_owned_secret(self, key: ObjectKey, instance: Mapping[str, Any],
                                   name: str) -> None:
        try:
            secret = await self._get_secret(key, name)
            if secret is not None and is_owned_by(secret, instance):
                await self._vw.delete(api.SECRETS, name, namespace=key.namespace,
                                      cluster=key.cluster)
                log.info("%s: deleted Secret %s", key, name)
        except ApiError as error:
            if error.status >= 500:
                raise
            # Without the secrets claim the Secret cannot be reached; the role behind its
            # credentials is gone anyway, so this must not block deletion forever.
            log.warning("%s: cannot delete Secret %s: %s", key, name, error)

    async def _fail(self, key: ObjectKey, instance: Mapping[str, Any], reason: str,
                    message: str) -> None:
        log.warning("%s: %s: %s", key, reason, message)
        await self._write_status(key, instance, build_status(
            instance, ready=False, reason=reason, message=message))

    async def _write_status(self, key: ObjectKey, instance: Mapping[str, Any],
                            status: dict[str, Any]) -> None:
        if not differs(instance, status):
            return
        with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to report to
            await self._vw.patch(self._resource, key.name, {"status": status},
                                 namespace=key.namespace, cluster=key.cluster,
                                 patch_type="merge", subresource="status")
