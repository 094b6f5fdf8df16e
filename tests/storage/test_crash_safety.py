"""Acknowledged writes survive ``kill -9`` of the process that made them."""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from kplane.storage.sqlite import SQLiteBackend

# Eight concurrent writers, so kills land in the middle of group-commit batches; a key is
# printed only once its create() returned, i.e. once the backend acknowledged it.
_WRITER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from kplane.storage.sqlite import SQLiteBackend

    async def main(path, synchronous):
        store = SQLiteBackend(path, synchronous=synchronous)
        await store.start()

        async def writer(n):
            i = 0
            while True:
                key = f"/registry/core/configmaps/c{n}/default/cm-{i}"
                await store.create(key, b"x" * 300)
                sys.stdout.write(key + "\\n")
                sys.stdout.flush()
                i += 1

        await asyncio.gather(*(writer(n) for n in range(8)))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def _run_and_kill(db: pathlib.Path, *, synchronous: str, acknowledged_before_kill: int) -> set[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER_SCRIPT, str(db), synchronous],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged: set[str] = set()
    try:
        assert proc.stdout is not None
        while len(acknowledged) < acknowledged_before_kill:
            line = proc.stdout.readline()
            assert line, "writer process exited early"
            acknowledged.add(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        # Lines already written before the kill are acknowledged writes too.
        acknowledged.update(line.strip() for line in proc.stdout if line.strip())
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return acknowledged


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
async def test_acknowledged_creates_survive_kill_9(
    tmp_path: pathlib.Path, synchronous: str
) -> None:
    db = tmp_path / "kplane.db"
    acknowledged = _run_and_kill(db, synchronous=synchronous, acknowledged_before_kill=1_500)

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()

    store = SQLiteBackend(db)
    await store.start()
    try:
        stored = {kv.key: kv for kv in (await store.range("/registry/")).items}
        assert acknowledged <= stored.keys()
        revisions = sorted(kv.mod_revision for kv in stored.values())
        assert revisions == list(range(1, len(stored) + 1))
        assert await store.current_revision() == len(stored)
        after = await store.create("/registry/after-restart", b"y")
        assert after.mod_revision == len(stored) + 1
    finally:
        await store.close()
