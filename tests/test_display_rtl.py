"""The hall display in Arabic: the board mirrored, the arrows true to the hall, the numbers left to right.

The same board (four calls, four queues, the demo hall's entrance display) is drawn in a real Kivy window
(SDL offscreen) in English and in Arabic, in a child process (this file run as a script: Kivy's window is
global to a process). The child reports where each part landed and how each arrow points; the parent
checks that the Arabic board is the English one mirrored (the called number on the right, the lists on the
left, the topic strip from the right, each row read from the right) while every arrow points where it did
(a counter to the left of the entrance is still to the left), and that a ticket number is drawn pixel for
pixel as in English (left to right inside the Arabic board). Pictures: pictures("display")/rtl.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.window_child import run_window_child
from ui.text_shaping import visual_line

ROOT = Path(__file__).resolve().parents[1]
SIZE = "1280x720"
LANGS = ("en", "ar")


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory, pictures: Callable[[str], Path]) -> dict[str, Any]:
    out = pictures("display") / "rtl"
    home = tmp_path_factory.mktemp("kivy")
    report = run_window_child([__file__, str(out)], home)
    report["out"] = str(out)
    return report


def test_the_arabic_board_is_the_english_one_mirrored(boards: dict[str, Any]) -> None:
    en, ar = boards["en"], boards["ar"]
    assert en["hero"] < en["side"] and ar["hero"] > ar["side"], "the called number on the reading side's start"
    assert en["hall"] < en["clock"] and ar["hall"] > ar["clock"], "the hall's name first, the clock last"
    order_en = sorted(en["queues"], key=en["queues"].get)
    order_ar = sorted(ar["queues"], key=ar["queues"].get)
    assert len(order_en) >= 3 and order_ar == order_en[::-1], "the topic strip runs from the right"
    for cell in ar["cells"].values():
        assert cell["letter"] > cell["words"], "a queue's letter on its right, its words to the left of it"
    assert en["hero_row"]["arrow"] < en["hero_row"]["words"] and ar["hero_row"]["arrow"] > ar["hero_row"]["words"]
    assert set(en["rows"]) == set(ar["rows"]) and len(ar["rows"]) >= 2, "the same calls in the lists"
    for number, row in ar["rows"].items():
        assert en["rows"][number]["chip"] < en["rows"][number]["counter"], number
        assert row["chip"] > row["counter"], f"{number}: the number first, read from the right"
    assert ar["halign"] == {"titles": "right", "counter": "right"} and en["halign"] == {"titles": "left",
                                                                                         "counter": "left"}


def test_the_arrows_point_where_the_counters_really_are(boards: dict[str, Any]) -> None:
    en, ar = boards["en"], boards["ar"]
    arrows_en, arrows_ar = en["arrows"], ar["arrows"]
    assert set(arrows_en) == set(arrows_ar) and len(arrows_ar) >= 3
    directions = {value["direction"] for value in arrows_ar.values()}
    assert {"left", "right"} <= directions, directions  # one of each, so a mirrored arrow could not hide
    for number, arrow in arrows_ar.items():
        assert arrow == arrows_en[number], f"{number}: the arrow must not be mirrored"
        dx = arrow["tip"][0]
        if arrow["direction"] == "left":
            assert dx < -0.2, (number, arrow)
        if arrow["direction"] == "right":
            assert dx > 0.2, (number, arrow)


def test_ticket_and_counter_numbers_stay_left_to_right_in_arabic(boards: dict[str, Any]) -> None:
    from PIL import Image, ImageChops

    out = Path(boards["out"])
    inks = {}
    for lang in LANGS:
        x0, top, x1, bottom = boards[lang]["number_box"]
        picture = Image.open(out / f"display-board-{lang}.png").convert("L")
        crop = picture.crop((int(x0), int(top), int(x1), int(bottom))).point(lambda v: 255 if v > 200 else 0)
        box = crop.getbbox()  # the white digits on the topic's colour
        assert box is not None, f"no number drawn in {lang}"
        inks[lang] = crop.crop(box)
    assert boards["en"]["number"] == boards["ar"]["number"]
    assert abs(inks["en"].size[0] - inks["ar"].size[0]) <= 2 and abs(inks["en"].size[1] - inks["ar"].size[1]) <= 2
    side = inks["en"].size
    difference = ImageChops.difference(inks["en"], inks["ar"].resize(side))  # a pixel's shift of the edges
    differing = sum(1 for value in difference.tobytes() if value)
    assert differing < 0.03 * side[0] * side[1], f"the number drawn as in English ({differing} pixels differ)"
    mirrored = ImageChops.difference(inks["en"], inks["ar"].resize(side).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert sum(1 for value in mirrored.tobytes() if value) > 5 * max(differing, 1), "the check can tell"
    name = boards["ar"]["counter_name"]
    assert any(ch.isdigit() for ch in name)
    digits = "".join(ch for ch in name if ch.isdigit())
    drawn = visual_line(name, True)
    assert drawn.lstrip().startswith(digits), "in a right-to-left line the number ends it, on the left"


# ---------------------------------------------------------------- the child


def _centre_x(widget: Any) -> float:
    return float(widget.to_window(widget.center_x, widget.center_y)[0])


def _arrow(widget: Any) -> dict[str, Any]:
    """The sign's direction, and where its head's tip is from the sign's centre (in sides of the square)."""
    vertices = widget._mesh.vertices
    points = [(vertices[i], vertices[i + 1]) for i in range(0, len(vertices), 4)]
    tip = points[-2]  # the last triangle is the head; its middle point is the tip
    side = min(widget.width, widget.height)
    return {"direction": widget.direction,
            "tip": [round((tip[0] - widget.center_x) / side, 3), round((tip[1] - widget.center_y) / side, 3)]}


