"""Two real hall display windows (SDL offscreen, Mesa) against a running hall server: calls, directions, frames.

Each display window runs in a child process (this file run as a script) so that Kivy's global window
never leaks into other test modules. The parent is the hall: a private Mosquitto, `vuoro server`, a
kiosk and counters as MQTT clients. It talks to each child over stdin/stdout: the child reports every
board it draws and every frame it flips, and takes screenshots on request (into the pictures folder:
docs/screenshots/display/ when bin/screenshots runs this).
Sound goes through SDL's dummy audio driver (the announcements are generated and played for real,
into no speaker) and each generated announcement is kept in a folder for the checks.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from display.announce import MAX_AGE_S
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
WINDOW = "1920x1080"
MARK = "@@ "
REPORT_S = MAX_AGE_S  # a display's own patience with a call: anything it reports comes within this


class Child:
    """One display window in its own process, spoken to line by line.

    Each child has its own KIVY_HOME: Kivy processes starting at once in one fresh home race to create it.
    """

    def __init__(self, broker_url: str, display: str, shots: Path, sounds: Path, env: dict[str, str]) -> None:
        self.display = display
        self.kivy_home = sounds.with_name(sounds.name + "-kivy")
        self.proc = subprocess.Popen([sys.executable, __file__, broker_url, display, str(shots), str(sounds)],
                                     env={**env, "KIVY_HOME": str(self.kivy_home)}, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.cursor = 0  # messages before it were consumed by an earlier wait: waits look forward only
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, name=f"display-{display}-stdout", daemon=True)
        self._reader.start()
        self._errors = threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr or []),
                                        name=f"display-{display}-stderr", daemon=True)
        self._errors.start()

    def _read(self) -> None:
        for line in self.proc.stdout or []:
            if line.startswith(MARK):
                self.lines.put(json.loads(line[len(MARK):]))

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = REPORT_S) -> dict[str, Any]:
        """The next report (after the last one waited for) that satisfies the predicate."""
        for index in range(self.cursor, len(self.seen)):
            if predicate(self.seen[index]):
                self.cursor = index + 1
                return self.seen[index]
        self.cursor = len(self.seen)

        def arrived() -> dict[str, Any] | None:
            while True:
                try:
                    message = self.lines.get_nowait()
                except queue.Empty:
                    if self.proc.poll() is not None and not self._reader.is_alive() and self.lines.empty():
                        raise AssertionError(f"display {self.display} exited ({self.proc.returncode}):\n"
                                             f"{self.tail()}") from None
                    return None
                self.seen.append(message)
                self.cursor = len(self.seen)
                if predicate(message):
                    return message

        return wait_until(arrived, timeout, lambda: f"display {self.display} to report it:\n{self.tail()}")

    def tail(self) -> str:
        """The child's last reports, its stderr and the end of its Kivy log (where Kivy sends stray stderr)."""
        kivy = "".join(path.read_text(errors="replace") for path in sorted(self.kivy_home.glob("logs/*.txt")))
        return f"last: {self.seen[-3:]}\n--- stderr\n{''.join(self.stderr)[-3000:]}\n--- Kivy log\n{kivy[-3000:]}"

    def board(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = REPORT_S) -> dict[str, Any]:
        return self.wait(lambda m: m["kind"] == "board" and predicate(m), timeout)

    def shot(self, name: str, lang: str | None = None) -> None:
        self.send(f"shot {name} {lang or '-'}")
        self.wait(lambda m: m["kind"] == "shot" and m["name"] == name)

    def finish(self) -> dict[str, Any]:
        self.send("quit")
        report = self.wait(lambda m: m["kind"] == "done")
        self.proc.wait(REPORT_S)
        return report

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(REPORT_S)
        self._errors.join(REPORT_S)


