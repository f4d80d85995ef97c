"""Every screen of every app in every language, drawn in one real Kivy window per app, measured and pictured.

Run as a child process (`python -m tests.support.gallery APP OUT LANGS...`), because Kivy's window and
settings are global to a process: tests/test_fit.py starts one per app. Each screen is built from the
app's pure model fed as the hall server would feed it (no broker), drawn into the window, laid out,
checked, and saved as OUT/<app>-<screen>-<lang>.png. The last line printed is a JSON report:

- `problems`: every label whose text is larger than its box (FitLabel says it could not fit; or its
  box pokes out of the box around it, or out of the window; or a plain label's texture is wider than
  itself), with the overflow in pixels;
- `sizes`: font size of each text on the kiosk's normal and accessible screens (the accessible mode
  must be 1.3x, never smaller); `reach`: the top of each control on accessible screens, as a share
  of the window's height from the bottom; `hyphenated`: labels whose words were broken.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

KIOSK_SIZE, COUNTER_SIZE, DISPLAY_SIZE = "540x960", "1280x800", "1280x720"
TOLERANCE_PX = 1.0


def _settle() -> None:
    from kivy.base import EventLoop
    from kivy.clock import Clock

    for _ in range(4):  # layouts and label textures are updated on the frame after a change
        Clock.tick()
        EventLoop.idle()


def _box(widget: Any) -> tuple[float, float, float, float]:
    x, y = widget.to_window(widget.x, widget.y)
    return x, y, x + widget.width, y + widget.height


def problems(root: Any, screen: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Labels whose text does not fit, and labels whose words were hyphenated."""
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from ui.kivy_text import FitLabel

    found: list[dict[str, Any]] = []
    hyphenated: list[str] = []

    def add(label: Any, why: str, px: float) -> None:
        found.append({"screen": screen, "text": (getattr(label, "words", "") or label.text)[:60], "why": why,
                      "px": round(px, 1)})

    for widget in root.walk(restrict=True):
        if not isinstance(widget, Label) or not widget.text.strip() or widget.opacity == 0:
            continue
        if isinstance(widget, FitLabel):
            fitted = widget.fitted
            if fitted is not None and fitted.hyphenated:
                hyphenated.append(f"{screen}: {widget.words!r} -> {widget.text!r}")
            box_w = widget.width - widget.padding[0] - widget.padding[2]
            box_h = widget.height - widget.padding[1] - widget.padding[3]
            over_w = widget.widest_line() - box_w
            over_h = 0.0 if widget.grow else widget.needed_height() - box_h
            if over_w > TOLERANCE_PX or over_h > TOLERANCE_PX or (fitted is not None and not fitted.fits):
                add(widget, "text larger than its box", max(over_w, over_h, 0.0))
        else:
            over = widget.texture_size[0] - widget.width
            if over > TOLERANCE_PX:
                add(widget, "texture wider than the label", over)
            if getattr(widget, "is_shortened", False) or getattr(widget._label, "is_shortened", False):
                add(widget, "shortened with an ellipsis", 0.0)
        # the label's box inside every box around it, and inside the window
        x0, y0, x1, y1 = _box(widget)
        parent = widget.parent
        while parent is not None and parent is not root.parent:
            if parent.width > 0 and parent.height > 0 and hasattr(parent, "to_window"):
                px0, py0, px1, py1 = _box(parent)
                over = max(px0 - x0, py0 - y0, x1 - px1, y1 - py1)
                if over > TOLERANCE_PX:
                    add(widget, f"pokes out of its {type(parent).__name__}", over)
                    break
            parent = parent.parent
        over = max(-x0, -y0, x1 - Window.width, y1 - Window.height)
        if over > TOLERANCE_PX:
            add(widget, "outside the window", over)
    return found, hyphenated


def _title(root: Any) -> list[Any] | None:
    """The first label drawn (the screen's title), as [text, x0, top, x1, bottom] in the picture's pixels."""
    from kivy.uix.label import Label

    labels = [w for w in root.walk(restrict=True) if isinstance(w, Label) and w.text.strip()]
    if not labels:
        return None
    label = labels[0]
    x0, y0, x1, y1 = _box(label)
    height = root.height
    return [getattr(label, "words", "") or label.text, x0, height - y1, x1, height - y0]