def _board(lang: str) -> Any:

    from broker.config import DEMO_HALL, load_hall
    from tests.support.gallery import open_board
    from tests.test_display_model import live

    base = load_hall(DEMO_HALL)
    hall, feed, model = open_board(base, lang)
    for topic, device in (("general", "1"), ("parking", "3"), ("social", "2"), ("permits", "4")):
        feed.issue(topic, lang=lang)
        live(model, feed, feed.counter(device, "next"))
    for topic in ("general", "permits", "social", "taxes"):
        feed.issue(topic, lang=lang)
    live(model, feed, [])
    return hall, model.board(feed.now)


def _measure(view: Any, board: Any) -> dict[str, Any]:
    side = view.side
    rows = {number: row for pool in (side.current, side.history) for number, row in pool.rows.items()
            if row.parent is side}
    hero = view.hero
    x0, y0 = hero.number.to_window(hero.number.x, hero.number.y)
    height = view.height
    return {
        "hero": _centre_x(hero), "side": _centre_x(side),
        "hall": _centre_x(view.header.hall), "clock": _centre_x(view.header.clock),
        "queues": {topic: _centre_x(cell) for topic, cell in view.queues.cells.items()},
        "cells": {topic: {"letter": _centre_x(cell.letter_box), "words": _centre_x(cell.words)}
                  for topic, cell in view.queues.cells.items()},
        "hero_row": {"arrow": _centre_x(hero.arrow), "words": _centre_x(hero.words)},
        "rows": {number: {"chip": _centre_x(row.chip), "counter": _centre_x(row.counter)}
                 for number, row in rows.items()},
        "arrows": {**{number: _arrow(row.arrow) for number, row in rows.items()},
                   board.hero.number: _arrow(hero.arrow)},
        "halign": {"titles": side.now_title.halign, "counter": next(iter(rows.values())).counter.halign},
        "number": hero.number.text, "number_box": [x0, height - y0 - hero.number.height, x0 + hero.number.width,
                                                   height - y0],
        "counter_name": board.hero.counter_name,
    }


def main(out: Path) -> int:  # pragma: no cover - runs in the child
    from display.window import configure

    configure(windowed=True, size=SIZE, headless=True)
    from kivy.base import EventLoop
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.graphics import Color, Rectangle

    from display.app import BoardView
    from display.widgets import BACKGROUND, rgba

    EventLoop.ensure_window()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for lang in LANGS:
        hall, board = _board(lang)
        view = BoardView(hall.colour, Window.height / 100.0, size=Window.size)
        with view.canvas.before:  # on screen the window's clear colour; a PNG of the widgets needs it painted
            Color(*rgba(BACKGROUND))
            Rectangle(pos=(0, 0), size=Window.size)
        Window.add_widget(view)
        view.show(board)
        for _ in range(4):  # layouts and label textures are updated on the frame after a change
            Clock.tick()
            EventLoop.idle()
        report[lang] = _measure(view, board)
        view.export_to_png(str(out / f"display-board-{lang}.png"))
        Window.remove_widget(view)
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(Path(sys.argv[1])))
