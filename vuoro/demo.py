"""`vuoro demo`: the whole demo hall from one command: the hall server, a kiosk, two counters, two displays.

The server runs in this process (on the embedded broker unless --broker names one); each device is its own
`vuoro kiosk|counter|display` process with its own window, exactly as a hall runs them, so the demo shows
the real apps and not a mock-up. Ctrl-C (or SIGTERM) stops the devices first, then the server, then the
broker, and waits for each: nothing is left running and the event log is closed cleanly. If the demo is
killed outright, the kernel ends its devices (broker/children.py). While it runs, the command line on this
machine finds it as it finds `vuoro server` (the runfile; zeroconf with --advertise), and a reader of its
output going away (`vuoro demo | head`) leaves it running, quietly.

On a machine without a screen, or with --headless, the same hall runs without windows and a scripted
stream of visitors and staff goes through a simulated morning (vuoro/demo_headless.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from broker.children import spawn
from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from vuoro.demo_server import HallUnreachable, hall_server, stop_signals, tell

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class Device:
    """One device window of the demo: `vuoro <app> --id <id> ...`."""

    app: str
    id: str
    size: str
    at: tuple[int, int]  # where the window's top left corner goes on a 1920x1080 screen
    extra: tuple[str, ...] = ()

    def argv(self, hall: Path, broker: BrokerAddress) -> list[str]:
        return [sys.executable, "-m", "vuoro.cli", self.app, "--hall", str(hall), "--broker", broker.url,
                "--id", self.id, "--windowed", "--size", self.size, *self.extra]

    def env(self) -> dict[str, str]:
        """Kivy's own configuration overrides place the window, so that five fit side by side, none hidden."""
        return {**os.environ, "KCFG_GRAPHICS_POSITION": "custom", "KCFG_GRAPHICS_LEFT": str(self.at[0]),
                "KCFG_GRAPHICS_TOP": str(self.at[1])}


def demo_devices(hall: HallConfig, tickets_dir: Path) -> list[Device]:
    """A kiosk, the front desk and a specialist, and two displays: the hall's first of each kind.

    The front desk is the first counter whose first tier holds the first topic (general questions); the
    specialist is the first counter that does not serve that topic at all.
    """
    first_topic = next(iter(hall.topics))
    counters = list(hall.counters.values())
    front = next((c for c in counters if first_topic in c.tiers[0]), counters[0])
    specialist = next((c for c in counters if all(first_topic not in tier for tier in c.tiers)), counters[-1])
    kiosk_id = next(iter(hall.kiosks), "K1")
    devices = [Device("kiosk", kiosk_id, "432x768", (0, 30), ("--printer", f"preview://{tickets_dir}")),
               Device("counter", front.id, "736x460", (440, 30)),
               Device("counter", specialist.id, "736x460", (440, 530))]
    devices += [Device("display", display_id, "736x414", (1184, 30 + 500 * n))
                for n, display_id in enumerate(list(hall.displays)[:2])]
    return devices


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-12-07") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vuoro.cli import add_advertise_arguments

    parser.add_argument("--headless", action="store_true",
                        help="no windows: a scripted stream of visitors through a simulated morning, printed")
    parser.add_argument("--db", default="var/demo.sqlite", help="the demo's event log (default var/demo.sqlite)")
    parser.add_argument("--listen", default=None,
                        help="HOST:PORT for the embedded broker (default 127.0.0.1:1883, or a free port if taken)")
    parser.add_argument("--visitors", type=int, default=200, help="--headless: how many visitors (default 200)")
    parser.add_argument("--speed", type=_positive, default=240.0,
                        help="--headless: simulated seconds per real second (default 240: a morning in a minute)")
    parser.add_argument("--seed", type=int, default=1, help="--headless: the visitors' random seed")
    parser.add_argument("--date", type=_day, default=None, metavar="YYYY-MM-DD",
                        help="--headless: play the morning of this day, or of the next day the hall is open "
                        "(default: today)")
    parser.add_argument("--quiet", action="store_true", help="--headless: print the summary only")
    parser.add_argument("--keep-running", action="store_true",
                        help="--headless: after the morning, keep the hall server running (at the wall's speed) "
                        "until Ctrl-C, for the command line in a second terminal")
    add_advertise_arguments(parser)


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    from broker.embedded import EmbeddedBrokerError
    from broker.store import StoreError

    headless = args.headless or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless and not args.headless:
        tell("vuoro demo: no screen here (DISPLAY is not set): running the hall without windows (--headless)")
    try:
        if headless:
            from vuoro.demo_headless import run_headless

            return run_headless(args, hall)
        return run_windows(args, hall)
    except (EmbeddedBrokerError, StoreError, HallUnreachable) as exc:
        tell(f"vuoro demo: {exc}", err=True)
        return 1


def run_windows(args: argparse.Namespace, hall: HallConfig) -> int:
    tickets = Path("var/tickets")
    tickets.mkdir(parents=True, exist_ok=True)
    stop = stop_signals()
    with hall_server(args, hall, Path(args.db)) as (_, address):
        tell(f"vuoro demo: hall {hall.id} ({hall.name[hall.main_language]}) on broker {address.url}; "
             f"event log {args.db}; printed tickets in {tickets}/")
        children: list[tuple[Device, subprocess.Popen[bytes]]] = []
        logs = Path("var/logs")
        logs.mkdir(parents=True, exist_ok=True)
        for device in demo_devices(hall, tickets):
            out = open(logs / f"{device.app}-{device.id}.log", "wb")  # noqa: SIM115 (closed with the process)
            # Its own session: Ctrl-C in the terminal reaches the demo only, which stops the devices in order.
            proc = spawn(device.argv(Path(args.hall), address), stdout=out, stderr=subprocess.STDOUT,
                         cwd=os.getcwd(), env=device.env(), start_new_session=True)
            out.close()
            children.append((device, proc))
            tell(f"  {device.app} {device.id}: window up (log var/logs/{device.app}-{device.id}.log)")
        tell("vuoro demo: Ctrl-C stops everything")
        failed = _supervise(children, stop)
        _stop_children(children)
    tell("vuoro demo: stopped")
    return 1 if failed else 0


def _supervise(children: list[tuple[Device, subprocess.Popen[bytes]]], stop: threading.Event) -> bool:
    """Until Ctrl-C or every window is closed; a device that crashes is reported (True), the rest run on."""
    failed = False
    reported: set[int] = set()
    while not stop.wait(0.5):
        alive = 0
        for device, proc in children:
            code = proc.poll()
            if code is None:
                alive += 1
            elif proc.pid not in reported:
                reported.add(proc.pid)
                if code != 0:
                    failed = True
                    tell(f"vuoro demo: {device.app} {device.id} stopped with exit code {code}; see "
                         f"var/logs/{device.app}-{device.id}.log", err=True)
        if alive == 0:
            break
    return failed


def _stop_children(children: list[tuple[Device, subprocess.Popen[bytes]]]) -> None:
    for _, proc in children:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for _, proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
