"""What the benches need: percentiles, /proc readings, verdicts, a janitor that always cleans up, and the memory
measure (a bare Kivy window to measure against, a hall server whose days can be moved on, the figures table).

Imported as `benchlib` by the bench scripts (run as `python bench/NAME.py`, their folder is on sys.path).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH.parent) not in sys.path:  # run from any folder: the repository's packages first
    sys.path.insert(0, str(BENCH.parent))

from broker import children  # noqa: E402
from broker.stats import percentile  # noqa: E402

DAY_VISITS = 900  # visits per simulated day in the soaks: under a topic's 999 numbers, with room for warm-up


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000 if samples else math.nan


def p99_ms(samples: list[float]) -> float:
    """Nearest-rank 99th percentile (the report's own, broker/stats.py), in milliseconds."""
    value = percentile(sorted(samples), 0.99)
    return math.nan if value is None else value * 1000


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


# ---------------------------------------------------------------- memory: the floor, the days, the figures


def bare_window(env: dict[str, str], size: str, loop: str = "kivy") -> dict[str, float]:
    """Resident memory of a bare Kivy window (bench/bare_window.py) with the app's set-up, in its own child."""
    run = subprocess.run([sys.executable, str(BENCH / "bare_window.py"), "--size", size, "--loop", loop], env=env,
                         cwd=BENCH.parent, capture_output=True, text=True, timeout=90)
    lines = [x for x in run.stdout.splitlines() if x.startswith("{")]
    if run.returncode != 0 or not lines:
        raise RuntimeError(f"bare window failed ({run.returncode}): {run.stderr[-2000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


class DayServer:
    """bench/day_server.py: the real hall server (HallService, SQLite, the given broker) whose clock `next_day`
    moves on by a day, so that a soak can go past a topic's 999 numbers a day, as a device does over months."""

    def __init__(self, hall: Path, db: Path, broker_url: str) -> None:
        self.args = [sys.executable, str(BENCH / "day_server.py"), str(hall), str(db), broker_url]
        self.log = db.with_suffix(".server.log")
        self.proc: subprocess.Popen[str] | None = None
        self.days = 0
        self._lines: queue.Queue[str] = queue.Queue()

    def start(self, timeout: float = 30.0) -> DayServer:
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(BENCH.parent))
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(self.log, "a"), text=True, bufsize=1, env=env)  # noqa: SIM115
        threading.Thread(target=self._read, daemon=True).start()
        self._expect("ready", timeout)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def _expect(self, word: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc is not None and self.proc.poll() is not None:
                    break
                continue
            if word in line:
                return line
        raise RuntimeError(f"the hall server did not say {word!r}: {self.log.read_text()[-2000:]}")

    def next_day(self) -> int:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write("DAY\n")
        self.proc.stdin.flush()
        self.days = int(self._expect("DAY ", 10).split()[1])
        return self.days

    def stop(self) -> None:
        children.stop(self.proc, 10.0)


@dataclass
class Memory:
    """One app's resident memory against the bare window, and its growth over a soak."""

    app: str
    unit: str  # "visits" or "calls"
    bare: float
    synced: float
    warm: float
    end: float
    warmup: int
    soak: int
    over_bare_max: float  # MiB the app may hold above the bare window
    growth_max: float = 5.0  # MiB the soak may add after warm-up
    series: list[tuple[int, float, float]] = field(default_factory=list)  # (count after warm-up, MiB, seconds)
    soak_s: float = math.nan
    note: str = ""  # said under the series

    @property
    def over_bare(self) -> float:
        return max(self.synced, self.warm, self.end) - self.bare

    @property
    def growth(self) -> float:
        return self.end - self.warm

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.over_bare <= self.over_bare_max,
             f"{self.app}: resident memory above a bare window (the highest of synced, warm, soaked) "
             f"{self.over_bare:+.1f} MiB <= +{self.over_bare_max:.0f} MiB"),
            (self.growth <= self.growth_max,
             f"{self.app}: growth over {self.soak:,} {self.unit} after warm-up {self.growth:+.1f} MiB "
             f"<= {self.growth_max:.0f} MiB"),
        ]

    def report(self) -> list[str]:
        """The series along the soak, then the figures table's header and row."""
        lines = []
        if self.series:
            lines.append(f"   along the soak ({self.unit} after warm-up: MiB, minutes): "
                         + ", ".join(f"{n:,}: {mib:.1f} ({s / 60:.1f})" for n, mib, s in self.series))
            points = [(0, self.warm, 0.0), *self.series]
            pairs = itertools.pairwise(points)
            steps = [(b[1] - a[1]) / max(1, b[0] - a[0]) * 1000 for a, b in pairs]
            if steps:
                lines.append(f"   growth per 1,000 {self.unit}: " + ", ".join(f"{x:+.2f}" for x in steps) + " MiB")
            if len(points) >= 3:  # single readings move by a few MiB either way: the trend says more than two ends
                fit = statistics.linear_regression([float(n) for n, _, _ in points], [mib for _, mib, _ in points])
                lines.append(f"   trend (least squares over the {len(points)} readings): {fit.slope * 1000:+.2f} MiB "
                             f"per 1,000 {self.unit}")
        lines.append(f"   the soak of {self.soak:,} {self.unit} took {self.soak_s / 60:.1f} min "
                     "(times depend on the machine's load; resident memory does not)")
        if self.note:
            lines.append(f"   {self.note}")
        head = (f"   {'app':<8} {'bare':>7} {'synced':>7} {'warm':>7} {'soaked':>7} {'growth':>7}   targets "
                f"(over bare / growth)   verdict")
        ok = all(good for good, _ in self.checks())
        row = (f"   {self.app:<8} {self.bare:7.1f} {self.synced:7.1f} {self.warm:7.1f} {self.end:7.1f} "
               f"{self.growth:+7.1f}   {self.over_bare:+.1f} <= +{self.over_bare_max:.0f} / "
               f"{self.growth:+.1f} <= {self.growth_max:.0f} MiB   {verdict(ok)}")
        return [*lines, head, row]
