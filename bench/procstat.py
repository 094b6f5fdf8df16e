"""What the kernel says about a server process: resident memory and CPU time consumed.

The workspace scenarios judge the server by what it costs the machine, read from outside
the process (``/proc/<pid>/status`` and ``/proc/<pid>/stat``), so nothing in the server is
instrumented and the readings include everything: the interpreter's heap, SQLite's page
cache, the TLS library. Linux only, like the rest of the suite.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted after the command name.
_UTIME_AFTER_COMM = 11
_STIME_AFTER_COMM = 12


def rss_bytes(pid: int) -> int:
    """The resident set size (``VmRSS``) of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            kibibytes = int(line.split()[1])
            return kibibytes * 1024
    raise RuntimeError(f"no VmRSS for process {pid} (a zombie?)")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process ``pid`` has used so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[_UTIME_AFTER_COMM]) + int(fields[_STIME_AFTER_COMM])
    return ticks / _CLOCK_TICKS_PER_S


@dataclass(frozen=True, slots=True)
class CpuWindow:
    """CPU time a process used over a stretch of wall-clock time."""

    cpu_s: float
    wall_s: float

    @property
    def cpu_ms_per_s(self) -> float:
        """Average CPU use in milliseconds per second (1000 = one core busy)."""
        return self.cpu_s * 1000.0 / self.wall_s if self.wall_s > 0 else 0.0


def measure_cpu(pid: int, *, seconds: float) -> CpuWindow:
    """Sleep ``seconds`` and return how much CPU ``pid`` used meanwhile."""
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return CpuWindow(cpu_s=cpu_seconds(pid) - cpu_before, wall_s=time.monotonic() - wall_before)


def settle(pid: int, *, quiet_ms_per_s: float = 50.0, window_s: float = 0.5,
           longest_s: float = 30.0) -> float:
    """Wait until ``pid`` uses less than ``quiet_ms_per_s`` of CPU over one window.

    A server that just acknowledged a burst of writes is still committing, fanning out
    events and collecting garbage; reading its memory then would catch it mid-flight.
    Returns the seconds waited (at most about ``longest_s``).
    """
    started = time.monotonic()
    while time.monotonic() - started < longest_s:
        if measure_cpu(pid, seconds=window_s).cpu_ms_per_s < quiet_ms_per_s:
            break
    return time.monotonic() - started
