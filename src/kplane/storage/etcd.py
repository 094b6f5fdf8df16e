"""The scale-out storage backend: an etcd v3 cluster behind the ``Backend`` protocol.

Several kplane processes pointed at one etcd cluster serve the same data: every write is an
etcd transaction, every watch is an etcd watch, and etcd's own revisions are the revisions
(so a resourceVersion means the same thing in every kplane process). Why it looks like this:

* **gRPC directly, with the stubs ``aetcd`` ships.** aetcd's high-level client connects to a
  single host without TLS and reports watch events one callback at a time; etcd's API is four
  small RPCs, so this module drives ``grpc.aio`` itself and uses only aetcd's generated
  protobuf modules. That buys TLS, several endpoints, per-call deadlines and watch events
  batched exactly as etcd sends them.
* **Keys live under a prefix** (``/kplane`` by default): ``/registry/x`` is stored as
  ``/kplane/registry/x`` and handed back without it, so other users of the cluster, or a
  second kplane deployment with another prefix, never see each other. Keys must start with
  ``/``; that keeps ``<prefix>/`` a clean boundary (``/kplane2/...`` is not ours).
* **Compare-and-swap is one transaction.** create is ``if create_revision == 0 then put``;
  update and delete are ``if mod_revision == expected then write else get``, and the ``get``
  in the failure branch tells KeyNotFoundError from ConflictError without a second trip.
* **Failures are bounded.** Each operation has a deadline (``timeout``, 5 s by default)
  covering every endpoint it tries. A read is retried on the next endpoint after any
  UNAVAILABLE error; a write is retried only when etcd cannot have applied it (no
  connection was made, or the member had no leader), because replaying an applied
  compare-and-swap would report a false conflict. Anything else becomes UnavailableError.
* **Watches resume.** A broken watch stream (member gone, leader lost) is reopened from the
  last delivered revision on any endpoint, so a consumer sees no gap and no duplicate; if
  that revision was compacted meanwhile it gets CompactedError, and if etcd stays away for
  ``watch_reconnect_timeout`` it gets UnavailableError.
* **Compaction is recorded in etcd.** etcd's compaction keeps the state *at* the compacted
  revision, the protocol forgets history *at and below* it, and etcd cannot tell a client
  what its compacted revision is. So ``compact(r)`` first stores ``r`` under
  ``<prefix>#compacted`` (outside ``<prefix>/``, invisible to range and watch; written with
  compare-and-swap so concurrent compactors never move it backwards), then compacts etcd.
  Every kplane process reads the same value, and a watch from below it is refused.

Deviation from the SQLite backend: etcd starts at revision 1, so an empty store reports 1.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped]
from aetcd import rpc  # type: ignore[import-untyped]

from kplane.storage.backend import (
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RangeResult,
    StorageError,
    UnavailableError,
    ValueTooLargeError,
    WatchEvent,
)

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_WATCH_RECONNECT_TIMEOUT", "EtcdBackend"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
DEFAULT_WATCH_RECONNECT_TIMEOUT = 30.0
DEFAULT_PAGE_SIZE = 1_000

_COMPACTED_KEY_SUFFIX = "#compacted"

# etcd caps a request at 1.5 MiB but a range page holds many objects, so replies may be far
# larger than gRPC's 4 MiB default. Keepalive pings notice a silently dead connection (no
# RST) within ~15 s; etcd accepts pings every 5 s or slower. Reconnect backoff is capped low
# so a member that comes back is used again within a second.
_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)

# Asks the member to fail the watch when it loses its leader instead of leaving it silent,
# so the stream is reopened on a member that still belongs to the majority.
_WATCH_METADATA = (("hasleader", "true"),)

# Error details from which it is certain that etcd did not apply the request.
_NOT_APPLIED_MARKERS = (
    "failed to connect to all addresses",
    "etcdserver: no leader",
    "etcdserver: not capable",
)
_COMPACTED_MARKER = "required revision has been compacted"

_RETRY_PAUSE = 0.05
_MAX_RETRY_PAUSE = 0.5

_R = TypeVar("_R")


@dataclass(slots=True)
class _Endpoint:
    """One etcd member's client URL and the gRPC channel and stubs that reach it."""

    url: str
    channel: Any
    kv: Any
    watch: Any


