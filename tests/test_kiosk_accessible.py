"""The kiosk's accessible mode does what it says, measured on the rendered screens of every language.

The topic and the ticket screens are drawn in a real Kivy window (SDL offscreen, the kiosk's 540x960) in
both modes, in every shipped language (en, sv, fi, se) and the test catalogues (de, ar), in a child process
(this file run as a script: Kivy's window is global to a process). The child reports the font size each
label was drawn at, where every control's top edge is, and which words were broken; the parent checks:

- the ticket number is at least 1.3x its normal-mode size (kiosk.app.LARGE_TEXT), and still on one line
  inside the window;
- no topic letter is smaller than in the normal mode, and no text is smaller than 1.3x its normal size;
- every control is in the lower part of the screen (kiosk.reach.REACH_TOP: a seated person's reach);
- no word is hyphenated.

Pictures: pictures("kiosk")/accessible (look at them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiosk.reach import REACH_TOP
from tests.support.window_child import run_window_child

ROOT = Path(__file__).resolve().parents[1]
SIZE = "540x960"
LANGS = ("en", "sv", "fi", "se", "de", "ar")
TOLERANCE_PX = 0.5  # font sizes are rounded to tenths of a pixel by the fitting
LARGE_TEXT = 1.3  # kiosk.app.LARGE_TEXT (checked below): not imported here, as the child must set Kivy up first


def test_the_measure_is_the_apps() -> None:
    from kiosk.app import LARGE_TEXT as apps

    assert apps == LARGE_TEXT


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory, pictures: Callable[[str], Path]) -> dict[str, Any]:
    out = pictures("kiosk") / "accessible"
    home = tmp_path_factory.mktemp("kivy")
    report = run_window_child([__file__, str(out), *LANGS], home)
    assert set(report) == {f"{screen}-{mode}-{lang}" for screen in ("topic", "ticket")
                           for mode in ("normal", "accessible") for lang in LANGS}
    return report


@pytest.mark.parametrize("lang", LANGS)
def test_the_ticket_number_is_at_least_1_3_times_as_large_and_on_one_line(screens: dict[str, Any],
                                                                         lang: str) -> None:
    normal, accessible = screens[f"ticket-normal-{lang}"], screens[f"ticket-accessible-{lang}"]
    assert normal["number"]["text"] == accessible["number"]["text"]
    ratio = accessible["number"]["font_size"] / normal["number"]["font_size"]
    assert ratio >= LARGE_TEXT - 0.005, f"{lang}: the accessible number is {ratio:.2f}x the normal one"
    drawn = accessible["number"]["texture_height"] / normal["number"]["texture_height"]
    assert drawn >= LARGE_TEXT - 0.02, f"{lang}: drawn {drawn:.2f}x as tall"
    for screen in (normal, accessible):
        assert screen["number"]["lines"] == 1 and screen["number"]["inside"], (lang, screen["number"])


@pytest.mark.parametrize("lang", LANGS)
def test_no_topic_letter_and_no_text_is_smaller_than_in_the_normal_mode(screens: dict[str, Any], lang: str) -> None:
    for screen in ("topic", "ticket"):
        normal, accessible = screens[f"{screen}-normal-{lang}"], screens[f"{screen}-accessible-{lang}"]
        for letter, size in accessible["letters"].items():
            assert size >= normal["letters"][letter] - TOLERANCE_PX, (lang, letter, size, normal["letters"][letter])
        shared = [words for words in accessible["texts"] if words in normal["texts"]]
        assert len(shared) >= 2, (lang, screen, "too few texts to compare")
        for words in shared:
            want = normal["texts"][words] * LARGE_TEXT
            assert accessible["texts"][words] >= want - TOLERANCE_PX, (lang, words, accessible["texts"][words], want)
    assert len(screens[f"topic-accessible-{lang}"]["letters"]) >= 4


@pytest.mark.parametrize("lang", LANGS)
def test_the_accessible_controls_are_within_reach_and_no_word_is_broken(screens: dict[str, Any], lang: str) -> None:
    for screen in ("topic", "ticket"):
        accessible = screens[f"{screen}-accessible-{lang}"]
        assert accessible["tops"], (lang, screen, "no controls")
        too_high = {button: top for button, top in accessible["tops"].items() if top > REACH_TOP}
        assert not too_high, f"{lang} {screen}: above {REACH_TOP:.0%} of the screen: {too_high}"
        assert not accessible["broken"], (lang, screen, accessible["broken"])
        assert not accessible["cut"], (lang, screen, accessible["cut"])


# ---------------------------------------------------------------- the child


def _measure(root: Any, number: str | None) -> dict[str, Any]:
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from kiosk.app import TouchButton
    from ui.kivy_text import FitLabel

    found: dict[str, Any] = {"texts": {}, "letters": {}, "tops": {}, "broken": [], "cut": []}
    for widget in root.walk(restrict=True):
        if isinstance(widget, TouchButton):
            top = widget.to_window(widget.x, widget.top)[1]
            found["tops"][widget.button_id] = round(top / Window.height, 3)
        if isinstance(widget, FitLabel) and widget.words.strip():
            words = widget.words
            kind = "letters" if len(words) == 1 else "texts"
            found[kind][words] = round(float(widget.font_size), 2)
            fitted = widget.fitted
            if fitted is not None and fitted.hyphenated:
                found["broken"].append(f"{words!r} -> {widget.text!r}")
            if fitted is not None and not fitted.fits:
                found["cut"].append(words)
        elif isinstance(widget, Label) and number is not None and widget.text == number:
            x0 = widget.to_window(widget.x, widget.y)[0]
            found["number"] = {"text": number, "font_size": round(float(widget.font_size), 2),
                               "texture_height": widget.texture_size[1], "lines": 1 + widget.text.count("\n"),
                               "inside": x0 >= 0 and x0 + widget.texture_size[0] <= Window.width + 1 and
                               widget.texture_size[0] <= widget.width + 1}
    return found


def main(out: Path, langs: list[str]) -> int:  # pragma: no cover - runs in the child
    from ui.kivy_env import configure_kivy

    configure_kivy(windowed=True, size=SIZE, headless=True)
    from kivy.base import EventLoop
    from kivy.clock import Clock
    from kivy.core.window import Window

    from broker.config import DEMO_HALL, load_hall
    from kiosk.app import KioskRoot
    from kiosk.model_types import ChooseLanguage, ChooseTopic, ToggleAccessibility
    from tests.test_kiosk_model import Kiosk

    EventLoop.ensure_window()
    out.mkdir(parents=True, exist_ok=True)
    hall = load_hall(DEMO_HALL)
    root = KioskRoot(lambda action: None, size=Window.size)
    Window.add_widget(root)
    report: dict[str, Any] = {}

    def take(screen: Any, name: str) -> None:
        root.show(screen)
        for _ in range(4):  # layouts and label textures are updated on the frame after a change
            Clock.tick()
            EventLoop.idle()
        report[name] = _measure(root, screen.ticket.number if screen.ticket is not None else None)
        root.export_to_png(str(out / f"kiosk-{name}.png"))

    for lang in langs:
        for mode in ("normal", "accessible"):
            visit = Kiosk(hall)
            if mode == "accessible":
                visit.feed(ToggleAccessibility())
            visit.feed(ChooseLanguage(lang))
            take(visit.screen, f"topic-{mode}-{lang}")
            send = visit.feed(ChooseTopic("social"))[0]
            visit.reply(send, ahead=16, wait_s=2400, range_s=[1200, 3900])
            take(visit.screen, f"ticket-{mode}-{lang}")
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(Path(sys.argv[1]), sys.argv[2:]))
