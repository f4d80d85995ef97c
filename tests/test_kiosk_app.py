"""The real Kivy kiosk window (SDL offscreen, Mesa) against a running hall server: touches to tickets, screenshots.

The window runs in a child process (this file run as a script) so that Kivy's global window and
environment never leak into other test modules. The child starts its own fake ESC/POS printer (to
run out of paper on cue), touches the buttons through Kivy's input path (UnitTestTouch), saves a
screenshot of each screen into the pictures folder (docs/screenshots/kiosk/ when bin/screenshots runs
this), and reports the ticket numbers it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WINDOW = "540x960"
SCRIPT_S = 120.0  # the child's whole script: only bounds a failing run (a slow machine is not wrong)
CHILD_S = 2 * SCRIPT_S  # the child process, Kivy's start and the script


def test_three_touches_per_language_draw_the_servers_tickets_and_every_screen_is_captured(
        make_service: Callable, amqtt_broker: Any, hall: Any, tmp_path: Path, pictures: Callable[[str], Path]) -> None:
    service = make_service(amqtt_broker)
    shots = pictures("kiosk")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIVY_HOME": str(tmp_path / "kivy")}
    run = subprocess.run([sys.executable, __file__, amqtt_broker.address.url, str(shots)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=CHILD_S)
    kivy_log = "".join(path.read_text(errors="replace") for path in sorted((tmp_path / "kivy").glob("logs/*.txt")))
    assert run.returncode == 0, f"{run.stderr[-4000:]}\n--- Kivy log\n{kivy_log[-3000:]}"
    report = json.loads(run.stdout.strip().splitlines()[-1])
    tickets = service.engine.state.tickets
    shown = report["tickets"]
    assert [lang for lang, _ in shown] == [*hall.languages, "sv"]  # one per language, then the paper-out one
    for lang, number in shown:
        assert number in tickets and tickets[number].lang == lang  # the server's number, in the visitor's language
    assert report["touches"][:3] == ["lang:sv", "topic:general", "done"]
    for name in report["shots"]:
        path = shots / f"{name}.png"
        assert path.stat().st_size < 400_000, f"{path} is too large for the docs"
    expected = {"start", "start-accessible", "topic-accessible", "paper_out-sv", "closed-sv", "out_of_service",
                *(f"topic-{x}" for x in hall.languages), *(f"ticket-{x}" for x in hall.languages)}
    assert expected <= set(report["shots"])


# ---------------------------------------------------------------- the child process: a real window


def _drive(broker_url: str, out: Path) -> int:  # pragma: no cover - runs in the child
    from ui.kivy_env import configure_kivy

    configure_kivy(windowed=True, size=WINDOW, headless=True)
    from kivy.tests.common import UnitTestTouch

    from broker.config import DEMO_HALL, load_hall
    from broker.mqtt import BrokerAddress
    from kiosk.app import KioskApp
    from kiosk.controller import KioskController
    from kiosk.fake_printer import FakeEscposPrinter
    from kiosk.model_types import HallState, ServerStatus
    from tests.support.kivy_script import drive

    hall = load_hall(DEMO_HALL)
    fake = FakeEscposPrinter(serial=False, tcp=True).start()
    controller = KioskController(hall, BrokerAddress.parse(broker_url), "K1", fake.tcp_uri, status_interval=0.3)
    app = KioskApp(controller)
    report: dict[str, Any] = {"tickets": [], "shots": [], "touches": []}
    out.mkdir(parents=True, exist_ok=True)

    def screen_is(name: str, extra: Callable[[], bool] = lambda: True) -> Callable[[], bool]:
        return lambda: app.drawn is not None and app.drawn.name == name and extra()

    def printed() -> bool:
        return app.drawn is not None and any(getattr(line, "id", "") == "ticket.take" for line in app.drawn.body)

    def touch(button_id: str) -> None:
        widget = app.find_button(button_id)
        assert widget is not None, f"no {button_id} button on {app.drawn}"
        report["touches"].append(button_id)
        pointer = UnitTestTouch(*widget.to_window(*widget.center))
        pointer.touch_down()
        pointer.touch_up()

    def shot(name: str) -> None:
        app.snapshot(out / f"{name}.png")
        report["shots"].append(name)

    def inject(event: Any) -> None:
        """Screens that need the world to change (night, the server gone): told to the model directly."""
        controller.model.feed(event, controller.clock())
        app.refresh(controller.screen())

    def script() -> Iterator[Callable[[], bool] | float]:
        yield screen_is("start", lambda: controller.synced)
        yield 0.2
        shot("start")
        for lang in hall.languages:
            touch(f"lang:{lang}")
            yield screen_is("topic")
            shot(f"topic-{lang}")
            touch("topic:general")
            yield screen_is("ticket", printed)
            report["tickets"].append([lang, app.drawn.ticket.number])
            shot(f"ticket-{lang}")
            touch("done")
            yield screen_is("start")
        touch("accessibility")
        yield lambda: app.drawn is not None and app.drawn.flags.high_contrast
        shot("start-accessible")
        touch("lang:sv")
        yield screen_is("topic")
        shot("topic-accessible")
        touch("back")
        yield screen_is("start")
        touch("accessibility")
        fake.set_paper("out")
        yield lambda: controller.model.printer == "out"
        yield 0.1
        shot("start-printer-out")
        touch("lang:sv")
        yield screen_is("topic")
        touch("topic:permits")
        yield screen_is("paper_out")
        report["tickets"].append(["sv", app.drawn.ticket.number])
        shot("paper_out-sv")
        touch("done")
        yield screen_is("start")
        tomorrow = (controller.clock() + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
        inject(HallState(False, tomorrow))
        yield 0.1
        shot("closed-sv")
        inject(HallState(True, None))
        inject(ServerStatus(False))
        yield 0.1
        shot("out_of_service")

    drive(app, script(), SCRIPT_S, report)
    try:
        app.run()
    finally:
        fake.stop()
    print(json.dumps(report))
    return 0 if "error" not in report else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_drive(sys.argv[1], Path(sys.argv[2])))
