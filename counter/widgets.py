"""The counter panel's widgets: a theme, a few primitives, and one drawer per section of the Panel.

Each drawer fills one box from one section of the frozen Panel, so the window can redraw only the
section that changed (a queue count, a new visitor) and leave the rest of its textures alone. No flow
logic here: a button only carries the model input it stands for.

Kivy must be configured (ui.kivy_env.configure_kivy) before this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.graphics import Color, Rectangle, RoundedRectangle
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from counter.model_types import (
    ActionView,
    AlertView,
    Current,
    ForwardedRow,
    Header,
    Input,
    Msg,
    Next,
    QueueRow,
    Text,
    msg,
)
from counter.texts import clock, language_line, render
from ui.kivy_env import DIGIT_EM, FONT, FONT_BOLD, RGBA, rgba
from ui.kivy_text import FitLabel

Press = Callable[[Input], None]


class Theme:
    """Colours and sizes; one unit is one percent of the window's height."""

    def __init__(self, height: float) -> None:
        self.unit = height / 100.0
        self.background, self.card = rgba("#e9edf2"), rgba("#ffffff")
        self.text, self.muted, self.faint = rgba("#14202e"), rgba("#4a5868"), rgba("#8a96a3")
        self.button, self.button_text = rgba("#14365d"), rgba("#ffffff")
        self.next = rgba("#15803d")
        self.disabled, self.disabled_text = rgba("#cfd6de"), rgba("#5b6675")
        self.busy = rgba("#f2b705")
        self.selected = rgba("#f2b705")
        self.levels = {"error": rgba("#b42318"), "warning": rgba("#b54708"), "info": rgba("#175cd3"),
                       "forward": rgba("#6d28d9")}
        self.status = {"open": rgba("#15803d"), "paused": rgba("#b54708"), "closed": rgba("#5b6675"),
                       "": rgba("#8a96a3")}
        self.white = rgba("#ffffff")

    def size(self, factor: float) -> float:
        return max(11.0, self.unit * factor)


