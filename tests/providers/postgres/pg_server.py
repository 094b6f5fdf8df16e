"""Start a real, throwaway PostgreSQL 15 server on 127.0.0.1 for the provider's tests.

``initdb`` makes a cluster in a fresh temporary directory with one superuser whose password
is random; ``pg_hba.conf`` admits only TCP from 127.0.0.1 (SCRAM passwords) and the server's
own Unix socket, which lives in that directory. ``pg_ctl -w`` starts it on a free port and
``pg_ctl stop -m fast`` stops it; the directory is removed afterwards.

PostgreSQL refuses to run as root. When the tests run as root, every PostgreSQL command runs
through ``setpriv`` as an unprivileged account instead (``$KPLANE_TEST_PG_USER``, else
``postgres``, else ``nobody``), and the temporary directory is created outside pytest's
root-only ``/tmp/pytest-of-root`` and handed to that account.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.server import free_port

PG_BIN = Path(os.environ.get("KPLANE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "kplane_admin"


def available() -> bool:
    """Whether the PostgreSQL binaries are installed (see conftest.py for what happens
    without them)."""
    return all((PG_BIN / tool).exists() for tool in ("initdb", "pg_ctl", "postgres"))


def _unprivileged_account() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as, or None when we are not root and can run it directly."""
    if os.geteuid() != 0:
        return None
    candidates = [os.environ.get("KPLANE_TEST_PG_USER", ""), "postgres", "nobody"]
    for name in candidates:
        if not name:
            continue
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged account to run PostgreSQL as")


@dataclass
class PostgresServer:
    """One running PostgreSQL cluster; :meth:`start` and :meth:`stop` bracket its life."""

    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    base: Path = field(init=False)
    _account: pwd.struct_passwd | None = field(init=False, default=None)
    _running: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._account = _unprivileged_account()
        self.base = Path(tempfile.mkdtemp(prefix="kplane-pg-"))
        if self._account is not None:
            os.chown(self.base, self._account.pw_uid, self._account.pw_gid)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for the superuser over TCP."""
        return (f"host={self.host} port={self.port} user={SUPERUSER} "
                f"password={self.password} dbname={dbname}")

    def url(self, dbname: str = "postgres") -> str:
        """The same as :meth:`dsn`, as a ``postgresql://`` URL."""
        return f"postgresql://{SUPERUSER}:{self.password}@{self.host}:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._account is not None:
            # setpriv rather than su/runuser: no PAM session, no login shell, just the ids.
            command = ["setpriv", f"--reuid={self._account.pw_uid}",
                       f"--regid={self._account.pw_gid}", "--clear-groups", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                cwd=self.base)
        if result.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}\n{log[-4000:]}")
        return result

    def _write_owned(self, path: Path, text: str) -> None:
        path.write_text(text)
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def start(self) -> None:
        password_file = self.base / "pwfile"
        self._write_owned(password_file, self.password + "\n")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                  f"--pwfile={password_file}", "--auth-host=scram-sha-256",
                  "--auth-local=trust", "--encoding=UTF8", "--locale=C.UTF-8")
        password_file.unlink()
        # Only loopback TCP with passwords, plus the private socket for the superuser.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.base}'\n"
                       "max_connections = 60\nfsync = off\nsynchronous_commit = off\n"
                       "full_page_writes = off\n")
        self._write_owned(self.log_path, "")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
                  "-w", "-t", "60", "start")
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60",
                      "-m", "fast", "stop")
            self._running = False
        shutil.rmtree(self.base, ignore_errors=True)
