"""`vuoro counter`: run a counter panel window, or write a snapshot of it.

Kept out of vuoro/cli.py so that `vuoro server` never imports Kivy, and so that Kivy is configured
(window size, full screen, no argument parsing of its own) before anything imports it. The same actions
from a terminal are `vuoro call COUNTER ACTION` (vuoro/cli_actions.py); both send them with
HallClient.request.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from ui.kivy_env import configure_kivy, headless, snapshot_when_synced


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The panel's own options (the common --hall, --broker... are added by vuoro/cli.py)."""
    parser.add_argument("--id", default="1", help="the counter's id in the hall config (default 1)")
    parser.add_argument("--lang", help="the staff's language (default: the hall's main language)")
    parser.add_argument("--windowed", action="store_true", help="a window instead of full screen (development)")
    parser.add_argument("--size", default="1280x800", help="window size WxH with --windowed or --snapshot")
    parser.add_argument("--snapshot", metavar="PATH", help="write a PNG of the panel once synced, exit")


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    if args.id not in hall.counters:
        print(f"vuoro counter: counter {args.id!r} is not in hall {hall.id!r} (known: {', '.join(hall.counters)})",
              file=sys.stderr)
        return 2
    if args.lang is not None and args.lang not in hall.languages:
        print(f"vuoro counter: language {args.lang!r} is not one of this hall's ({', '.join(hall.languages)})",
              file=sys.stderr)
        return 2
    snapshot = args.snapshot is not None
    try:
        configure_kivy(windowed=args.windowed or snapshot, size=args.size, headless=snapshot and headless())
    except ValueError:
        print(f"vuoro counter: --size {args.size!r} must look like 1280x800", file=sys.stderr)
        return 2
    from counter.controller import CounterController

    controller = CounterController(hall, address, args.id, lang=args.lang, mqtt_version=args.mqtt_version)
    from counter.app import CounterApp

    app = CounterApp(controller)
    app.title = f"Vuoro · {hall.counters[args.id].name.get(controller.model.lang, args.id)}"
    result: dict[str, Any] = {"code": 0}
    if snapshot:
        _schedule_snapshot(app, Path(args.snapshot), result)
    app.run()
    return int(result["code"])


def _schedule_snapshot(app: Any, path: Path, result: dict[str, Any]) -> None:
    def step() -> bool:
        app.controller.pump()
        app.refresh(app.controller.panel())
        return bool(app.controller.synced)

    def save() -> None:
        app.refresh(app.controller.tick())
        written = app.snapshot(path)
        print(f"vuoro counter: panel of counter {app.controller.model.counter_id} written to {written}")

    snapshot_when_synced(app, result, program="vuoro counter", step=step, save=save, offline="the panel offline")
