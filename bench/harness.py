"""How a bench starts and ends, one copy for the kiosk, counter, display and hall benches: the signals, the
watchdog and the janitor around the run, its temporary folder, a private Mosquitto, the environment of a window
child (offscreen, no sound card, nothing in the user's home), stopping a child, and the machine line.

None of this is measured: it is the set-up every bench repeats around what it measures.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from any folder: the repository's packages first
    sys.path.insert(0, str(ROOT))

from bench.benchlib import DayServer, Janitor, on_signal  # noqa: E402
from broker import children  # noqa: E402


def guarded(janitor: Janitor, watchdog_s: float, run: Callable[[], bool]) -> int:
    """Run a bench's parent: SIGTERM/SIGHUP and Ctrl-C clean up, a watchdog stops a hung run, and whatever
    the janitor holds is torn down at the end; prints the run time. The exit code: 0 when every check passed."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    watchdog = janitor.watchdog(watchdog_s)
    began = time.perf_counter()
    passed = False
    try:
        passed = run()
    except KeyboardInterrupt:
        print(f"\n{janitor.name}: interrupted; cleaning up", flush=True)
    finally:
        janitor.run()
        watchdog.cancel()
    print(f"\nrun time {time.perf_counter() - began:.1f} s")
    return 0 if passed else 1


def bench_dir(janitor: Janitor, prefix: str) -> Path:
    """A fresh temporary folder, removed by the janitor."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    janitor.add(lambda: shutil.rmtree(tmp, ignore_errors=True))
    return tmp


def window_env(tmp: Path) -> dict[str, str]:
    """The environment of a child that opens a Kivy window: SDL offscreen (Mesa) with the dummy audio driver, Kivy's
    home, the font cache and the runtime folder in `tmp`, and no X or Wayland display to find."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "KIVY_NO_ARGS": "1",
           "KIVY_NO_CONSOLELOG": "1", "KIVY_HOME": str(tmp / "kivy"), "SDL_VIDEODRIVER": "offscreen",
           "SDL_AUDIODRIVER": "dummy", "XDG_CACHE_HOME": str(tmp / "cache"), "XDG_RUNTIME_DIR": str(tmp)}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def private_broker(janitor: Janitor) -> Any:
    """A private Mosquitto on a free port of 127.0.0.1 (tests/support/brokers.py), started; closed by the janitor."""
    from tests.support.brokers import MosquittoBroker

    broker = MosquittoBroker()
    janitor.add(broker.close)
    broker.start()
    return broker


def window_bench(janitor: Janitor, title: str, quick: bool) -> tuple[Path, dict[str, str], Any]:
    """A window bench's start: its folder (also the runtime folder of every process it starts, so that the hall
    server's runfile stays out of the user's), the window children's environment, the heading with the machine
    line, and a private Mosquitto. Returns (folder, environment, broker)."""
    tmp = bench_dir(janitor, f"vuoro-{title.split()[0]}-bench-")
    env = window_env(tmp)
    os.environ["XDG_RUNTIME_DIR"] = str(tmp)
    print(f"Vuoro {title} bench ({'quick' if quick else 'full'})")
    print("  " + machine_line())
    return tmp, env, private_broker(janitor)


def day_server(janitor: Janitor, tmp: Path, broker: Any) -> DayServer:
    """The demo hall's server as `vuoro server --always-open` runs it (HallService), whose days the bench moves on;
    started, and stopped by the janitor."""
    from broker.config import DEMO_HALL

    server = DayServer(DEMO_HALL, tmp / "hall.db", broker.address.url)
    janitor.add(server.stop)
    return server.start()


def stop_process(proc: subprocess.Popen[Any], wait_s: float = 5.0) -> None:
    """Terminate a child, and kill it if it has not gone within `wait_s`."""
    children.stop(proc, wait_s)


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), "?")
    return "?"


def machine_line() -> str:
    """The machine a window bench ran on: cores, CPU, Python, Kivy, and how loaded it was at the start."""
    try:
        from importlib.metadata import version

        kivy = version("Kivy")
    except Exception:
        kivy = "?"
    return (f"machine: nproc {len(os.sched_getaffinity(0))} ({cpu_name()}), python {platform.python_version()}, "
            f"kivy {kivy}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start")