def hero(number: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["hero"] is not None and m["hero"]["number"] == number


@pytest.fixture
def hall_server(mosquitto: Any, tmp_path: Path) -> Iterator[Any]:
    from tests.support.brokers import ServerProcess

    server = ServerProcess(tmp_path / "hall.sqlite", mosquitto.address).start()
    yield server
    server.stop()


def test_two_displays_show_each_call_on_the_next_frame_with_their_own_way_and_say_it(
        mosquitto: Any, hall_server: Any, hall: Any, tmp_path: Path, pictures: Callable[[str], Path]) -> None:
    from broker.client import HallClient
    from display.announce import call_text

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shots = pictures("display")
    url = mosquitto.address.url
    kiosk = HallClient(mosquitto.address, hall.id, "kiosk", "K1", presence=False)
    counters = {c: HallClient(mosquitto.address, hall.id, "counter", c, presence=False) for c in ("1", "3", "4", "6")}
    children: list[Child] = []
    try:
        assert kiosk.start() and all(c.start() for c in counters.values())
        tickets = [("general", "sv", "1"), ("parking", "en", "3"), ("appointments", "se", "6"), ("permits", "fi", "4")]
        numbers = [kiosk.request("issue", topic=topic, lang=lang)["ticket"]["number"] for topic, lang, _ in tickets]
        for client in counters.values():
            client.request("open")
        entrance = Child(url, "entrance", shots, tmp_path / "entrance", env)
        upstairs = Child(url, "upstairs", shots, tmp_path / "upstairs", env)
        children += [entrance, upstairs]
        for child in children:
            child.wait(lambda m: m["kind"] == "ready")
        entrance.shot("waiting", "en")
        entrance.send("closed fi")
        assert entrance.wait(lambda m: m["kind"] == "shot" and m["name"] == "closed-fi")["mode"] == "closed"

        for number, (_, _, counter) in zip(numbers, tickets, strict=True):
            counters[counter].request("next")
            for child in children:
                child.board(hero(number))
        last = numbers[-1]  # B001, in Finnish, at counter 4: to the right from the entrance, downstairs from above
        b_in, b_up = entrance.board(hero(last)), upstairs.board(hero(last))
        assert (b_in["hero"]["direction"], b_up["hero"]["direction"]) == ("right", "downstairs")
        assert b_in["hero"]["counter_name"] == "Tiski 4" and b_up["hero"]["place"] == "Portaat alas, sitten oikealle"
        assert b_in["hero"]["highlight"] and b_in["online"]
        assert {c["number"]: c["direction"] for c in b_up["current"]} == {
            numbers[0]: "downstairs", numbers[1]: "downstairs", numbers[2]: "ahead-right"}
        entrance.shot("entrance-sv", "sv")
        upstairs.shot("upstairs-fi", "fi")

        # a recall highlights again; and a display started after all this shows the call at once, silently
        counters["4"].request("recall")
        for child in children:
            child.board(lambda m: m["hero"] is not None and m["hero"]["recall"] == 1)
        entrance.shot("recall-en", "en")
        late = Child(url, "upstairs", shots, tmp_path / "late", env)
        children.append(late)
        ready = late.wait(lambda m: m["kind"] == "ready")
        assert ready["hero"] is not None and ready["hero"]["number"] == last and ready["hero"]["recall"] == 1
        late.shot("upstairs-se", "se")

        # the broker goes away and comes back empty: the last board stays, marked, then is rebuilt
        mosquitto.stop()
        for child in children:
            child.board(lambda m: not m["online"] and m["hero"] is not None and m["hero"]["number"] == last)
        entrance.shot("reconnecting-sv", "sv")
        time.sleep(1.0)  # the broker stays away a while (not a wait for anything): reconnect attempts are refused
        mosquitto.start()
        for child in children:
            child.board(lambda m: m["online"] and m["hero"] is not None and m["hero"]["number"] == last)

        reports = {child.display + ("-late" if child is late else ""): child.finish() for child in children}
    finally:
        for child in children:
            child.kill()
        kiosk.close()
        for client in counters.values():
            client.close()

    for name, report in reports.items():
        if name == "upstairs-late":
            assert report["generated"] == [], "a display started after the calls said an old call"
            continue
        # every call showed on the first frame flipped after its ticket.called event reached the display (or
        # the second, had a frame of the language turning been under way just then)
        assert [(f["number"], f["recall"]) for f in report["frames"]] == [*((n, 0) for n in numbers), (last, 1)]
        assert all(f["frames_before"] in (0, 1) for f in report["frames"]), report["frames"]
        # each call was made into sound once (the recall again), in the visitor's language, then Swedish
        said = [(g["number"], [p["lang"] for p in g["parts"]]) for g in report["generated"]]
        assert said == [(n, [None, lang] + (["sv"] if lang != "sv" else []))
                        for n, (_, lang, _) in zip([*numbers, last], [*tickets, tickets[-1]], strict=True)], said
        finn = report["generated"][3]
        assert [p["text"] for p in finn["parts"][1:]] == [call_text(hall, last, "4", lang) for lang in ("fi", "sv")]
        assert all(Path(g["path"]).stat().st_size > 100_000 for g in report["generated"])
        # the called number is the largest thing on screen
        largest, second = report["largest"][:2]
        assert largest["text"] == last and largest["font_size"] > 2 * second["font_size"], report["largest"]
        # idle: nothing is redrawn while nothing changes
        assert report["idle"]["flips"] == 0 and report["idle"]["seconds"] >= 1.0, report["idle"]
    for name in ("waiting", "closed-fi", "entrance-sv", "upstairs-fi", "recall-en", "upstairs-se", "reconnecting-sv"):
        path = shots / f"{name}.png"
        assert path.stat().st_size < 400_000, f"{path} is too large for the docs"


def test_vuoro_display_snapshot_writes_the_synced_board_and_says_what_it_shows(
        mosquitto: Any, hall_server: Any, hall: Any, tmp_path: Path) -> None:
    from broker.client import HallClient

    kiosk = HallClient(mosquitto.address, hall.id, "kiosk", "K1", presence=False)
    desk = HallClient(mosquitto.address, hall.id, "counter", "6", presence=False)
    try:
        assert kiosk.start() and desk.start()
        number = kiosk.request("issue", topic="appointments", lang="en")["ticket"]["number"]
        desk.request("open")
        desk.request("next")
    finally:
        kiosk.close()
        desk.close()
    env = {**os.environ, "KIVY_HOME": str(tmp_path / "kivy")}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    png = tmp_path / "upstairs.png"
    run = subprocess.run([sys.executable, "-m", "vuoro.cli", "display", "--broker", mosquitto.address.url,
                          "--id", "upstairs", "--lang", "en", "--size", "960x540", "--snapshot", str(png)],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{number} → counter 6 (ahead-right)" in run.stdout
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (960, 540)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50  # drawn, not a blank window


def test_vuoro_display_refuses_an_unknown_display_and_says_so_without_a_server(tmp_path: Path) -> None:
    env = {**os.environ, "KIVY_HOME": str(tmp_path / "kivy")}
    env.pop("DISPLAY", None)
    run = subprocess.run([sys.executable, "-m", "vuoro.cli", "display", "--id", "lobby",
                          "--broker", "mqtt://127.0.0.1:1", "--snapshot", str(tmp_path / "x.png")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "'lobby' is not a display" in run.stderr and "entrance" in run.stderr


# ---------------------------------------------------------------- the child process: a real window


def _child(broker_url: str, display: str, shots: Path, sounds: Path) -> int:  # pragma: no cover - in the child
    from display.window import configure

    configure(windowed=True, size=WINDOW, headless=True)
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from broker.config import DEMO_HALL, load_hall
    from broker.mqtt import BrokerAddress
    from display.app import DisplayApp, KivyPlayer
    from display.controller import DisplayController

    hall = load_hall(DEMO_HALL)
    controller = DisplayController(hall, BrokerAddress.parse(broker_url), display, player=KivyPlayer(),
                                   sound_dir=sounds)
    app = DisplayApp(controller)
    flips: list[tuple[float, list[str]]] = []
    state: dict[str, Any] = {"ready": False, "drawn": None}

    def say(kind: str, **fields: Any) -> None:
        print(MARK + json.dumps({"kind": kind, **fields}, default=str), flush=True)

    def view(call: Any) -> dict[str, Any] | None:
        if call is None:
            return None
        return {"number": call.number, "counter": call.counter, "direction": call.direction, "recall": call.recall,
                "highlight": call.highlight, "counter_name": call.counter_name, "place": call.place}

    def board_fields() -> dict[str, Any]:
        board = app.drawn
        return {"mode": board.mode, "online": board.online, "hero": view(board.hero),
                "current": [view(c) for c in board.current], "history": [c.number for c in board.history],
                "lang": board.labels.lang}

    def flipped(*_: Any) -> None:
        board = app.drawn
        calls = [] if board is None or board.hero is None else [board.hero, *board.current]
        flips.append((time.monotonic(), [(c.number, c.recall) for c in calls]))

    called: list[tuple[str, int, float]] = []  # (number, recall, when the ticket.called event arrived)
    listener = controller.client.listener

    def heard(topic: Any, data: dict[str, Any]) -> None:  # paho's thread: stamp the event, then the display's way
        if topic.kind == "event" and topic.name == "ticket.called":
            called.append((data["ticket"]["number"], data["recall"], time.monotonic()))
        assert listener is not None
        listener(topic, data)

    controller.client.listener = heard

    def after_update() -> None:
        if app.drawn is None or app.drawn is state["drawn"]:
            return
        state["drawn"] = app.drawn
        if not state["ready"] and controller.synced and app.drawn.mode != "starting":
            state["ready"] = True
            say("ready", **board_fields())
        say("board", **board_fields())

    def labels() -> list[dict[str, Any]]:
        found = [w for w in app.view.walk(restrict=True) if isinstance(w, Label) and w.text]  # type: ignore[union-attr]
        found.sort(key=lambda w: w.font_size, reverse=True)
        return [{"text": w.text, "font_size": w.font_size} for w in found[:3]]

    def frames() -> list[dict[str, Any]]:
        """For each ticket.called event: how many frames were flipped after it arrived before one showed it?"""
        result = []
        for number, recall, arrived in called:
            after = [(t, shown) for t, shown in flips if t > arrived]
            index = next((i for i, (_, shown) in enumerate(after) if (number, recall) in shown), None)
            result.append({"number": number, "recall": recall, "frames_before": index,
                           "ms": None if index is None else (after[index][0] - arrived) * 1000})
        return result

    def idle(then: Callable[[dict[str, Any]], None], settled: bool = False) -> None:
        """Count the frames over a stretch in which the board has no reason to change."""
        left = (controller.next_change() - controller.clock()).total_seconds()
        if left < 2.0 or not settled:  # first let a change that is due now (a boundary just passed) be drawn
            app.update()
            Clock.schedule_once(lambda dt: idle(then, settled=True), (left + 0.3) if left < 2.0 else 0.3)
            return
        start, before, refreshes, board = time.monotonic(), len(flips), app.refreshes, app.drawn
        seconds = min(3.0, left - 0.3)

        def report(dt: float) -> None:
            changed = [f for f in ("mode", "header", "online", "labels", "hero", "current", "history", "queues",
                                   "notice") if getattr(board, f) != getattr(app.drawn, f)]
            then({"flips": len(flips) - before, "seconds": time.monotonic() - start, "changed": changed,
                  "boards": app.refreshes - refreshes, "at": [t - start for t, _ in flips[before:]],
                  "diff": [(getattr(board, f), getattr(app.drawn, f)) for f in changed]})
        Clock.schedule_once(report, seconds)

    def command(line: str) -> None:
        word, *rest = line.split()
        if word == "shot":
            name, lang = rest[0], (None if rest[1] == "-" else rest[1])
            controller.model.fixed_lang = lang
            app.update()

            def take(dt: float) -> None:
                app.snapshot(shots / f"{name}.png")
                controller.model.fixed_lang = None
                app.update()
                say("shot", name=name)
            Clock.schedule_once(take, 0.4)
        elif word == "closed":  # the closed board, drawn in this window from a model told so (Friday evening)
            from datetime import datetime

            from display.model import DisplayModel, LinkIn, ServerIn, StateIn

            evening = datetime(2026, 12, 4, 18, 30, tzinfo=hall.tz)
            closed = DisplayModel.for_display(hall, display, fixed_lang=rest[0])
            for item in (LinkIn(True), ServerIn({"v": 1, "status": "online", "seq": 1}),
                         StateIn("hall", {"v": 1, "seq": 1, "always_open": False, "day": "2026-12-04"}),
                         StateIn("calls", {"v": 1, "seq": 1, "calls": []})):
                closed.feed(item, evening)
            board = closed.board(evening)
            app.view.show(board)  # type: ignore[union-attr]

            def take_closed(dt: float) -> None:
                app.snapshot(shots / "closed-fi.png")
                app.view.show(app.drawn)  # type: ignore[union-attr]
                say("shot", name="closed-fi", mode=board.mode)
            Clock.schedule_once(take_closed, 0.4)
        elif word == "quit":
            def done(idle_report: dict[str, Any]) -> None:
                generated = [{"number": s.number, "seq": s.seq, "path": str(s.path), "duration_s": s.duration_s,
                              "parts": [{"lang": p.lang, "voice": p.voice, "text": p.text} for p in s.parts]}
                             for s in controller.announcer.generated]
                say("done", frames=frames(), generated=generated, largest=labels(), idle=idle_report,
                    refreshes=app.refreshes)
                app.stop()
            idle(done)

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip():
                Clock.schedule_once(lambda dt, line=line: command(line), 0)

    app.after_update = after_update
    Window.bind(on_flip=flipped)
    threading.Thread(target=read_commands, daemon=True).start()
    shots.mkdir(parents=True, exist_ok=True)
    app.run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_child(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