class Gallery:
    def __init__(self, app: str, out: Path) -> None:
        self.app, self.out = app, out
        self.report: dict[str, Any] = {"app": app, "screens": [], "problems": [], "hyphenated": [], "sizes": {},
                                       "reach": {}}
        out.mkdir(parents=True, exist_ok=True)

    def take(self, root: Any, name: str) -> None:
        _settle()
        self.report.setdefault("titles", {})[name] = _title(root)
        found, hyphenated = problems(root, name)
        self.report["problems"] += found
        self.report["hyphenated"] += hyphenated
        self.report["screens"].append(name)
        root.export_to_png(str(self.out / f"{self.app}-{name}.png"))


# ---------------------------------------------------------------- kiosk


def kiosk(out: Path, langs: list[str]) -> dict[str, Any]:
    from kivy.core.window import Window

    from kiosk.app import KioskRoot, TouchButton
    from kiosk.model_types import (
        ChooseLanguage,
        ChooseTopic,
        Done,
        HallState,
        IssueError,
        ServerStatus,
        ToggleAccessibility,
    )
    from tests.test_kiosk_model import Kiosk
    from ui.kivy_text import FitLabel

    gallery = Gallery("kiosk", out)
    root = KioskRoot(lambda action: None, size=Window.size)
    Window.add_widget(root)
    hall = _hall(langs)

    def show(screen: Any, name: str) -> None:
        root.show(screen)
        gallery.take(root, name)
        sizes = {label.words: label.font_size for label in root.walk(restrict=True)
                 if isinstance(label, FitLabel) and label.words.strip()}
        gallery.report["sizes"][name] = sizes
        if screen.flags.reach:
            tops = {button.button_id: round(_box(button)[3] / Window.height, 3)
                    for button in root.walk(restrict=True) if isinstance(button, TouchButton)}
            gallery.report["reach"][name] = tops

    for accessible in (False, True):
        suffix = "-accessible" if accessible else ""
        start = Kiosk(hall)
        if accessible:
            start.feed(ToggleAccessibility())
        show(start.screen, f"start{suffix}")
        for lang in langs:
            visit = Kiosk(hall)
            if accessible:
                visit.feed(ToggleAccessibility())
            visit.feed(ChooseLanguage(lang))
            show(visit.screen, f"topic{suffix}-{lang}")
            send = visit.feed(ChooseTopic("social"))[0]
            visit.reply(send, ahead=16, wait_s=2400, range_s=[1200, 3900])
            show(visit.screen, f"ticket{suffix}-{lang}")
            if accessible:
                continue
            visit.feed(Done())
            visit.feed(ChooseLanguage(lang))
            send = visit.feed(ChooseTopic("permits"))[0]
            show(visit.screen, f"issuing-{lang}")
            visit.feed(IssueError(send.command_id, "numbers_exhausted", ""))
            show(visit.screen, f"refused-{lang}")
    closed = Kiosk(hall)
    tomorrow = (closed.now + timedelta(days=1)).replace(hour=8, minute=0)
    closed.feed(HallState(False, tomorrow))
    show(closed.screen, "closed")
    offline = Kiosk(hall, online=True)
    offline.feed(ServerStatus(False))
    show(offline.screen, "out_of_service")
    return gallery.report


def _hall(langs: list[str]) -> Any:
    """The demo hall (it speaks every shipped language and the test catalogues' de and ar)."""
    from broker.config import DEMO_HALL, load_hall

    hall = load_hall(DEMO_HALL)
    missing = [lang for lang in langs if lang not in hall.languages]
    assert not missing, f"the demo hall does not speak {missing}"
    return hall


# ---------------------------------------------------------------- counter