class _WatchClosedError(Exception):
    """The backend was closed while a watch stream was reading."""


class _StreamBrokenError(Exception):
    """A watch stream ended for a reason that reopening it may cure."""


def _parse_endpoint(url: str, *, tls_default: bool) -> tuple[str, bool]:
    """``http://host:port`` / ``https://host:port`` / ``host:port`` -> (target, uses TLS)."""
    if "://" not in url:
        return url.rstrip("/"), tls_default
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported etcd endpoint scheme {scheme!r} in {url!r}")
    return rest.rstrip("/"), scheme == "https"


def _read_optional(path: str | pathlib.Path | None) -> bytes | None:
    return None if path is None else pathlib.Path(path).read_bytes()


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd's range_end)."""
    for index in range(len(prefix) - 1, -1, -1):
        if prefix[index] < 0xFF:
            return prefix[:index] + bytes([prefix[index] + 1])
    return b"\0"


def _is_not_applied(error: Any) -> bool:
    details = error.details() or ""
    return any(marker in details for marker in _NOT_APPLIED_MARKERS)


def _is_compacted(error: Any) -> bool:
    return bool(
        error.code() == grpc.StatusCode.OUT_OF_RANGE
        and _COMPACTED_MARKER in (error.details() or "")
    )


def _unavailable(error: Any, *, during: str) -> UnavailableError:
    return UnavailableError(f"etcd {during} failed: {error.code().name}: {error.details()}")


def _translate(error: Any, *, during: str) -> StorageError:
    code = error.code()
    if code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    ):
        return _unavailable(error, during=during)
    details = error.details() or ""
    # etcd refuses requests over --max-request-bytes (1.5 MiB by default) itself; gRPC
    # refuses messages over its own limit (2 MiB) before etcd sees them.
    if (code == grpc.StatusCode.INVALID_ARGUMENT and "request is too large" in details) or (
            code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details):
        return ValueTooLargeError(f"etcd refused the {during}: {details}")
    return StorageError(f"etcd {during} failed: {code.name}: {error.details()}")