class Box(BoxLayout):
    """A BoxLayout with a filled (optionally rounded) background."""

    def __init__(self, fill: RGBA | None = None, radius: float = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fill: Color | None = None
        if fill is not None:
            with self.canvas.before:
                self._fill = Color(*fill)
                self._shape: Any = RoundedRectangle(radius=[radius]) if radius else Rectangle()
            self.bind(pos=self._draw, size=self._draw)

    def _draw(self, *_: Any) -> None:
        self._shape.pos, self._shape.size = self.pos, self.size

    def set_fill(self, fill: RGBA) -> None:
        if self._fill is not None:
            self._fill.rgba = fill


class PressButton(ButtonBehavior, Box):
    """A touch target that stands for one model input (`action`); `button_id` lets the tests find it."""

    def __init__(self, button_id: str, action: Input, press: Press, fill: RGBA, **kwargs: Any) -> None:
        super().__init__(fill=fill, radius=10, **kwargs)
        self.button_id = button_id
        self.action = action
        self.bind(on_release=lambda *_: press(self.action))


def fill_label(text: str, size: float, colour: RGBA, *, bold: bool = False, halign: str = "left",
               valign: str = "middle", shorten: bool = False, **kwargs: Any) -> Label:
    """A label that fills its box and wraps (or shortens) its text to it."""
    label = Label(text=text, font_size=size, color=colour, font_name=FONT_BOLD if bold else FONT, halign=halign,
                  valign=valign, shorten=shorten, shorten_from="right", **kwargs)
    label.bind(size=lambda widget, box: setattr(widget, "text_size", (box[0], box[1])))
    return label


FADED = 0.55  # a lower tier's tile: the topic colour this much over the white card


def tile_colours(colour: str, faded: bool) -> tuple[RGBA, RGBA]:
    """A topic tile's fill and its (white) letter: >= 4.5:1, or 3:1 when faded (broker.colours.tile_fill)."""
    from broker.colours import tile_fill

    return rgba(tile_fill(colour, FADED if faded else 1.0)), (1.0, 1.0, 1.0, 1.0)


def word_label(text: str, size: float, colour: RGBA, lang: str = "", **kwargs: Any) -> Label:
    """A centred bold label for a key's face: its font shrinks (from `size`, to half of it) until its words fit
    the face between words, above the key's own label ("Kalla igen" over "+"); only then is a word hyphenated."""
    return FitLabel(words=text, largest=size, smallest=max(8.0, size * 0.5), lang=lang, color=colour,
                    font_name=FONT_BOLD, halign="center", **kwargs)


def fitted_line(text: str, size: float, colour: RGBA, lang: str, *, bold: bool = False, halign: str = "start",
                **kwargs: Any) -> Label:
    """One line that shrinks (to 70 %) to fit its box, shaped and aligned for its language (alert strips)."""
    return FitLabel(words=text, largest=size, smallest=size * 0.7, max_lines=1, lang=lang, color=colour,
                    font_name=FONT_BOLD if bold else FONT, halign=halign, **kwargs)


def line(text: str, size: float, colour: RGBA, *, bold: bool = False, halign: str = "left") -> Label:
    """A label as tall as its wrapped text, for stacks of lines."""
    label = Label(text=text, font_size=size, color=colour, font_name=FONT_BOLD if bold else FONT, halign=halign,
                  valign="middle", size_hint_y=None)
    label.bind(width=lambda widget, width: setattr(widget, "text_size", (width, None)),
               texture_size=lambda widget, texture: setattr(widget, "height", texture[1]))
    return label


class Drawer:
    """Fills the panel's boxes from its sections; `say` renders a text in the staff's language."""

    def __init__(self, theme: Theme, lang: str, press: Press) -> None:
        self.theme, self.lang, self.press = theme, lang, press
        self.timer: Label | None = None

    def say(self, item: Text) -> str:
        return render(item, self.lang)

    # ------------------------------------------------------------ header

    def header(self, box: BoxLayout, header: Header) -> None:
        theme = self.theme
        box.clear_widgets()
        box.add_widget(fill_label(header.counter, theme.size(4.2), theme.text, bold=True, size_hint_x=0.3))
        status = self.say(Msg("counter.status." + header.status)) if header.status else ""
        if header.reason is not None:
            status += " · " + self.say(header.reason)
        pill = Box(fill=theme.status.get(header.status, theme.faint), radius=8, size_hint_x=0.26,
                   padding=[theme.size(1.2), 0])
        pill.add_widget(fill_label(status, theme.size(2.8), theme.white, bold=True, halign="center"))
        box.add_widget(pill)
        served = self.say(msg("counter.served_today", n=header.served_today))
        box.add_widget(fill_label(served, theme.size(2.4), theme.muted, halign="center", size_hint_x=0.2))
        online = header.link == "online"
        link = Box(fill=theme.next if online else theme.levels["error"], radius=8, size_hint_x=0.24,
                   padding=[theme.size(1.2), 0])
        link.add_widget(fill_label(self.say(msg("counter.link." + header.link)), theme.size(2.4), theme.white,
                                   bold=True, halign="center", shorten=True))
        box.add_widget(link)

    # ------------------------------------------------------------ the visitor

    def current(self, box: BoxLayout, current: Current | None, serving_s: int | None) -> None:
        theme = self.theme
        box.clear_widgets()
        self.timer = None
        top = BoxLayout(size_hint_y=None, height=theme.size(5))
        top.add_widget(fill_label(self.say(msg("counter.current.title")), theme.size(2.6), theme.muted, bold=True,
                                  size_hint_x=0.4, shorten=True))
        self.timer = fill_label("", theme.size(3.0), theme.text, bold=True, halign="right", shorten=True)
        top.add_widget(self.timer)
        box.add_widget(top)
        self.set_timer(serving_s)
        if current is None:
            box.add_widget(Widget())
            box.add_widget(line(self.say(msg("counter.current.none")), theme.size(3.2), theme.muted,
                                halign="center"))
            box.add_widget(Widget())
            return
        number = Label(text=current.number, font_name=FONT_BOLD, font_size=theme.size(20),
                       color=theme.faint if current.stale else rgba(current.colour), size_hint_y=None,
                       halign="left", valign="middle")
        length = max(1, len(current.number))

        def fit(*_: Any) -> None:  # one line, as large as the box allows, leaving room for the lines below it
            width = number.width
            number.font_size = max(theme.size(4), min(theme.size(20), width / (DIGIT_EM * length), box.height * 0.3))
            number.text_size = (width, None)

        number.bind(width=fit, texture_size=lambda widget, texture: setattr(widget, "height", texture[1]))
        fit()
        box.add_widget(number)
        box.add_widget(line(current.topic, theme.size(3.6), theme.text, bold=True))
        language = self.say(msg("counter.current.lang", language=language_line(current.lang, self.lang)))
        box.add_widget(line(language, theme.size(3.4), theme.levels["info"], bold=True))
        details: list[str] = []
        if current.priority:
            details.append(self.say(msg("counter.current.priority")))
        if current.recalls:
            details.append(self.say(msg("counter.current.recalls", n=current.recalls)))
        if current.from_counter:
            details.append(self.say(msg("counter.current.forwarded_from", counter=current.from_counter)))
        elif current.forwards:
            details.append(self.say(msg("counter.current.forwards", n=current.forwards)))
        if current.origin:
            details.append(self.say(msg("counter.current.origin", topic=current.origin)))
        if current.note:
            details.append(self.say(msg("counter.current.note", note=current.note)))
        for text in details:
            box.add_widget(line(text, theme.size(2.5), theme.muted))
        box.add_widget(Widget())
        if current.stale:
            box.add_widget(line(self.say(msg("counter.current.stale")), theme.size(2.6), theme.levels["error"],
                                bold=True))

    def set_timer(self, serving_s: int | None) -> None:
        if self.timer is not None:
            self.timer.text = "" if serving_s is None else self.say(
                msg("counter.current.serving", time=clock(serving_s)))

    # ------------------------------------------------------------ the queue

    def queue(self, box: BoxLayout, rows: tuple[QueueRow, ...], forwarded: tuple[ForwardedRow, ...]) -> None:
        theme = self.theme
        box.clear_widgets()
        if forwarded:
            block = Box(fill=theme.levels["forward"], radius=10, orientation="vertical", size_hint_y=None,
                        padding=[theme.size(1.2), theme.size(0.8)], spacing=theme.size(0.3))
            block.add_widget(line(self.say(msg("counter.queue.forwarded")), theme.size(2.4), theme.white,
                                  bold=True))
            for ticket in forwarded[:4]:
                waited = "" if ticket.waited_min is None else self.say(msg("counter.queue.waited",
                                                                           minutes=ticket.waited_min))
                parts = [ticket.number, ticket.topic, ticket.from_counter, waited]
                text = " · ".join(part for part in parts if part)
                block.add_widget(line(text, theme.size(2.4), theme.white, bold=True))
                if ticket.note:
                    block.add_widget(line(f"“{ticket.note}”", theme.size(2.1), theme.white))
            block.bind(minimum_height=block.setter("height"))
            box.add_widget(block)
        box.add_widget(line(self.say(msg("counter.queue.title")), theme.size(2.6), theme.muted, bold=True))
        for row in rows:
            box.add_widget(self._queue_row(row))
        box.add_widget(Widget())

    def _queue_row(self, row: QueueRow) -> Widget:
        theme = self.theme
        faded = row.tier > 0
        item = BoxLayout(size_hint_y=None, height=theme.size(6.4), spacing=theme.size(1))
        fill, ink = tile_colours(row.colour, faded)
        letter = Box(fill=fill, radius=6, size_hint_x=None, width=theme.size(6))
        letter.add_widget(fill_label(row.letter, theme.size(3.2), ink, bold=True, halign="center"))
        item.add_widget(letter)
        words = BoxLayout(orientation="vertical")
        words.add_widget(fill_label(row.name, theme.size(2.3), theme.muted if faded else theme.text, bold=not faded,
                                    shorten=True))
        detail = self.say(msg("counter.queue.longest", minutes=row.longest_wait_min)) \
            if row.waiting and row.longest_wait_min is not None else ""
        if row.priority:
            detail += ("  · " if detail else "") + self.say(msg("counter.queue.priority", n=row.priority))
        words.add_widget(fill_label(detail, theme.size(1.9), theme.muted, shorten=True))
        item.add_widget(words)
        item.add_widget(fill_label(str(row.waiting), theme.size(3.6), theme.text if row.waiting else theme.faint,
                                   bold=True, halign="right", size_hint_x=None, width=theme.size(7)))
        call = PressButton("call:" + row.topic, Next(row.topic), self.press,
                           theme.button if row.can_call else theme.disabled, size_hint_x=None, width=theme.size(11))
        call.add_widget(fill_label(self.say(msg("counter.queue.call")), theme.size(2.1),
                                   theme.button_text if row.can_call else theme.disabled_text, bold=True,
                                   halign="center"))
        item.add_widget(call)
        return item

    # ------------------------------------------------------------ actions

    def actions(self, box: BoxLayout, actions: tuple[ActionView, ...]) -> None:
        box.clear_widgets()
        for action in actions:
            box.add_widget(self.action_button(action, size_hint_x=1.4 if action.id == "next" else 1.0))

    def action_button(self, action: ActionView, **kwargs: Any) -> PressButton:
        theme = self.theme
        if action.busy:
            fill, ink = theme.busy, theme.text
        elif action.enabled:
            fill, ink = (theme.next if action.id in ("next", "confirm") else theme.button), theme.button_text
        else:
            fill, ink = theme.disabled, theme.disabled_text
        widget = PressButton(action.id, action.action, self.press, fill, orientation="vertical",
                             padding=[theme.size(0.6), theme.size(0.6)], **kwargs)
        widget.add_widget(word_label(self.say(action.label), theme.size(2.2), ink, self.lang))
        widget.add_widget(fill_label(action.key, theme.size(2.0), ink, halign="center", size_hint_y=0.45))
        return widget

    # ------------------------------------------------------------ alerts

    def alerts(self, box: BoxLayout, alerts: tuple[AlertView, ...], notice: AlertView | None, room: int) -> None:
        theme = self.theme
        box.clear_widgets()
        shown = list(alerts[:room])
        hidden = len(alerts) - len(shown)
        # Every row takes one share of the box reserved for alerts (`room` strips and the notice), never a fixed
        # height: however many alerts come, they stay inside their box and never cover the action keys.
        for alert in shown:
            strip = Box(fill=theme.levels.get(alert.level, theme.levels["info"]), radius=8,
                        padding=[theme.size(1.2), 0], size_hint_y=1)
            text = self.say(alert.text) + (f"   (+{hidden})" if hidden and alert is shown[-1] else "")
            strip.add_widget(fitted_line(text, theme.size(2.3), theme.white, self.lang, bold=True))
            box.add_widget(strip)
        colour = theme.levels["error"] if notice is not None and notice.level == "error" else \
            theme.levels["warning"] if notice is not None and notice.level == "warning" else theme.text
        box.add_widget(fill_label(self.say(notice.text) if notice is not None else "", theme.size(2.6), colour,
                                  bold=True, shorten=True, size_hint_y=1))
        if len(shown) < room:
            box.add_widget(Widget(size_hint_y=room - len(shown)))
