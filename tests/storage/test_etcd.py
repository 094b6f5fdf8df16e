"""Behaviour of the etcd backend against real etcd processes.

The first group of tests runs the same cases against the SQLite backend and the etcd
backend (``store`` is parametrized over both), so the two stay interchangeable; revisions
are asserted relative to the revision at the start of each test, because etcd starts at 1
and the etcd member is shared by the module (each test gets its own key prefix). The rest
are etcd-only: prefixes, pagination, several kplane processes on one cluster, TLS, and the
fault cases (a member lost, the whole cluster stopped and restarted).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import pathlib
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kplane.storage.backend import (
    Backend,
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    UnavailableError,
    ValueTooLargeError,
    WatchEvent,
)
from kplane.storage.etcd import EtcdBackend
from kplane.storage.sqlite import SQLiteBackend
from tests.storage.etcd_cluster import EtcdCluster, TLSFiles

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.create(tmp_path_factory.mktemp("etcd"))
    cluster.start()
    yield cluster
    cluster.stop()


def _unique_prefix() -> str:
    return f"/test{next(_prefixes)}"


@pytest.fixture(params=["sqlite", "etcd"])
async def store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, etcd: EtcdCluster
) -> AsyncIterator[Backend]:
    backend: Backend
    if request.param == "sqlite":
        backend = SQLiteBackend(tmp_path / "kplane.db")
    else:
        backend = EtcdBackend(etcd.endpoints, prefix=_unique_prefix(), timeout=2)
    await backend.start()
    yield backend
    await backend.close()


async def _collect(
    stream: AsyncIterator[list[WatchEvent]], *, count: int, timeout: float = 10.0
) -> list[WatchEvent]:
    events: list[WatchEvent] = []

    async def run() -> None:
        async for batch in stream:
            events.extend(batch)
            if len(events) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return events


# -- the same behaviour as the SQLite backend --------------------------------------------


async def test_every_write_gets_the_next_revision(store: Backend) -> None:
    base = await store.current_revision()
    a = await store.create("/r/a", b"1")
    b = await store.create("/r/b", b"2")
    a2 = await store.update("/r/a", b"3", expected_mod_revision=a.mod_revision)
    gone = await store.delete("/r/b")
    assert (a.create_revision, a.mod_revision) == (base + 1, base + 1)
    assert (b.create_revision, b.mod_revision) == (base + 2, base + 2)
    assert (a2.create_revision, a2.mod_revision) == (base + 1, base + 3)
    assert gone == KeyValue("/r/b", b"2", create_revision=base + 2, mod_revision=base + 4)
    assert await store.current_revision() == base + 4


async def test_get_returns_current_value_or_none(store: Backend) -> None:
    created = await store.create("/r/a", b"v1")
    updated = await store.update("/r/a", b"v2", expected_mod_revision=created.mod_revision)
    assert await store.get("/r/a") == updated
    assert updated == KeyValue("/r/a", b"v2", created.create_revision, created.mod_revision + 1)
    assert await store.get("/r/missing") is None


async def test_create_of_existing_key_fails_and_consumes_no_revision(store: Backend) -> None:
    first = await store.create("/r/a", b"v1")
    with pytest.raises(KeyExistsError) as info:
        await store.create("/r/a", b"v2")
    assert info.value.key == "/r/a"
    assert await store.current_revision() == first.mod_revision
    assert await store.get("/r/a") == first


async def test_update_with_stale_revision_conflicts(store: Backend) -> None:
    first = await store.create("/r/a", b"v1")
    second = await store.update("/r/a", b"v2", expected_mod_revision=first.mod_revision)
    with pytest.raises(ConflictError) as info:
        await store.update("/r/a", b"v3", expected_mod_revision=first.mod_revision)
    assert (info.value.key, info.value.expected, info.value.actual) == (
        "/r/a",
        first.mod_revision,
        second.mod_revision,
    )
    assert await store.get("/r/a") == second
    assert await store.current_revision() == second.mod_revision


async def test_update_and_delete_of_missing_key_raise_not_found(store: Backend) -> None:
    base = await store.current_revision()
    with pytest.raises(KeyNotFoundError):
        await store.update("/r/nope", b"x", expected_mod_revision=1)
    with pytest.raises(KeyNotFoundError):
        # A missing key has no mod revision; 0 must not match it (etcd reports 0 for it).
        await store.update("/r/nope", b"x", expected_mod_revision=0)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/r/nope")
    with pytest.raises(KeyNotFoundError):
        await store.delete("/r/nope", expected_mod_revision=0)
    assert await store.get("/r/nope") is None
    assert await store.current_revision() == base


async def test_delete_checks_expected_revision_when_given(store: Backend) -> None:
    created = await store.create("/r/a", b"v1")
    with pytest.raises(ConflictError) as info:
        await store.delete("/r/a", expected_mod_revision=created.mod_revision + 7)
    assert info.value.actual == created.mod_revision
    deleted = await store.delete("/r/a", expected_mod_revision=created.mod_revision)
    assert deleted == KeyValue("/r/a", b"v1", created.create_revision, created.mod_revision + 1)
    assert await store.get("/r/a") is None
    recreated = await store.create("/r/a", b"v3")
    assert recreated.create_revision == recreated.mod_revision == deleted.mod_revision + 1


async def test_range_is_ordered_by_key_and_isolated_by_prefix(store: Backend) -> None:
    keys = ["/a/b/2", "/a/a", "/a/b/1", "/a/bc/1", "/a/b-x", "/s/a", "/a/b/10"]
    for key in keys:
        await store.create(key, key.encode())
    result = await store.range("/a/b/")
    assert [(kv.key, kv.value) for kv in result.items] == [
        ("/a/b/1", b"/a/b/1"),
        ("/a/b/10", b"/a/b/10"),
        ("/a/b/2", b"/a/b/2"),
    ]
    assert result.revision == await store.current_revision()
    everything = await store.range("")
    assert [kv.key for kv in everything.items] == sorted(keys)


async def test_range_revision_covers_deletes(store: Backend) -> None:
    await store.create("/r/a", b"1")
    deleted = await store.delete("/r/a")
    result = await store.range("/r/")
    assert result.items == []
    assert result.revision == deleted.mod_revision


async def test_concurrent_writers_all_succeed_with_unique_revisions(store: Backend) -> None:
    base = await store.current_revision()

    async def writer(n: int) -> list[int]:
        revisions = []
        for i in range(10):
            kv = await store.create(f"/r/w{n}/k{i}", b"x" * 300)
            revisions.append(kv.mod_revision)
        return revisions

    results = await asyncio.gather(*(writer(n) for n in range(16)))
    revisions = [r for per_writer in results for r in per_writer]
    assert sorted(revisions) == list(range(base + 1, base + 161))
    assert all(per_writer == sorted(per_writer) for per_writer in results)
    assert len((await store.range("/r/")).items) == 160


async def test_exactly_one_of_concurrent_compare_and_swaps_wins(store: Backend) -> None:
    created = await store.create("/r/contended", b"0")
    outcomes = await asyncio.gather(
        *(
            store.update(
                "/r/contended", str(i).encode(), expected_mod_revision=created.mod_revision
            )
            for i in range(10)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(o, KeyValue) for o in outcomes) == 1
    assert sum(isinstance(o, ConflictError) for o in outcomes) == 9
    assert await store.current_revision() == created.mod_revision + 1


async def test_watch_replays_history_then_streams_live(store: Backend) -> None:
    base = await store.current_revision()
    await store.create("/r/a", b"1")
    await store.create("/other/x", b"x")
    await store.update("/r/a", b"2", expected_mod_revision=base + 1)
    stream = store.watch("/r/", after_revision=base)
    replay = await _collect(stream, count=2)
    await store.delete("/r/a")
    await store.create("/other/y", b"y")
    await store.create("/r/b", b"b")
    live = await _collect(stream, count=2)
    await stream.aclose()  # type: ignore[attr-defined]

    assert [(e.type, e.kv.key, e.revision - base) for e in replay + live] == [
        (EventType.PUT, "/r/a", 1),
        (EventType.PUT, "/r/a", 3),
        (EventType.DELETE, "/r/a", 4),
        (EventType.PUT, "/r/b", 6),
    ]
    update, delete = replay[1], live[0]
    assert update.kv == KeyValue("/r/a", b"2", base + 1, base + 3)
    assert update.prev == KeyValue("/r/a", b"1", base + 1, base + 1)
    assert delete.kv == KeyValue("/r/a", b"2", base + 1, base + 4)
    assert delete.prev == KeyValue("/r/a", b"2", base + 1, base + 3)


async def test_watch_after_revision_skips_older_events(store: Backend) -> None:
    base = await store.current_revision()
    for i in range(5):
        await store.create(f"/r/{i}", b"x")
    events = await _collect(store.watch("/r/", after_revision=base + 3), count=2)
    assert [e.revision - base for e in events] == [4, 5]


async def test_watch_is_isolated_by_prefix(store: Backend) -> None:
    base = await store.current_revision()
    await store.create("/a/bc/1", b"x")
    await store.create("/a/b/1", b"y")
    events = await _collect(store.watch("/a/b/", after_revision=base), count=1)
    assert [(e.kv.key, e.revision - base) for e in events] == [("/a/b/1", 2)]


async def test_watch_has_no_gap_or_duplicate_under_concurrent_writes(store: Backend) -> None:
    base = await store.current_revision()
    total = 300

    async def write(n: int) -> None:
        for i in range(total // 6):
            await store.create(f"/r/{n}/{i}", b"v")

    writers = [asyncio.create_task(write(n)) for n in range(6)]
    await asyncio.sleep(0.01)  # start watching while writes are in flight
    events = await _collect(store.watch("/r/", after_revision=base), count=total)
    await asyncio.gather(*writers)
    assert [e.revision - base for e in events] == list(range(1, total + 1))


async def test_compaction_forgets_history_and_rejects_old_watches(store: Backend) -> None:
    base = await store.current_revision()
    for i in range(4):
        await store.create(f"/r/{i}", b"x")
    await store.compact(base + 2)
    assert await store.compacted_revision() == base + 2
    with pytest.raises(CompactedError) as info:
        await anext(aiter(store.watch("/r/", after_revision=base + 1)))
    assert (info.value.requested, info.value.compacted) == (base + 1, base + 2)
    events = await _collect(store.watch("/r/", after_revision=base + 2), count=2)
    assert [e.revision - base for e in events] == [3, 4]
    assert len((await store.range("/r/")).items) == 4
    # Compacting an older revision again changes nothing.
    await store.compact(base + 1)
    assert await store.compacted_revision() == base + 2


async def test_compacting_a_future_revision_is_refused(store: Backend) -> None:
    current = await store.current_revision()
    before = await store.compacted_revision()
    with pytest.raises(ValueError, match="future revision"):
        await store.compact(current + 5)
    assert await store.compacted_revision() == before


async def test_close_ends_open_watches(store: Backend) -> None:
    base = await store.current_revision()
    stream = store.watch("/r/", after_revision=base)
    await store.create("/r/a", b"x")
    await _collect(stream, count=1)
    waiting = asyncio.ensure_future(anext(aiter(stream)))
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)


async def test_operations_after_close_are_unavailable(store: Backend) -> None:
    await store.close()
    with pytest.raises(UnavailableError):
        await store.create("/r/a", b"x")
    with pytest.raises(UnavailableError):
        await store.get("/r/a")
    with pytest.raises(UnavailableError):
        await anext(aiter(store.watch("/r/", after_revision=0)))


# -- etcd only -------------------------------------------------------------------------


async def test_keys_are_stored_under_the_prefix(etcd: EtcdCluster) -> None:
    prefix = _unique_prefix()
    ours = EtcdBackend(etcd.endpoints, prefix=prefix)
    # A neighbour whose prefix extends ours must not leak into our ranges and watches.
    neighbour = EtcdBackend(etcd.endpoints, prefix=prefix + "x")
    raw = EtcdBackend(etcd.endpoints, prefix="")
    for backend in (ours, neighbour, raw):
        await backend.start()
    try:
        base = await ours.current_revision()
        await ours.create("/registry/a", b"1")
        await neighbour.create("/registry/b", b"2")
        assert await raw.get(f"{prefix}/registry/a") == KeyValue(
            f"{prefix}/registry/a", b"1", base + 1, base + 1
        )
        assert [kv.key for kv in (await ours.range("")).items] == ["/registry/a"]
        assert [kv.key for kv in (await neighbour.range("/")).items] == ["/registry/b"]
        events = await _collect(ours.watch("", after_revision=base), count=1)
        assert [e.kv.key for e in events] == ["/registry/a"]
        with pytest.raises(ValueError, match="must start with '/'"):
            await ours.create("registry/c", b"3")
    finally:
        for backend in (ours, neighbour, raw):
            await backend.close()


async def test_range_pages_are_read_at_one_revision(etcd: EtcdCluster) -> None:
    store = EtcdBackend(etcd.endpoints, prefix=_unique_prefix(), page_size=7)
    await store.start()
    try:
        for i in range(40):
            await store.create(f"/r/{i:03}", b"v")
        stop = asyncio.Event()

        async def churn() -> None:
            for i in itertools.count():
                if stop.is_set():
                    return
                await store.create(f"/r/new{i:04}", b"n")

        churner = asyncio.create_task(churn())
        await asyncio.sleep(0.05)
        result = await store.range("/r/")
        stop.set()
        await churner
        keys = [kv.key for kv in result.items]
        assert keys == sorted(keys)
        assert len(keys) == len(set(keys)) > 40
        # Exactly the keys that existed at the snapshot's revision, nothing newer.
        everything = (await store.range("/r/")).items
        assert keys == [kv.key for kv in everything if kv.create_revision <= result.revision]
    finally:
        await store.close()


async def test_two_servers_on_one_cluster_share_writes_and_watches(etcd: EtcdCluster) -> None:
    prefix = _unique_prefix()
    first = EtcdBackend(etcd.endpoints, prefix=prefix)
    second = EtcdBackend(etcd.endpoints, prefix=prefix)
    await first.start()
    await second.start()
    try:
        base = await first.current_revision()
        stream = second.watch("/r/", after_revision=base)
        created = await first.create("/r/a", b"1")
        assert await second.get("/r/a") == created
        with pytest.raises(KeyExistsError):
            await second.create("/r/a", b"2")
        updated = await second.update("/r/a", b"2", expected_mod_revision=created.mod_revision)
        with pytest.raises(ConflictError):
            await first.update("/r/a", b"3", expected_mod_revision=created.mod_revision)
        events = await _collect(stream, count=2)
        assert [e.kv for e in events] == [created, updated]
        await first.compact(updated.mod_revision)
        assert await second.compacted_revision() == updated.mod_revision
        with pytest.raises(CompactedError):
            await anext(aiter(second.watch("/r/", after_revision=base)))
    finally:
        await first.close()
        await second.close()


async def test_unresponsive_endpoint_fails_within_the_timeout() -> None:
    # A socket that accepts connections but never speaks: no error, just silence.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        store = EtcdBackend([f"http://127.0.0.1:{port}"], timeout=0.5)
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            await store.start()
        assert time.monotonic() - started < 2.0


async def test_tls_with_client_certificates(tmp_path: pathlib.Path) -> None:
    tls = _write_certificates(tmp_path)
    cluster = EtcdCluster.create(tmp_path / "tls", tls=tls)
    cluster.start()
    try:
        store = EtcdBackend(
            cluster.endpoints,
            ca_file=tls.ca_file,
            cert_file=tls.cert_file,
            key_file=tls.key_file,
        )
        await store.start()
        kv = await store.create("/r/a", b"secret")
        assert await store.get("/r/a") == kv
        await store.close()
        # Without a client certificate the member refuses the connection.
        anonymous = EtcdBackend(cluster.endpoints, ca_file=tls.ca_file, timeout=0.5)
        with pytest.raises(UnavailableError):
            await anonymous.start()
    finally:
        cluster.stop()


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        EtcdBackend([])
    with pytest.raises(ValueError, match="cert_file and key_file"):
        EtcdBackend(["http://127.0.0.1:2379"], cert_file="c.pem")
    with pytest.raises(ValueError, match="scheme"):
        EtcdBackend(["unix://x"])
    with pytest.raises(ValueError, match="prefix"):
        EtcdBackend(["http://127.0.0.1:2379"], prefix="kplane")


# -- faults ----------------------------------------------------------------------------


class _Writer:
    """Creates keys one after another and records which ones etcd acknowledged."""

    def __init__(self, store: EtcdBackend, name: str) -> None:
        self.store = store
        self.name = name
        self.acknowledged: list[str] = []
        self.unavailable = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        for i in itertools.count():
            if self.stop.is_set():
                return
            key = f"/r/{self.name}/{i:05}"
            try:
                await self.store.create(key, b"v")
            except UnavailableError:
                # Ambiguous: the write may or may not have happened. Retrying tells which.
                self.unavailable += 1
                await self._settle(key)
                continue
            self.acknowledged.append(key)

    async def _settle(self, key: str) -> None:
        while not self.stop.is_set():
            try:
                await self.store.create(key, b"v")
            except KeyExistsError:
                self.acknowledged.append(key)
                return
            except UnavailableError:
                await asyncio.sleep(0.05)
                continue
            self.acknowledged.append(key)
            return


async def test_losing_one_member_of_three_loses_no_write(tmp_path: pathlib.Path) -> None:
    cluster = EtcdCluster.create(tmp_path, size=3)
    cluster.start()
    leader = cluster.leader_index()
    # The backend talks to its first endpoint: make that the leader, the hardest member to
    # lose (the survivors must elect a new one, and a proposal in flight is lost with it).
    endpoints = [cluster.endpoints[leader]] + [
        url for i, url in enumerate(cluster.endpoints) if i != leader
    ]
    store = EtcdBackend(endpoints, timeout=2)
    try:
        await store.start()
        base = await store.current_revision()
        stream = store.watch("/r/", after_revision=base)
        writers = [_Writer(store, f"w{n}") for n in range(4)]
        tasks = [asyncio.create_task(w.run()) for w in writers]
        await asyncio.sleep(0.5)
        before = sum(len(w.acknowledged) for w in writers)
        cluster.stop_member(leader, sig=signal.SIGKILL)
        # Writes stall until a new leader is elected (one whose proposal was lost with the
        # old leader waits out its deadline, then is retried by the writer); then they go on.
        await _wait_until(lambda: sum(len(w.acknowledged) for w in writers) > before + 50)
        for w in writers:
            w.stop.set()
        await asyncio.gather(*tasks)
        acknowledged = {key for w in writers for key in w.acknowledged}

        stored = {kv.key for kv in (await store.range("/r/")).items}
        assert stored == acknowledged
        events = await _collect(stream, count=len(stored))
        revisions = [e.revision for e in events]
        assert revisions == sorted(set(revisions))
        assert {e.kv.key for e in events} == stored
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()
        cluster.stop()


async def test_stopped_cluster_is_unavailable_then_recovers(tmp_path: pathlib.Path) -> None:
    cluster = EtcdCluster.create(tmp_path)
    cluster.start()
    store = EtcdBackend(cluster.endpoints, timeout=0.5, watch_reconnect_timeout=30)
    impatient = EtcdBackend(cluster.endpoints, timeout=0.5, watch_reconnect_timeout=0.5)
    try:
        await store.start()
        await impatient.start()
        base = await store.current_revision()
        acknowledged = [await store.create(f"/r/before{i}", b"v") for i in range(5)]
        stream = store.watch("/r/", after_revision=base)
        seen = await _collect(stream, count=5)
        doomed = impatient.watch("/r/", after_revision=base)
        await _collect(doomed, count=5)

        cluster.stop_member(0, sig=signal.SIGKILL)
        for operation in (
            store.create("/r/during", b"v"),
            store.get("/r/before0"),
            store.range("/r/"),
            store.current_revision(),
        ):
            started = time.monotonic()
            with pytest.raises(UnavailableError):
                await operation
            assert time.monotonic() - started < 1.5
        # A watch gives up after its reconnect window, with UnavailableError.
        with pytest.raises(UnavailableError):
            await asyncio.wait_for(anext(aiter(doomed)), 5)

        # The patient watch waits through the outage and resumes where it was.
        pending = asyncio.create_task(_collect(stream, count=3))
        await asyncio.sleep(0.3)
        cluster.start_member(0)
        for i in range(3):
            acknowledged.append(await _retry_until_available(store, f"/r/after{i}"))
        seen += await pending
        assert [e.kv for e in seen] == acknowledged
        assert [kv for kv in (await store.range("/r/")).items] == sorted(
            acknowledged, key=lambda kv: kv.key
        )
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()
        await impatient.close()
        cluster.stop()


async def test_watch_resuming_into_compacted_history_raises_compacted(
    tmp_path: pathlib.Path,
) -> None:
    cluster = EtcdCluster.create(tmp_path, size=3)
    cluster.start()
    # The watching server reaches only one follower; the other server reaches the rest.
    # (Losing a follower needs no election, which keeps this test short.)
    follower = (cluster.leader_index() + 1) % 3
    watching = EtcdBackend([cluster.endpoints[follower]], timeout=1)
    other = EtcdBackend([u for i, u in enumerate(cluster.endpoints) if i != follower], timeout=2)
    try:
        await watching.start()
        await other.start()
        base = await other.current_revision()
        stream = watching.watch("/r/", after_revision=base)
        first = await other.create("/r/a", b"1")
        assert [e.kv for e in await _collect(stream, count=1)] == [first]
        pending = asyncio.ensure_future(anext(aiter(stream)))
        cluster.stop_member(follower, sig=signal.SIGKILL)
        await _retry_until_available(other, "/r/b")
        latest = await _retry_until_available(other, "/r/c")
        await other.compact(latest.mod_revision)
        cluster.start_member(follower)
        with pytest.raises(CompactedError) as info:
            await asyncio.wait_for(pending, 10)
        assert (info.value.requested, info.value.compacted) == (
            first.mod_revision,
            latest.mod_revision,
        )
    finally:
        await watching.close()
        await other.close()
        cluster.stop()


async def _wait_until(condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _retry_until_available(store: EtcdBackend, key: str) -> KeyValue:
    deadline = time.monotonic() + 10
    while True:
        try:
            return await store.create(key, b"v")
        except UnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# -- certificates for the TLS test -----------------------------------------------------


def _write_certificates(directory: pathlib.Path) -> TLSFiles:
    """A CA, and one certificate for 127.0.0.1 that serves both as etcd's and the client's."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kplane-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kplane-test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(_loopback())]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TLSFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def _loopback() -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address("127.0.0.1")


async def test_a_value_over_etcds_request_limit_is_too_large(etcd: EtcdCluster) -> None:
    backend = EtcdBackend(etcd.endpoints, prefix=_unique_prefix(), timeout=5)
    await backend.start()
    try:
        # Over etcd's own limit (1.5 MiB), and over gRPC's message limit (2 MiB).
        for size in (1600 << 10, 2 << 20):
            with pytest.raises(ValueTooLargeError):
                await backend.create("/registry/core/configmaps/c/ns/big", b"x" * size)
        assert await backend.get("/registry/core/configmaps/c/ns/big") is None
    finally:
        await backend.close()
