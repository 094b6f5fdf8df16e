"""Start a real ``kplane serve`` process for end-to-end tests, and drive kubectl against it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class KplaneProcess:
    """One running server, its data directory and credentials."""

    data_dir: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"kplane-{self.port}.log"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> str:
        return str(self.data_dir / "pki" / "ca.crt")

    @property
    def admin_cert(self) -> tuple[str, str]:
        return (str(self.data_dir / "pki" / "admin.crt"), str(self.data_dir / "pki" / "admin.key"))

    def start(self, *, timeout: float = 30.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kplane.cli.main", "serve", "--data-dir", str(self.data_dir),
             "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kplane exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                verify: ssl.SSLContext | bool = False
                if Path(self.ca).exists():
                    verify = self.tls_context(with_client_cert=False)
                response = httpx.get(f"{self.url}/readyz", verify=verify, timeout=1.0)
                if response.status_code == 200 and self.kubeconfig.exists():
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"kplane not ready in {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def tls_context(self, *, with_client_cert: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        if with_client_cert:
            context.load_cert_chain(*self.admin_cert)
        return context

    def client(self, *, with_client_cert: bool = True, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url,
                            verify=self.tls_context(with_client_cert=with_client_cert),
                            timeout=10.0, **kwargs)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60.0,
                server: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [KUBECTL, "--kubeconfig", str(self.kubeconfig)]
        if server:
            command += ["--server", server]
        command += list(args)
        env = {**os.environ, "KUBECACHEDIR": str(self.data_dir.parent / "kubecache")}
        result = subprocess.run(command, input=input, capture_output=True, text=True,
                                timeout=timeout, env=env)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)