def counter(out: Path, langs: list[str]) -> dict[str, Any]:
    from kivy.core.window import Window

    from counter.app import CounterRoot, draw_panel
    from counter.dialog_view import DialogView
    from counter.model_types import DeviceMessage
    from counter.widgets import Drawer, Theme
    from tests.test_counter_model import Desk, Hall
    from ui.text_shaping import is_rtl_language

    gallery = Gallery("counter", out)
    theme = Theme(Window.height)
    hall_config = _hall(langs)
    for lang in langs:
        world = Hall(hall_config)
        for topic in ("general", "parking", "taxes", "general", "social"):
            world.issue(topic, lang=lang)
        desk = Desk(world, "3", lang=lang)
        desk.keys("8", "enter")  # open, call the next visitor
        desk.keys("+")
        for device, role in (("K1", "kiosk"), ("entrance", "display"), ("upstairs", "display")):
            desk.feed(DeviceMessage(role, device, {"v": 1, "status": "offline"}))
        root = CounterRoot(theme, rtl=is_rtl_language(lang), size=Window.size)
        Window.add_widget(root)
        drawer = Drawer(theme, lang, lambda action: None)
        panel = desk.panel
        draw_panel(root, drawer, panel, 754)
        gallery.take(root, f"panel-{lang}")
        for key, name in (("3", "forward"), ("7", "pause")):
            desk.keys(key)
            dialog = desk.panel.dialog
            if dialog is not None:
                view = DialogView(dialog, drawer, None)
                root.add_widget(view)
                gallery.take(root, f"{name}-{lang}")
                root.remove_widget(view)
            desk.keys("escape")
        Window.remove_widget(root)
    return gallery.report


# ---------------------------------------------------------------- display


def open_board(base: Any, lang: str) -> tuple[Any, Any, Any]:
    """The entrance display of `base` in `lang` (not turning through languages), its counters open and synced:
    (hall, feed, model)."""
    from display.model import DisplayModel
    from tests.test_display_model import Feed, connect

    hall = replace(base, languages=(lang, *(x for x in base.languages if x != lang)))
    hall = replace(hall, displays={k: replace(v, rotate_languages_s=0) for k, v in hall.displays.items()})
    feed = Feed(hall)
    for device in ("1", "2", "3", "4", "6"):
        feed.counter(device, "open")
    model = DisplayModel.for_display(hall, "entrance")
    connect(model, feed)
    return hall, feed, model


def display(out: Path, langs: list[str]) -> dict[str, Any]:
    from kivy.core.window import Window

    from display.app import BoardView
    from tests.test_display_model import live

    gallery = Gallery("display", out)
    base = _hall(langs)
    for lang in langs:
        hall, feed, model = open_board(base, lang)
        view = BoardView(hall.colour, Window.height / 100.0, size=Window.size)
        Window.add_widget(view)
        for topic, device in (("general", "1"), ("parking", "3"), ("social", "2"), ("permits", "4")):
            feed.issue(topic, lang=lang)
            live(model, feed, feed.counter(device, "next"))
        for topic in ("general", "permits", "social", "taxes"):
            feed.issue(topic, lang=lang)
        live(model, feed, [])
        view.show(model.board(feed.now))
        gallery.take(view, f"board-{lang}")
        Window.remove_widget(view)
    return gallery.report


GALLERY_S = 600.0  # one app's screens in every language; only bounds a run that hangs


def run(app: str, out: Path, langs: list[str], kivy_home: Path) -> dict[str, Any]:
    """Run one app's gallery in a child process (Kivy's window is global to a process); its JSON report."""
    from tests.support.window_child import run_window_child

    return run_window_child(["-m", "tests.support.gallery", app, str(out), *langs], kivy_home, GALLERY_S)


def main(argv: list[str]) -> int:  # pragma: no cover - runs in the child
    app, out, langs = argv[0], Path(argv[1]), argv[2:]
    from ui.kivy_env import configure_kivy

    size = {"kiosk": KIOSK_SIZE, "counter": COUNTER_SIZE, "display": DISPLAY_SIZE}[app]
    if app == "display":
        from display.window import configure

        configure(windowed=True, size=size, headless=True)
    else:
        configure_kivy(windowed=True, size=size, headless=True)
    from kivy.base import EventLoop

    EventLoop.ensure_window()
    runners: dict[str, Callable[[Path, list[str]], dict[str, Any]]] = {"kiosk": kiosk, "counter": counter,
                                                                        "display": display}
    report = runners[app](out, langs)
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