class EtcdBackend:
    """A revisioned key-value store on an etcd v3 cluster (see the module docstring)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        prefix: str = "/kplane",
        ca_file: str | pathlib.Path | None = None,
        cert_file: str | pathlib.Path | None = None,
        key_file: str | pathlib.Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        watch_reconnect_timeout: float = DEFAULT_WATCH_RECONNECT_TIMEOUT,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        if (cert_file is None) != (key_file is None):
            raise ValueError("an etcd client certificate needs both cert_file and key_file")
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"the etcd key prefix must start with '/': {prefix!r}")
        if timeout <= 0 or watch_reconnect_timeout < 0 or page_size <= 0:
            raise ValueError("timeout and page_size must be positive")
        tls_default = any(f is not None for f in (ca_file, cert_file, key_file))
        self._targets = [_parse_endpoint(url, tls_default=tls_default) for url in endpoints]
        self._tls_files = (ca_file, cert_file, key_file)
        self._root = prefix.rstrip("/")
        self._compacted_key = (self._root + _COMPACTED_KEY_SUFFIX).encode()
        self._timeout = timeout
        self._watch_reconnect_timeout = watch_reconnect_timeout
        self._page_size = page_size
        self._endpoints: list[_Endpoint] = []
        # Index of the endpoint that answered last: tried first next time.
        self._preferred = 0
        self._open = False
        self._watch_calls: set[Any] = set()
        # The newest compaction this process performed or was told about by etcd.
        self._seen_compacted = 0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open channels to every endpoint and check that the cluster answers.

        Raises UnavailableError if no endpoint answers within the timeout."""
        if self._open:
            return
        credentials = self._credentials() if any(tls for _, tls in self._targets) else None
        for target, tls in self._targets:
            if tls:
                channel = grpc.aio.secure_channel(target, credentials, options=_CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
            self._endpoints.append(
                _Endpoint(target, channel, rpc.KVStub(channel), rpc.WatchStub(channel))
            )
        self._open = True
        try:
            await self.current_revision()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close every channel; open watches end (their iterators stop)."""
        if not self._open and not self._endpoints:
            return
        self._open = False
        for call in list(self._watch_calls):
            call.cancel()
        endpoints, self._endpoints = self._endpoints, []
        for endpoint in endpoints:
            await endpoint.channel.close()

    def _credentials(self) -> Any:
        ca_file, cert_file, key_file = self._tls_files
        return grpc.ssl_channel_credentials(
            root_certificates=_read_optional(ca_file),
            private_key=_read_optional(key_file),
            certificate_chain=_read_optional(cert_file),
        )

    # -- keys ------------------------------------------------------------------------

    def _etcd_key(self, key: str) -> bytes:
        if not key.startswith("/"):
            raise ValueError(f"storage keys must start with '/': {key!r}")
        return (self._root + key).encode()

    def _etcd_range(self, prefix: str) -> tuple[bytes, bytes]:
        """The etcd ``[key, range_end)`` holding every stored key that starts with ``prefix``."""
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"storage prefixes must start with '/': {prefix!r}")
        start = (self._root + (prefix or "/")).encode()
        return start, _prefix_end(start)

    def _key_value(self, kv: Any) -> KeyValue:
        return KeyValue(
            key=kv.key.decode()[len(self._root) :],
            value=kv.value,
            create_revision=kv.create_revision,
            mod_revision=kv.mod_revision,
        )

    # -- reads -----------------------------------------------------------------------

    async def current_revision(self) -> int:
        # A one-key linearizable read: its header carries the store's revision.
        response = await self._range_request(
            rpc.RangeRequest(key=self._compacted_key, keys_only=True), during="revision"
        )
        revision: int = response.header.revision
        return revision

    async def get(self, key: str) -> KeyValue | None:
        response = await self._range_request(
            rpc.RangeRequest(key=self._etcd_key(key)), during="get"
        )
        return self._key_value(response.kvs[0]) if response.kvs else None

    async def range(self, prefix: str) -> RangeResult:
        start, end = self._etcd_range(prefix)
        # A compaction between two pages invalidates the pinned revision; start over then.
        for _ in range(3):
            try:
                return await self._range_pages(start, end)
            except _CompactedDuringRangeError:
                continue
        raise UnavailableError("etcd range kept being compacted while it was read")

    async def _range_pages(self, start: bytes, end: bytes) -> RangeResult:
        items: list[KeyValue] = []
        revision = 0
        key = start
        while True:
            request = rpc.RangeRequest(
                key=key, range_end=end, limit=self._page_size, revision=revision
            )
            response = await self._range_request(request, during="range")
            if revision == 0:
                # Every later page is read at the first page's revision: one snapshot.
                revision = response.header.revision
            items.extend(self._key_value(kv) for kv in response.kvs)
            if not response.more or not response.kvs:
                return RangeResult(items=items, revision=revision)
            key = response.kvs[-1].key + b"\0"

    async def _range_request(self, request: Any, *, during: str) -> Any:
        try:
            return await self._call(
                lambda endpoint, timeout: endpoint.kv.Range(request, timeout=timeout),
                idempotent=True,
                during=during,
            )
        except _RpcFailedError as failed:
            if _is_compacted(failed.error):
                raise _CompactedDuringRangeError from None
            raise _translate(failed.error, during=during) from None

    async def compacted_revision(self) -> int:
        stored = await self._stored_compaction()
        self._seen_compacted = max(self._seen_compacted, stored[0])
        return self._seen_compacted

    async def _stored_compaction(self) -> tuple[int, int]:
        """The compacted revision recorded in etcd, and the mod revision of that record."""
        response = await self._range_request(
            rpc.RangeRequest(key=self._compacted_key), during="read compaction"
        )
        if not response.kvs:
            return 0, 0
        kv = response.kvs[0]
        return int(kv.value), kv.mod_revision

    # -- writes ----------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        etcd_key = self._etcd_key(key)
        txn = rpc.TxnRequest(
            compare=[
                rpc.Compare(
                    key=etcd_key,
                    target=rpc.Compare.CREATE,
                    result=rpc.Compare.EQUAL,
                    create_revision=0,
                )
            ],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=etcd_key, value=value))],
        )
        response = await self._txn(txn, during="create")
        if not response.succeeded:
            raise KeyExistsError(key)
        revision: int = response.header.revision
        return KeyValue(key, value, create_revision=revision, mod_revision=revision)

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        etcd_key = self._etcd_key(key)
        txn = rpc.TxnRequest(
            compare=self._unchanged_since(etcd_key, expected_mod_revision),
            success=[
                rpc.RequestOp(request_put=rpc.PutRequest(key=etcd_key, value=value, prev_kv=True))
            ],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=etcd_key))],
        )
        response = await self._txn(txn, during="update")
        if not response.succeeded:
            raise self._cas_failure(key, expected_mod_revision, response)
        previous = response.responses[0].response_put.prev_kv
        return KeyValue(
            key,
            value,
            create_revision=previous.create_revision,
            mod_revision=response.header.revision,
        )

    async def delete(self, key: str, *, expected_mod_revision: int | None = None) -> KeyValue:
        etcd_key = self._etcd_key(key)
        txn = rpc.TxnRequest(
            compare=self._unchanged_since(etcd_key, expected_mod_revision),
            success=[
                rpc.RequestOp(
                    request_delete_range=rpc.DeleteRangeRequest(key=etcd_key, prev_kv=True)
                )
            ],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=etcd_key))],
        )
        response = await self._txn(txn, during="delete")
        if not response.succeeded:
            raise self._cas_failure(key, expected_mod_revision, response)
        previous = response.responses[0].response_delete_range.prev_kvs[0]
        return KeyValue(
            key,
            previous.value,
            create_revision=previous.create_revision,
            mod_revision=response.header.revision,
        )

    @staticmethod
    def _unchanged_since(etcd_key: bytes, expected_mod_revision: int | None) -> list[Any]:
        # "version > 0" is what makes a missing key fail: etcd reports mod_revision 0 for it,
        # which would otherwise satisfy an expected revision of 0.
        compares = [
            rpc.Compare(
                key=etcd_key, target=rpc.Compare.VERSION, result=rpc.Compare.GREATER, version=0
            )
        ]
        if expected_mod_revision is not None:
            compares.append(
                rpc.Compare(
                    key=etcd_key,
                    target=rpc.Compare.MOD,
                    result=rpc.Compare.EQUAL,
                    mod_revision=expected_mod_revision,
                )
            )
        return compares

    @staticmethod
    def _cas_failure(key: str, expected: int | None, response: Any) -> StorageError:
        current = response.responses[0].response_range.kvs
        if not current:
            return KeyNotFoundError(key)
        actual: int = current[0].mod_revision
        return ConflictError(key, expected=-1 if expected is None else expected, actual=actual)

    async def _txn(self, txn: Any, *, during: str) -> Any:
        try:
            return await self._call(
                lambda endpoint, timeout: endpoint.kv.Txn(txn, timeout=timeout),
                idempotent=False,
                during=during,
            )
        except _RpcFailedError as failed:
            raise _translate(failed.error, during=during) from None

    async def compact(self, revision: int) -> None:
        current = await self.current_revision()
        if revision > current:
            raise ValueError(f"cannot compact future revision {revision} (current: {current})")
        while True:
            stored, record_revision = await self._stored_compaction()
            if revision <= stored:
                self._seen_compacted = max(self._seen_compacted, stored)
                return
            if await self._record_compaction(revision, record_revision=record_revision):
                break
        await self._compact_etcd(revision)
        self._seen_compacted = max(self._seen_compacted, revision)

    async def _record_compaction(self, revision: int, *, record_revision: int) -> bool:
        """Store ``revision`` as compacted unless another process changed the record first."""
        txn = rpc.TxnRequest(
            compare=[
                rpc.Compare(
                    key=self._compacted_key,
                    target=rpc.Compare.MOD,
                    result=rpc.Compare.EQUAL,
                    mod_revision=record_revision,
                )
            ],
            success=[
                rpc.RequestOp(
                    request_put=rpc.PutRequest(
                        key=self._compacted_key, value=str(revision).encode()
                    )
                )
            ],
        )
        response = await self._txn(txn, during="record compaction")
        return bool(response.succeeded)

    async def _compact_etcd(self, revision: int) -> None:
        request = rpc.CompactionRequest(revision=revision, physical=False)
        try:
            await self._call(
                lambda endpoint, timeout: endpoint.kv.Compact(request, timeout=timeout),
                idempotent=True,
                during="compact",
            )
        except _RpcFailedError as failed:
            # Someone (another process, etcd's auto-compaction) already went further.
            if not _is_compacted(failed.error):
                raise _translate(failed.error, during="compact") from None

    # -- calls with deadline and failover --------------------------------------------

    def _require_open(self) -> None:
        if not self._open:
            raise UnavailableError("the etcd backend is not open")

    def _endpoints_in_order(self) -> list[tuple[int, _Endpoint]]:
        count = len(self._endpoints)
        return [
            ((self._preferred + step) % count, self._endpoints[(self._preferred + step) % count])
            for step in range(count)
        ]

    async def _call(
        self,
        invoke: Callable[[_Endpoint, float], Awaitable[_R]],
        *,
        idempotent: bool,
        during: str,
    ) -> _R:
        """Run one RPC on the first endpoint that takes it, within the backend's timeout.

        Raises _RpcFailedError for an error that retrying cannot cure (the caller maps it)
        and UnavailableError when the deadline passes with every endpoint failing."""
        self._require_open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        pause = _RETRY_PAUSE
        last_error: Any = None
        while True:
            for index, endpoint in self._endpoints_in_order():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    result = await invoke(endpoint, remaining)
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE or not (
                        idempotent or _is_not_applied(error)
                    ):
                        raise _RpcFailedError(error) from None
                    last_error = error
                    continue
                self._preferred = index
                return result
            remaining = deadline - loop.time()
            if remaining <= 0 or not self._open:
                reason = "no endpoint answered" if last_error is None else last_error.details()
                raise UnavailableError(f"etcd {during} failed within {self._timeout}s: {reason}")
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, _MAX_RETRY_PAUSE)

    # -- watch -----------------------------------------------------------------------

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[list[WatchEvent]]:
        return self._watch(prefix, after_revision)

    async def _watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[WatchEvent]]:
        self._require_open()
        start, end = self._etcd_range(prefix)
        compacted = await self.compacted_revision()
        if after_revision < compacted:
            raise CompactedError(after_revision, compacted)
        last = after_revision
        call: Any = None
        outage = _Outage(limit=self._watch_reconnect_timeout)
        try:
            while True:
                try:
                    if call is None:
                        call = await self._open_watch(start, end, after_revision=last)
                    response = await self._read_watch(call)
                except _WatchClosedError:
                    return
                except CompactedError as error:
                    raise CompactedError(last, error.compacted) from None
                except _StreamBrokenError as broken:
                    self._forget_watch(call)
                    call = None
                    if not self._open:
                        return
                    logger.info("etcd watch broken (%s); resuming after revision %d", broken, last)
                    await outage.wait_or_give_up(str(broken))
                    continue
                outage.end()
                batch = [e for e in map(self._watch_event, response.events) if e.revision > last]
                if batch:
                    last = batch[-1].revision
                    yield batch
        finally:
            self._forget_watch(call)

    async def _open_watch(self, start: bytes, end: bytes, *, after_revision: int) -> Any:
        """A watch stream on the first endpoint that accepts it, from ``after_revision + 1``."""
        request = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=start, range_end=end, start_revision=after_revision + 1, prev_kv=True
            )
        )
        errors: list[str] = []
        for index, endpoint in self._endpoints_in_order():
            self._require_open_watch()
            call = endpoint.watch.Watch(metadata=_WATCH_METADATA)
            self._watch_calls.add(call)
            try:
                await asyncio.wait_for(self._create_watch(call, request), self._timeout)
            except (_StreamBrokenError, TimeoutError) as error:
                self._forget_watch(call)
                errors.append(f"{endpoint.url}: {error or 'timed out'}")
                continue
            self._preferred = index
            return call
        raise _StreamBrokenError("; ".join(errors))

    def _require_open_watch(self) -> None:
        if not self._open:
            raise _WatchClosedError

    async def _create_watch(self, call: Any, request: Any) -> None:
        await self._write_watch(call, request)
        while True:
            response = await self._read_watch(call)
            if response.created:
                return

    async def _write_watch(self, call: Any, request: Any) -> None:
        try:
            await call.write(request)
        except grpc.aio.AioRpcError as error:
            raise _StreamBrokenError(f"{error.code().name}: {error.details()}") from None
        except asyncio.CancelledError:
            self._raise_if_closed_by_us()
            raise

    async def _read_watch(self, call: Any) -> Any:
        """The next response of a watch stream, with cancellations turned into errors."""
        try:
            response = await call.read()
        except grpc.aio.AioRpcError as error:
            raise _StreamBrokenError(f"{error.code().name}: {error.details()}") from None
        except asyncio.CancelledError:
            self._raise_if_closed_by_us()
            raise
        if response is grpc.aio.EOF:
            raise _StreamBrokenError("the watch stream ended")
        if response.canceled or response.compact_revision:
            if response.compact_revision:
                self._seen_compacted = max(self._seen_compacted, response.compact_revision)
                raise CompactedError(0, response.compact_revision)
            raise _StreamBrokenError(response.cancel_reason or "the watch was cancelled")
        return response

    def _raise_if_closed_by_us(self) -> None:
        # close() cancels the calls, which surfaces as CancelledError in the reader; that is
        # the end of the watch, unless the reading task itself is being cancelled.
        task = asyncio.current_task()
        if not self._open and (task is None or task.cancelling() == 0):
            raise _WatchClosedError

    def _forget_watch(self, call: Any) -> None:
        if call is not None:
            self._watch_calls.discard(call)
            call.cancel()

    def _watch_event(self, event: Any) -> WatchEvent:
        previous = self._key_value(event.prev_kv) if event.HasField("prev_kv") else None
        if event.type != rpc.Event.DELETE:
            return WatchEvent(EventType.PUT, self._key_value(event.kv), previous)
        # etcd's delete event carries only the key and the delete's revision; the protocol
        # wants the last value, which is the previous state etcd sends along.
        deleted = KeyValue(
            key=event.kv.key.decode()[len(self._root) :],
            value=previous.value if previous else b"",
            create_revision=previous.create_revision if previous else 0,
            mod_revision=event.kv.mod_revision,
        )
        return WatchEvent(EventType.DELETE, deleted, previous)


class _Outage:
    """How long a watch has been without a stream, and how long to wait before retrying."""

    def __init__(self, *, limit: float) -> None:
        self._limit = limit
        self._since: float | None = None
        self._pause = _RETRY_PAUSE

    def end(self) -> None:
        self._since = None
        self._pause = _RETRY_PAUSE

    async def wait_or_give_up(self, reason: str) -> None:
        """Sleep before the next attempt, or raise UnavailableError once over the limit."""
        now = asyncio.get_running_loop().time()
        if self._since is None:
            self._since = now
        if now - self._since >= self._limit:
            raise UnavailableError(f"etcd watch could not be resumed: {reason}")
        await asyncio.sleep(self._pause)
        self._pause = min(self._pause * 2, _MAX_RETRY_PAUSE)


class _RpcFailedError(Exception):
    """An RPC error that retrying on another endpoint cannot cure; the caller maps it."""

    def __init__(self, error: Any) -> None:
        super().__init__(str(error))
        self.error = error


class _CompactedDuringRangeError(Exception):
    """A paginated range's pinned revision was compacted between two pages."""
