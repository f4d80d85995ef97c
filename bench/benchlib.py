"""What both benches need: percentiles, /proc readings, verdicts, and a janitor that always cleans up.

Imported as `benchlib` by the bench scripts (run as `python bench/NAME.py`, their folder is on sys.path).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000 if samples else math.nan


def p99_ms(samples: list[float]) -> float:
    """Nearest-rank 99th percentile, in milliseconds."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] * 1000


def rss_mib(pid: int | str = "self") -> float:
    return rss_mib_field("VmRSS", pid)


def rss_mib_field(field: str, pid: int | str = "self") -> float:
    """A kB field of /proc/PID/status (VmRSS, VmHWM) in MiB; NaN when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Janitor:
    """Everything started is registered here and torn down once (newest first): normally, on a signal, or by
    the watchdog."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._jobs: list[Callable[[], Any]] = []

    def add(self, job: Callable[[], Any]) -> None:
        with self._lock:
            self._jobs.append(job)

    def run(self, keep: int = 0) -> None:
        """Run (newest first) and forget every job but the first `keep`."""
        with self._lock:
            jobs, self._jobs = self._jobs[keep:][::-1], self._jobs[:keep]
        for job in jobs:
            with contextlib.suppress(Exception):
                job()

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Whatever is registered inside is torn down on leaving."""
        with self._lock:
            keep = len(self._jobs)
        try:
            yield
        finally:
            self.run(keep)

    def watchdog(self, seconds: float) -> threading.Timer:
        def expire() -> None:
            print(f"\n{self.name}: watchdog: still running after {seconds:.0f}s; stopping everything",
                  file=sys.stderr, flush=True)
            self.run()
            os._exit(3)

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        return timer


def on_signal(signum: int, frame: Any) -> None:
    """SIGTERM/SIGHUP become SystemExit, so that every `finally` and the janitor run."""
    raise SystemExit(128 + signum)


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat), in seconds; NaN when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
