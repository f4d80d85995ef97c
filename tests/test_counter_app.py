"""Two real counter panel windows (SDL offscreen, Mesa) and a kiosk against a running hall server.

The front desk (counter 1) and the specialist (counter 4) each run in a child process (this file run
as a script), so that Kivy's one global window per process is no problem and nothing leaks into other
test modules. Each child drives its window through Kivy's own input paths: touches (UnitTestTouch) on
the buttons, key presses through the window's keyboard event (as a USB number pad sends them), text
typed into the note field. The parent runs the rest of the hall for real: Mosquitto, `vuoro server` as a
process, and a kiosk (its controller, printing on a fake ESC/POS printer) where the visitors draw their
tickets; it restarts the broker while the specialist is serving, and runs the kiosk out of paper.

The children save a screenshot of each moment into the pictures folder (docs/screenshots/counter/ when
bin/screenshots runs this for the README), and report what they saw as JSON lines: `{"step": ...}` as they
go, the whole report at the end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import protocol as p
from tests.support.brokers import ROOT, MosquittoBroker, ServerProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow
WINDOW = "1280x800"


STEP_S = 60.0  # a window process reaching its next step: only bounds a failing run (a slow machine is not wrong)
SCRIPT_S = 240.0  # a child's whole script, longer than all the steps the parent waits for: the parent fails first


class Child:
    """A panel process; its stdout lines are collected by a thread, its steps waited for by the parent.

    Each child has its own KIVY_HOME: two Kivy processes starting at once in one fresh home race to create it
    (`import kivy` makes its folders with exists-then-mkdir, and writes config.ini while the other reads it).
    Kivy sends stray stderr (an uncaught exception included) to its own log file there, so a failure message
    carries that file's end as well as the child's stderr.
    """

    def __init__(self, role: str, broker_url: str, shots: Path, flags: Path, env: dict[str, str]) -> None:
        self.role = role
        self.log = flags / f"{role}.log"
        self.kivy_home = flags / f"kivy-{role}"
        self.kivy_home.mkdir()
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([sys.executable, __file__, role, broker_url, str(shots), str(flags)],
                                         env={**env, "KIVY_HOME": str(self.kivy_home)}, cwd=ROOT,
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, name=f"{role}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for text in self.proc.stdout or []:
            if text.startswith("{"):
                self.lines.append(json.loads(text))

    def _seen(self, name: str) -> dict[str, Any] | None:
        found = next((line for line in self.lines if line.get("step") == name), None)
        if found is None and self.proc.poll() is not None:
            self._reader.join(STEP_S)  # the reader ends at the pipe's end: every line the child wrote is in
            found = next((line for line in self.lines if line.get("step") == name), None)
            if found is None:
                raise AssertionError(f"{self.role} exited ({self.proc.returncode}) before {name}:\n{self.tail()}")
        return found

    def step(self, name: str, timeout: float = STEP_S) -> dict[str, Any]:
        return wait_until(lambda: self._seen(name), timeout, lambda: f"{self.role} to reach {name}:\n{self.tail()}")

    def report(self, timeout: float = STEP_S) -> dict[str, Any]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.role} did not finish in {timeout} s:\n{self.tail()}") from None
        self._reader.join(STEP_S)
        final = [line for line in self.lines if "shots" in line]
        assert self.proc.returncode == 0 and final, f"{self.role} failed ({self.proc.returncode}):\n{self.tail()}"
        return final[-1]

    def tail(self) -> str:
        """What the child left: its stderr, the end of its Kivy log, its last lines of output."""
        kivy_logs = sorted((self.kivy_home / "logs").glob("*.txt"))
        kivy = "".join(path.read_text(errors="replace") for path in kivy_logs)
        return (f"--- stderr\n{self.log.read_text(errors='replace')[-3000:]}\n--- Kivy log\n{kivy[-4000:]}\n"
                f"--- last lines\n{json.dumps(self.lines[-3:])}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(STEP_S)


@pytest.fixture
def hall_running(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, ServerProcess]]:
    broker = MosquittoBroker().start()
    server = ServerProcess(tmp_path / "hall.sqlite", broker.address).start()
    yield broker, server
    server.stop()
    broker.close()


def test_front_desk_forwards_to_the_specialist_through_a_broker_restart(
        hall_running: tuple[MosquittoBroker, ServerProcess], hall: Any, tmp_path: Path,
        pictures: Callable[[str], Path]) -> None:
    from kiosk.controller import KioskController
    from kiosk.fake_printer import FakeEscposPrinter
    from kiosk.model_types import ChooseLanguage, ChooseTopic

    broker, _server = hall_running
    flags = tmp_path / "flags"
    flags.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(ROOT), SDL_VIDEODRIVER="offscreen", SDL_AUDIODRIVER="dummy", KIVY_NO_ARGS="1",
               XDG_RUNTIME_DIR=str(tmp_path))
    printer = FakeEscposPrinter(serial=False, tcp=True).start()
    kiosk = KioskController(hall, broker.address, "K1", printer.tcp_uri, status_interval=0.3).start(timeout=5)
    shots = pictures("counter")
    children = [Child(role, broker.address.url, shots, flags, env) for role in ("front", "specialist")]
    front, specialist = children

    def draw(lang: str, topic: str) -> str:
        """A visitor at the kiosk: language, topic, ticket (the kiosk's model, its controller, a real printer)."""
        from kiosk.model_types import Done as KioskDone

        def synced() -> bool:
            kiosk.tick()
            return kiosk.synced

        def issued() -> Any:
            kiosk.pump()
            return kiosk.tick().ticket

        wait_until(synced, STEP_S, lambda: f"the kiosk to sync: {kiosk.screen()}")
        kiosk.press(ChooseLanguage(lang))
        kiosk.press(ChooseTopic(topic))
        ticket = wait_until(issued, STEP_S, lambda: f"the kiosk to issue a ticket: {kiosk.screen()}")
        kiosk.press(KioskDone())
        return str(ticket.number)

    try:
        front.step("open")
        specialist.step("open")
        tickets = [draw("fi", "general"), draw("en", "general"), draw("sv", "permits")]
        forwarded = front.step("forwarded")
        assert forwarded["number"] == tickets[0]
        alerted = specialist.step("alert")
        assert alerted["number"] == tickets[0]
        print(f"forward touch -> specialist's alert drawn: {(alerted['t'] - forwarded['t']) * 1000:.0f} ms")
        specialist.step("serving")
        broker.stop()
        specialist.step("offline")
        broker.start()
        specialist.step("done")
        printer.set_paper("out")  # the kiosk says so in its retained status; the panels show it
        (flags / "paper_out").touch()
        reports = {child.role: child.report() for child in children}
    finally:
        for child in children:
            child.kill()
        kiosk.stop()
        printer.stop()

    front_report, specialist_report = reports["front"], reports["specialist"]
    assert front_report["served"] == [tickets[0], tickets[1]]
    assert specialist_report["served"] == [tickets[0]]
    assert specialist_report["offline_refused"] == "counter.refused.offline"
    assert specialist_report["sent"] == ["open", "next", "recall", "done"]  # nothing went out while offline
    assert front_report["sent"] == ["open", "next", "forward", "next"]
    assert front_report["paper_alert"] and specialist_report["paper_alert"]
    # idle: only the serving timer's label was redrawn, about once a second (and the alerts row once, if the
    # notice of the last action ran out meanwhile): nothing else is drawn while nothing changes
    idle, stretch = specialist_report["idle_redraws"], specialist_report["idle"]
    expected = {"timer": 1} | ({"alerts": 1} if stretch["notice_changed"] else {})
    assert set(idle) == set(expected) and idle.get("alerts", 1) == 1, (idle, stretch)
    assert 1 <= idle["timer"] <= stretch["seconds"] + 1, (idle, stretch)
    with sqlite3.connect(tmp_path / "hall.sqlite") as db:
        events = [json.loads(body) for (body,) in db.execute("SELECT body FROM events ORDER BY seq")]
    first = [e for e in events if e.get("ticket", {}).get("number") == tickets[0]]
    assert [(e["type"], e.get("counter"), e.get("recall")) for e in first] == [
        (p.TICKET_ISSUED, None, None), (p.TICKET_CALLED, "1", 0), (p.TICKET_FORWARDED, "1", None),
        (p.TICKET_CALLED, "4", 0), (p.TICKET_CALLED, "4", 1), (p.TICKET_DONE, "4", None)]
    assert first[2]["to_counter"] == "4" and first[2]["note"] == "extension permit"
    assert first[-1]["outcome"] == "resolved" and first[-1]["ticket"]["forwards"] == 1
    try:  # the hall server's statistics (issue 7) read the same log: they count the visit as forwarded
        from broker.stats import collect, total
    except ImportError:  # pragma: no cover - the statistics are not in this tree yet
        return
    tally = total(collect([p.Event.from_payload(e) for e in events], hall).values())
    assert tally.forwarded == 1
    expected = {"front-serving", "front-forward", "front-hall-alert", "specialist-alert", "specialist-serving",
                "specialist-offline", "specialist-pause"}
    taken = set(front_report["shots"]) | set(specialist_report["shots"])
    assert expected <= taken
    for name in taken:
        assert (shots / f"{name}.png").stat().st_size < 400_000, name


# ---------------------------------------------------------------- the children: real windows


def _panel_process(role: str, broker_url: str, out: Path, flags: Path) -> int:  # pragma: no cover - a child
    from ui.kivy_env import configure_kivy

    configure_kivy(windowed=True, size=WINDOW, headless=True)
    from kivy.core.window import Window
    from kivy.tests.common import UnitTestTouch

    from broker.config import DEMO_HALL, load_hall
    from broker.mqtt import BrokerAddress
    from counter.app import CounterApp
    from counter.controller import CounterController
    from tests.support.kivy_script import drive

    hall = load_hall(DEMO_HALL)
    counter_id = "1" if role == "front" else "4"
    controller = CounterController(hall, BrokerAddress.parse(broker_url), counter_id, lang="en")
    app = CounterApp(controller)
    report: dict[str, Any] = {"shots": [], "served": [], "touches": [], "keys": []}
    out.mkdir(parents=True, exist_ok=True)

    def say(step: str, **data: Any) -> None:
        print(json.dumps({"step": step, "t": time.monotonic(), **data}), flush=True)

    def panel() -> Any:
        return app.drawn

    def current() -> str | None:
        drawn = panel()
        return drawn.current.number if drawn is not None and drawn.current is not None else None

    def touch(button_id: str) -> None:
        widget = app.find_button(button_id)
        assert widget is not None, f"no {button_id} button on the panel"
        report["touches"].append(button_id)
        pointer = UnitTestTouch(*widget.to_window(*widget.center))
        pointer.touch_down()
        pointer.touch_up()

    def key(keycode: int, text: str = "") -> None:
        """A key as Kivy's SDL window delivers it: key down (its codepoint is chr(keycode), as Kivy makes it),
        the text it types when it types any (a separate SDL event), key up."""
        report["keys"].append(keycode)
        if not Window.dispatch("on_key_down", keycode, 0, chr(keycode), []):
            Window.dispatch("on_keyboard", keycode, 0, chr(keycode), [])
        if text:
            Window.dispatch("on_textinput", text)
        Window.dispatch("on_key_up", keycode, 0)

    def shot(name: str) -> None:
        app.snapshot(out / f"{name}.png")
        report["shots"].append(name)

    def notice() -> str | None:
        drawn = panel()
        return drawn.notice.text.id if drawn is not None and drawn.notice is not None else None

    def enabled(action: str) -> bool:
        drawn = panel()
        return drawn is not None and any(a.id == action and a.enabled for a in drawn.actions)

    def has_alert(prefix: str) -> bool:
        drawn = panel()
        return drawn is not None and any(a.id.startswith(prefix) for a in drawn.alerts)

    ENTER, PLUS, NUM_1, NUM_8 = 271, 270, 257, 264  # the number pad's own key codes (Kivy's numpad keys)

    def front() -> Iterator[Callable[[], bool] | float]:
        yield lambda: controller.synced
        key(NUM_8)  # open the counter from the number pad
        yield lambda: panel() is not None and panel().header.status == "open"
        say("open")
        yield lambda: panel().queues[0].waiting >= 2 and enabled("next")
        key(ENTER)
        yield lambda: current() is not None
        report["served"].append(current())
        yield lambda: enabled("forward")
        yield 0.3
        shot("front-serving")
        touch("forward")  # the forward dialog by touch
        yield lambda: panel().dialog is not None and any(i.id == "4" and i.enabled for i in panel().dialog.items)
        yield 0.2
        note = app.root_widget.dialog.note
        touch_note = UnitTestTouch(*note.to_window(*note.center))
        touch_note.touch_down()
        touch_note.touch_up()
        yield lambda: note.focus
        note.insert_text("extension permit")  # what the window's text input event does with typed text
        yield lambda: panel().dialog.note == "extension permit"
        key(NUM_1, "1")  # typed into the note while it has focus: it is text, not a choice
        yield lambda: panel().dialog.note == "extension permit1"
        assert not any(item.selected for item in panel().dialog.items)
        note.do_backspace()
        yield lambda: panel().dialog.note == "extension permit"
        touch("item:counter:4")  # the dialog is redrawn with the choice; the same field, with its text, moves in
        yield lambda: panel().dialog.items[2].selected
        assert app.root_widget.dialog.note is note and note.text == "extension permit"
        yield 0.2
        shot("front-forward")
        forwarded = current()
        say("forwarded", number=forwarded)
        touch("confirm")
        # the counter's retained state may show it free before the reply to `forward` is in; until that reply
        # the panel refuses another action as busy, so wait for `next` to be offered, as staff would see it
        yield lambda: current() is None and panel().dialog is None and enabled("next")
        key(13)  # Enter on the main keyboard: the next visitor
        yield lambda: current() is not None
        report["served"].append(current())
        yield lambda: (flags / "paper_out").exists()
        yield lambda: has_alert("kiosk:K1")
        report["paper_alert"] = True
        yield 0.3
        shot("front-hall-alert")

    def specialist() -> Iterator[Callable[[], bool] | float]:
        yield lambda: controller.synced
        touch("open")
        yield lambda: panel() is not None and panel().header.status == "open"
        say("open")
        yield lambda: has_alert("forward:")
        number = next(a.id for a in panel().alerts if a.id.startswith("forward:")).partition(":")[2]
        say("alert", number=number)
        yield 0.3
        shot("specialist-alert")
        yield lambda: enabled("next")
        key(ENTER)
        yield lambda: current() == number
        report["served"].append(number)
        yield 0.3
        shot("specialist-serving")
        before, notice_before, started = dict(app.redraws), panel().notice, time.monotonic()
        yield 2.5  # serving, nothing else happening: only the timer's label changes, once a second
        report["idle_redraws"] = {k: v - before.get(k, 0) for k, v in app.redraws.items() if v != before.get(k, 0)}
        # the outcome of `next` (a notice, notice_s long) may run out in this stretch on a slow machine: one
        # redraw of the alerts row then, and the stretch itself may last longer than asked
        report["idle"] = {"seconds": time.monotonic() - started, "notice_changed": panel().notice != notice_before}
        say("serving")
        yield lambda: panel().header.link == "offline"
        yield 0.2
        sent_before = len(controller.sent)
        key(NUM_1, "1")  # done, while the broker is away: refused, and nothing queued
        yield lambda: notice() is not None
        report["offline_refused"] = notice()
        assert len(controller.sent) == sent_before and current() == number
        shot("specialist-offline")
        say("offline")
        yield lambda: panel().header.link == "online" and panel().current is not None and not panel().current.stale
        key(PLUS)  # recall
        yield lambda: panel().current is not None and panel().current.recalls == 1 and enabled("done")
        touch("done")
        yield lambda: current() is None and notice() == "counter.ok.done"
        say("done")
        touch("pause")
        yield lambda: panel().dialog is not None and panel().dialog.name == "pause"
        yield 0.2
        shot("specialist-pause")
        key(27)  # Esc
        yield lambda: panel().dialog is None
        yield lambda: (flags / "paper_out").exists()
        yield lambda: has_alert("kiosk:K1")
        report["paper_alert"] = True

    def traced(script: Iterator[Any]) -> Iterator[Any]:
        """The script, with the traceback of a failure on stderr (the report keeps only its repr)."""
        try:
            yield from script
        except Exception:
            import traceback

            traceback.print_exc(file=sys.__stderr__)  # Kivy routes sys.stderr into its own log
            raise

    drive(app, traced(front() if role == "front" else specialist()), SCRIPT_S, report)
    app.run()
    report["sent"] = [command.op for command in controller.sent]
    print(json.dumps(report), flush=True)
    return 0 if "error" not in report else 1


if __name__ == "__main__":  # pragma: no cover
    try:
        code = _panel_process(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    except BaseException:  # Kivy routes sys.stderr into its own log: say it where the parent reads
        import traceback

        traceback.print_exc(file=sys.__stderr__)
        raise
    raise SystemExit(code)
