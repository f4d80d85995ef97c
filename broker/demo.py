"""`vuoro demo`: the whole demo hall from one command: the hall server, a kiosk, two counters, two displays.

The server runs in this process (on the embedded broker unless --broker names one); each device is its own
`vuoro kiosk|counter|display` process with its own window, exactly as a hall runs them, so the demo shows
the real apps and not a mock-up. Ctrl-C (or SIGTERM) stops the devices first, then the server, then the
broker, and waits for each: nothing is left running and the event log is closed cleanly.

On a machine without a screen, or with --headless, the same hall runs without windows and a scripted
stream of visitors and staff goes through a simulated morning (broker/demo_headless.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import HallConfig
from .mqtt import BrokerAddress

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
        return [sys.executable, "-m", "broker.cli", self.app, "--hall", str(hall), "--broker", broker.url,
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--headless", action="store_true",
                        help="no windows: a scripted stream of visitors through a simulated morning, printed")
    parser.add_argument("--db", default="var/demo.sqlite", help="the demo's event log (default var/demo.sqlite)")
    parser.add_argument("--listen", default=None,
                        help="HOST:PORT for the embedded broker (default 127.0.0.1:1883, or a free port if taken)")
    parser.add_argument("--visitors", type=int, default=200, help="--headless: how many visitors (default 200)")
    parser.add_argument("--speed", type=float, default=240.0,
                        help="--headless: simulated seconds per real second (default 240: a morning in a minute)")
    parser.add_argument("--seed", type=int, default=1, help="--headless: the visitors' random seed")
    parser.add_argument("--quiet", action="store_true", help="--headless: print the summary only")


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    from .embedded import EmbeddedBrokerError
    from .store import StoreError

    headless = args.headless or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless and not args.headless:
        print("vuoro demo: no screen here (DISPLAY is not set): running the hall without windows (--headless)")
    try:
        if headless:
            from .demo_headless import run_headless

            return run_headless(args, hall)
        return run_windows(args, hall)
    except (EmbeddedBrokerError, StoreError) as exc:
        print(f"vuoro demo: {exc}", file=sys.stderr)
        return 1


@contextmanager
def hall_server(hall: HallConfig, db: Path, broker_url: str | None, listen: str | None, *,
                clock: Any = None) -> Iterator[tuple[Any, BrokerAddress]]:
    """The hall server (and, without a broker URL, the embedded broker) for as long as the block runs."""
    from .cli import listen_address
    from .embedded import EmbeddedBroker, start_embedded
    from .service import HallService

    embedded: EmbeddedBroker | None = None
    if broker_url:
        address = BrokerAddress.parse(broker_url)
    else:  # as `vuoro server` does: 127.0.0.1:1883, or a free port if taken, unless --listen says where
        host, port, explicit = listen_address(listen)
        embedded = start_embedded(host, port, any_free_port=not explicit)
        address = embedded.address
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        service = HallService(hall, db, address, always_open=True, clock=clock)
        try:
            if not service.start(timeout=15):
                raise RuntimeError(f"the hall server could not reach the broker at {address.url}")
            yield service, address
        finally:
            service.stop()
    finally:
        if embedded is not None:
            embedded.stop()


def _stop_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_windows(args: argparse.Namespace, hall: HallConfig) -> int:
    tickets = Path("var/tickets")
    tickets.mkdir(parents=True, exist_ok=True)
    stop = _stop_signals()
    with hall_server(hall, Path(args.db), args.broker, args.listen) as (_, address):
        print(f"vuoro demo: hall {hall.id} ({hall.name[hall.main_language]}) on broker {address.url}; "
              f"event log {args.db}; printed tickets in {tickets}/", flush=True)
        children: list[tuple[Device, subprocess.Popen[bytes]]] = []
        logs = Path("var/logs")
        logs.mkdir(parents=True, exist_ok=True)
        for device in demo_devices(hall, tickets):
            out = open(logs / f"{device.app}-{device.id}.log", "wb")  # noqa: SIM115 (closed with the process)
            proc = subprocess.Popen(device.argv(Path(args.hall), address), stdout=out, stderr=subprocess.STDOUT,
                                    cwd=os.getcwd(), env=device.env(), start_new_session=True)
            out.close()
            children.append((device, proc))
            print(f"  {device.app} {device.id}: window up (log var/logs/{device.app}-{device.id}.log)", flush=True)
        print("vuoro demo: Ctrl-C stops everything", flush=True)
        failed = _supervise(children, stop)
        _stop_children(children)
    print("vuoro demo: stopped", flush=True)
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
                    print(f"vuoro demo: {device.app} {device.id} stopped with exit code {code}; see "
                          f"var/logs/{device.app}-{device.id}.log", file=sys.stderr, flush=True)
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
