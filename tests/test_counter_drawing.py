"""The counter panel as drawn in a real Kivy window (SDL offscreen), in English and in Arabic from the same model
state: mirrored for a right-to-left staff language, and updated in place while a section keeps its shape.

In Arabic the panel reads from the right: the key row starts with "next" on the right, the visitor's card is on the
right and the queue on the left, a queue row starts with its letter on the right and ends with its call button on
the left, the counter's name heads the header on the right, and a dialog's confirm button sits left of cancel.
Ticket numbers and counter numbers inside Arabic words stay left to right as drawn (ui.text_shaping).

A section that keeps its shape (the same keys, the same queue rows, the same visitor) keeps its widgets and takes
new words and colours: rebuilding them drew every label's texture again on every reply (memory, issue #11).

The window runs in a child process (this file run as a script): Kivy's window is global to a process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.brokers import ROOT

pytestmark = pytest.mark.slow
WINDOW = "1280x800"
CHILD_S = 300.0  # bounds a hung child only; the drawing itself takes seconds
NUMBER = re.compile(r"\b[A-Z]\d{3}\b")
RLM = "\u200f"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory, pictures: Callable[[str], Path]) -> dict[str, Any]:
    out = pictures("counter") / "rtl"
    home = tmp_path_factory.mktemp("kivy-rtl")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(ROOT), SDL_VIDEODRIVER="offscreen", SDL_AUDIODRIVER="dummy", KIVY_NO_ARGS="1",
               KIVY_HOME=str(home))
    done = subprocess.run([sys.executable, __file__, str(out)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=CHILD_S)
    assert done.returncode == 0, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["out"] = str(out)
    return report


def test_the_key_row_reads_from_the_right_in_arabic(drawn: dict[str, Any]) -> None:
    en, ar, width = drawn["en"], drawn["ar"], drawn["width"]
    assert en["next"][0] < en["recall"][0] < en["close"][0]
    assert ar["next"][0] > ar["recall"][0] > ar["close"][0]
    for key in ("next", "recall", "done", "forward", "close"):  # each key where its mirror image is
        assert ar[key][0] == pytest.approx(width - en[key][0], abs=2.0), key


def test_the_visitor_and_the_queue_swap_sides_and_each_row_is_mirrored(drawn: dict[str, Any]) -> None:
    en, ar = drawn["en"], drawn["ar"]
    assert en["current"][0] < en["queue"][0] and ar["current"][0] > ar["queue"][0]
    assert en["letter"][0] < en["call"][0] and ar["letter"][0] > ar["call"][0]
    assert en["counter_name"][0] < en["link"][0] and ar["counter_name"][0] > ar["link"][0]
    assert en["timer"][0] > en["title"][0] and ar["timer"][0] < ar["title"][0]
    assert (en["name_halign"], ar["name_halign"]) == ("left", "right")
    assert en["cancel"][0] < en["confirm"][0] and ar["cancel"][0] > ar["confirm"][0]


def test_numbers_stay_left_to_right_inside_arabic_lines_laid_out_right_to_left(drawn: dict[str, Any]) -> None:
    lines = drawn["ar"]["numbered"]
    assert len(lines) >= 3, f"too few Arabic lines with a ticket number were drawn: {lines}"
    for logical, visual, right_to_left in lines:
        assert NUMBER.findall(logical) == NUMBER.findall(visual), (logical, visual)  # "A001", never "100A"
        # the line's own direction is right to left even when it starts with the number ("A001 · ..."): the
        # number then stands at the reading start, on the right
        assert visual == right_to_left, (logical, visual)
    assert any(logical.lstrip(RLM).startswith(tuple("ABCDEF")) for logical, _, _ in lines)


def test_the_pictures_are_taken(drawn: dict[str, Any]) -> None:
    for name in ("panel-en", "panel-ar", "close-en", "close-ar"):
        path = Path(drawn["out"]) / f"{name}.png"
        assert path.stat().st_size > 10_000, name


def test_sections_that_keep_their_shape_are_updated_in_place(drawn: dict[str, Any]) -> None:
    kept = drawn["en"]["in_place"]
    assert kept["keys_kept"] and kept["rows_kept"] and kept["header_kept"] and kept["number_kept"], kept
    assert kept["recall_fill"] == kept["disabled_fill"], "the pending command's key state was not drawn"
    assert kept["details"] == ["Called again: 2"] and kept["waiting"] == kept["waiting_before"] + 1, kept
    assert not kept["number_kept_for_next"], "another visitor must get a card of their own"


# ---------------------------------------------------------------- the child: a real window


def _centre(widget: Any) -> list[float]:
    x, y = widget.to_window(*widget.center)
    return [round(x, 1), round(y, 1)]


def _draw(lang: str, out: Path) -> dict[str, Any]:  # pragma: no cover - runs in the child
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from broker.config import DEMO_HALL, load_hall
    from counter.app import CounterRoot, draw_panel
    from counter.dialog_view import DialogView
    from counter.model_types import DeviceMessage
    from counter.widgets import Drawer, PressButton, Theme
    from tests.support.gallery import _settle
    from tests.test_counter_model import Desk, Hall
    from ui.text_shaping import has_rtl, visual_line

    world = Hall(load_hall(DEMO_HALL))
    for topic in ("general", "parking", "taxes", "general", "social"):
        world.issue(topic, lang="fi")
    desk = Desk(world, "3", lang=lang)
    desk.keys("8", "enter", "+")
    world.command("counter", "1", "open")
    world.command("counter", "1", "next")
    world.command("counter", "1", "forward", counter="3")  # an alert with a ticket number and a counter's name
    desk.feed(DeviceMessage("display", "entrance", {"v": 1, "status": "offline"}))
    theme = Theme(Window.height)
    drawer = Drawer(theme, lang, lambda action: None)
    root = CounterRoot(theme, rtl=drawer.rtl, size=Window.size)
    Window.add_widget(root)
    panel = desk.panel
    draw_panel(root, drawer, panel, 754)
    _settle()
    root.export_to_png(str(out / f"panel-{lang}.png"))
    buttons = {w.button_id: w for w in root.walk(restrict=True) if isinstance(w, PressButton)}
    call = buttons[f"call:{panel.queues[0].topic}"]
    row = call.parent
    header = list(root.header.children)
    name, link = header[-1 if not drawer.rtl else 0], header[0 if not drawer.rtl else -1]
    timer = drawer.timer  # the first row of the visitor's card: its title and the serving timer
    assert timer is not None
    title = next(w for w in timer.parent.children if w is not timer)
    letter = next(w for w in row.children
                  if w.children and getattr(w.children[0], "text", "") == panel.queues[0].letter)
    seen: dict[str, Any] = {key: _centre(buttons[key]) for key in ("next", "recall", "done", "forward", "close")}
    seen |= {"current": _centre(root.current), "queue": _centre(root.queue), "call": _centre(call),
             "letter": _centre(letter), "counter_name": _centre(name), "link": _centre(link),
             "title": _centre(title), "timer": _centre(timer), "name_halign": name.halign}
    seen["numbered"] = [[part, visual_line(part).replace(RLM, ""), visual_line(part.replace(RLM, ""), rtl=True)]
                        for w in root.walk(restrict=True) if isinstance(w, Label)
                        for part in w.text.split("\n") if NUMBER.search(part) and has_rtl(part)]
    desk.keys("9")  # the close dialog: cancel and confirm
    assert desk.panel.dialog is not None
    view = DialogView(desk.panel.dialog, drawer, None)
    root.add_widget(view)
    _settle()
    root.export_to_png(str(out / f"close-{lang}.png"))
    dialog_buttons = {w.button_id: w for w in view.walk(restrict=True) if isinstance(w, PressButton)}
    seen |= {"cancel": _centre(dialog_buttons["cancel"]), "confirm": _centre(dialog_buttons["confirm"])}
    desk.keys("escape")
    if lang == "en":
        seen["in_place"] = _redraw_in_place(desk, drawer, root, world)
    Window.remove_widget(root)
    return seen


def _redraw_in_place(desk: Any, drawer: Any, root: Any, world: Any) -> dict[str, Any]:  # pragma: no cover - child
    """Draw the next panels over the drawn one, as the window does on each reply, and say what was kept."""
    from counter.app import ALERT_ROWS
    from counter.widgets import PressButton
    from tests.support.gallery import _settle

    def widgets() -> dict[str, Any]:
        return {w.button_id: w for w in root.walk(restrict=True) if isinstance(w, PressButton)}

    before, panel = widgets(), desk.panel
    header_before = list(root.header.children)
    number_before = next(w for w in root.current.walk(restrict=True) if getattr(w, "text", "") == "C001")
    waiting_before = panel.queues[1].waiting
    world.issue("taxes", lang="fi")  # the queue changes; the rows stay
    desk.keys("+")  # called again: the same visitor, another detail line
    panel = desk.panel
    drawer.header(root.header, panel.header)
    drawer.current(root.current, panel.current, 800)
    drawer.queue(root.queue, panel.queues, panel.forwarded)
    busy = replace(panel, actions=tuple(replace(a, enabled=False) if a.id == "recall" else a for a in panel.actions))
    drawer.actions(root.actions, busy.actions)
    drawer.alerts(root.alerts, panel.alerts, panel.notice, ALERT_ROWS)
    _settle()
    after = widgets()
    number_now = next(w for w in root.current.walk(restrict=True) if getattr(w, "text", "") == "C001")
    kept = {"keys_kept": all(after[k] is before[k] for k in ("next", "recall", "close")),
            "rows_kept": all(after[k] is before[k] for k in before if k.startswith("call:")),
            "header_kept": list(root.header.children) == header_before, "number_kept": number_now is number_before,
            "recall_fill": list(after["recall"]._fill.rgba), "disabled_fill": list(drawer.theme.disabled),
            "details": [w.text for w in root.current.walk(restrict=True) if "again" in getattr(w, "text", "")],
            "waiting_before": waiting_before, "waiting": panel.queues[1].waiting}
    desk.keys("1", "enter")  # done, and the next visitor: a new card
    drawer.current(root.current, desk.panel.current, 0)
    kept["number_kept_for_next"] = any(w is number_before for w in root.current.walk(restrict=True))
    return kept


def _child(out: Path) -> int:  # pragma: no cover - runs in the child
    from ui.kivy_env import configure_kivy

    configure_kivy(windowed=True, size=WINDOW, headless=True)
    from kivy.base import EventLoop

    EventLoop.ensure_window()
    from kivy.core.window import Window

    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"width": Window.width}
    for lang in ("en", "ar"):
        report[lang] = _draw(lang, out)
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_child(Path(sys.argv[1])))
