"""`vuoro display`: run a hall display full screen, or write a snapshot of its board and exit.

Kept out of vuoro/cli.py so that `vuoro server` never imports Kivy, and so that Kivy is configured
(window size, full screen, the sleeping event loop) before anything imports it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from ui.kivy_env import EXIT_NO_SERVER, SNAPSHOT_SETTLE_S, SNAPSHOT_SYNC_S


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The display's own options (the common --hall, --broker... are added by vuoro/cli.py)."""
    parser.add_argument("--id", help="which display of the hall config this is (default: the first one)")
    parser.add_argument("--windowed", action="store_true", help="a window instead of full screen (development)")
    parser.add_argument("--size", default="1920x1080", help="window size WxH with --windowed or --snapshot")
    parser.add_argument("--snapshot", metavar="PATH", help="write a PNG of the board once synced, and exit")
    parser.add_argument("--lang", help="show the static texts in this language only (default: the hall's in turn)")
    parser.add_argument("--mute", action="store_true", help="no chime or spoken calls, whatever the hall config says")
    parser.add_argument("--sound-dir", metavar="DIR", help="keep each generated announcement (WAV) in DIR")


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    display_id = args.id or next(iter(hall.displays))
    if display_id not in hall.displays:
        print(f"vuoro display: {display_id!r} is not a display of hall {hall.id!r} "
              f"(known: {', '.join(hall.displays)})", file=sys.stderr)
        return 2
    if args.lang is not None and args.lang not in hall.languages:
        print(f"vuoro display: --lang {args.lang!r} is not one of the hall's languages "
              f"({', '.join(hall.languages)})", file=sys.stderr)
        return 2
    snapshot = args.snapshot is not None
    from display.window import configure
    from ui.kivy_env import headless

    configure(windowed=args.windowed or snapshot, size=args.size, headless=snapshot and headless())
    from display.app import DisplayApp, KivyPlayer
    from display.controller import DisplayController

    controller = DisplayController(hall, address, display_id, player=None if snapshot else KivyPlayer(),
                                   announce=False if (args.mute or snapshot) else None,
                                   sound_dir=Path(args.sound_dir) if args.sound_dir else None,
                                   fixed_lang=args.lang, mqtt_version=args.mqtt_version)
    app = DisplayApp(controller)
    result: dict[str, Any] = {"code": 0}
    if snapshot:
        _schedule_snapshot(app, Path(args.snapshot), result)
    app.run()
    return int(result["code"])


def describe(board: Any) -> str:
    """One line for the terminal and the tests: what the board shows."""
    if board is None:
        return "nothing drawn"
    if board.hero is None:
        return f"{board.mode} board, no call at a counter"
    hero = board.hero
    others = ", ".join(f"{c.number}→{c.counter} {c.direction}" for c in board.current)
    return (f"{board.mode} board, {hero.number} → counter {hero.counter} ({hero.direction})"
            + (f"; also {others}" if others else ""))


def _schedule_snapshot(app: Any, path: Path, result: dict[str, Any]) -> None:
    """Wait (woken by each message, no polling) until the board synced from retained state, then save it."""
    from kivy.clock import Clock

    started = time.monotonic()
    state: dict[str, Any] = {"saving": False, "deadline": None}

    def check(*_: Any) -> None:
        if state["saving"]:
            return
        left = SNAPSHOT_SYNC_S - (time.monotonic() - started)
        if not app.controller.synced and left > 0:
            if state["deadline"] is None:  # Kivy counts a timeout from its last frame: check again then
                state["deadline"] = Clock.schedule_once(recheck, left)
            return
        state["saving"] = True
        if not app.controller.synced:
            result["code"] = EXIT_NO_SERVER
            print(f"vuoro display: no hall server within {SNAPSHOT_SYNC_S:g} s; the snapshot shows the "
                  "starting board", file=sys.stderr)
        Clock.schedule_once(save, SNAPSHOT_SETTLE_S)  # the rest of the retained state, and the layout

    def recheck(*_: Any) -> None:
        state["deadline"] = None
        check()

    def save(*_: Any) -> None:
        app.update()
        written = app.snapshot(path)
        print(f"vuoro display: {describe(app.drawn)}; written to {written}")
        app.stop()

    app.after_update = check
