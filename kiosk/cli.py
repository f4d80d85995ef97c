"""`vuoro kiosk`: run the kiosk window, write a snapshot of it, or test-print on a printer.

Kept out of vuoro/cli.py so that `vuoro server` never imports Kivy, and so that Kivy is configured
(window size, full screen, no argument parsing of its own) before anything imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from ui.kivy_env import configure_kivy, headless, snapshot_when_synced

DEFAULT_PRINTER = "preview://var/tickets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The kiosk's own options (the common --hall, --broker... are added by vuoro/cli.py)."""
    parser.add_argument("--id", default="K1", help="this kiosk's device id (default K1)")
    parser.add_argument("--printer", default=os.environ.get("VUORO_PRINTER"),
                        help="usb://, serial://, tcp://, file:// or preview://DIR (default: this kiosk's printer "
                        f"in the hall config, else {DEFAULT_PRINTER})")
    parser.add_argument("--windowed", action="store_true", help="a window instead of full screen (development)")
    parser.add_argument("--size", default="540x960", help="window size WxH with --windowed or --snapshot")
    parser.add_argument("--snapshot", metavar="PATH", help="write a PNG of the screen once synced, exit")
    parser.add_argument("--lang", help="with --snapshot: choose this language first (shows the topic screen)")
    parser.add_argument("--test-print", action="store_true", help="print a test ticket and report the printer status")


def offline(args: argparse.Namespace) -> bool:
    """A test print needs the printer, not the hall server: no looking for it on the network."""
    return bool(args.test_print)


def printer_uri(args: argparse.Namespace, hall: HallConfig) -> str:
    """--printer, else the kiosk's printer in the hall config, else PNG previews."""
    if args.printer:
        return str(args.printer)
    kiosk = hall.kiosks.get(args.id)
    return kiosk.printer if kiosk is not None else DEFAULT_PRINTER


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    args.printer = printer_uri(args, hall)
    from kiosk.png_render import ShapingMissing, check_shaping
    from ui.text_shaping import is_rtl_language

    try:  # a hall that speaks Arabic must not print it as loose letters: say so and do not start
        check_shaping(any(is_rtl_language(lang) for lang in hall.languages))
    except ShapingMissing as exc:
        print(f"vuoro kiosk: {exc}", file=sys.stderr)
        return 2
    if args.test_print:
        return test_print(hall, args.printer, args.lang)
    snapshot = args.snapshot is not None
    configure_kivy(windowed=args.windowed or snapshot, size=args.size,
                   headless=snapshot and headless())
    from kiosk.controller import KioskController

    try:
        controller = KioskController(hall, address, args.id, args.printer, mqtt_version=args.mqtt_version)
    except ValueError as exc:
        print(f"vuoro kiosk: {exc}", file=sys.stderr)
        return 2
    from kiosk.app import KioskApp

    app = KioskApp(controller)
    result: dict[str, Any] = {"code": 0}
    if snapshot:
        _schedule_snapshot(app, Path(args.snapshot), args.lang, result)
    app.run()
    return int(result["code"])


def _schedule_snapshot(app: Any, path: Path, lang: str | None, result: dict[str, Any]) -> None:
    from kiosk.model_types import ChooseLanguage

    def step() -> bool:
        app.controller.pump()
        app.refresh(app.controller.screen())
        return bool(app.controller.synced)

    def save() -> None:
        app.refresh(app.controller.screen())
        written = app.snapshot(path)
        print(f"vuoro kiosk: {app.drawn.name if app.drawn else '?'} screen written to {written}")

    snapshot_when_synced(app, result, program="vuoro kiosk", step=step, save=save, offline="the out-of-service screen",
                         synced_first=(lambda: app.press(ChooseLanguage(lang))) if lang else None)


def test_print(hall: HallConfig, printer_uri: str, lang: str | None) -> int:
    """Print a sample ticket through the real layout and say what the printer reports (0 printed, 1 not)."""
    from datetime import datetime

    from kiosk.printer import Printer, PrinterError
    from kiosk.ticket import build_ticket
    from ui import i18n

    lang = hall.language(lang)
    topic = next(iter(hall.topics.values()))
    try:
        printer = Printer(printer_uri)
    except ValueError as exc:
        print(f"vuoro kiosk: {exc}", file=sys.stderr)
        return 2
    try:
        before = printer.status()
        print(f"printer {printer_uri}: {before.state.value} ({before.message})")
        ticket = {"number": f"{topic.letter}000", "topic": topic.id, "lang": lang, "priority": False,
                  "issued_at": datetime.now(hall.tz).isoformat(), "ahead": 0, "expected_wait_s": 0}
        layout = build_ticket(hall, ticket, lang, i18n.ticket_labels(lang), paper=printer.paper)
        after = printer.print_ticket(layout)
    except PrinterError as exc:
        print(f"test ticket NOT printed: {exc.status.state.value} ({exc.status.message})", file=sys.stderr)
        return 1
    finally:
        printer.close()
    print(f"test ticket printed ({layout.paper.mm} mm, {lang}); printer now {after.state.value} ({after.message})")
    return 0
