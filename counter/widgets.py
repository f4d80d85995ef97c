"""The counter panel's drawer: one method per section of the Panel, each filling one box of the window.

Each method fills one box from one section of the frozen Panel, so the window can redraw only the section that
changed. What keeps its shape is updated in place: the header, the key row, the queue's rows, the notice line, and
the visitor's card while the same visitor is served keep their widgets and only take new words, colours and
inputs. A Kivy label draws a new texture for every text it is given, and a rebuilt row draws all of its labels
again (two or three times while its new boxes settle): rebuilding the keys and the queue on every reply cost ~265
label textures a call (~16 now), each malloc'd and freed under a software GL driver, which is what made the
panel's heap grow. Sections whose shape changes (another visitor, other alerts, a forwarded ticket) are built anew.

In a right-to-left language (Arabic) every row reads from the right: the key row starts with "next" on the right,
a queue row with its letter, and left/right alignments are mirrored; numbers stay left to right inside the words
(ui.kivy_env's shaping label). No flow logic here: a button only carries the model input it stands for.

Kivy must be configured (ui.kivy_env.configure_kivy) before this module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from counter.model_types import ActionView, AlertView, Current, ForwardedRow, Header, Msg, Next, QueueRow, Text, msg
from counter.parts import (
    Box,
    Press,
    PressButton,
    Theme,
    fill_label,
    fitted_line,
    line,
    tile_colours,
    word_label,
)
from counter.texts import clock, language_line, render
from ui.kivy_env import DIGIT_EM, FONT_BOLD, RGBA, rgba
from ui.kivy_text import FitLabel
from ui.text_shaping import base_direction, has_rtl, is_rtl_language

RLM = "\u200f"  # RIGHT-TO-LEFT MARK: zero width, a strong right-to-left letter for the line's direction
__all__ = ["Box", "Drawer", "PressButton", "Theme", "fill_label", "fitted_line", "line", "rgba", "tile_colours",
           "word_label"]


@dataclass
class Built:
    """What a section was built as: its box, the theme it was sized by, its shape, and the widgets to update."""

    box: Widget
    theme: Theme
    shape: Any
    parts: Any


@dataclass
class VisitorParts:
    """The visitor's card: the serving timer, and for a visitor their number, detail lines and last-known line."""

    timer: Label
    number: Label | None = None
    details: BoxLayout | None = None
    stale: Label | None = None


@dataclass
class RowParts:
    """The widgets of one queue row that change with the queue."""

    detail: Label
    count: Label
    call: PressButton
    call_label: Label


class Drawer:
    """Fills the panel's boxes from its sections; `say` renders a text in the staff's language."""

    def __init__(self, theme: Theme, lang: str, press: Press) -> None:
        self.theme, self.lang, self.press = theme, lang, press
        self.rtl = is_rtl_language(lang)
        self.timer: Label | None = None
        self._built: dict[str, Built] = {}

    def say(self, item: Text) -> str:
        return self.mark(render(item, self.lang))

    def mark(self, text: str) -> str:
        """Text for a right-to-left panel: each line that starts with a number or a Latin word ("A001 · ...") is
        led by a right-to-left mark, so that it is laid out right to left like the others (the number at the
        reading start, on the right) and not as a left-to-right line because its first letter is Latin."""
        if not self.rtl:
            return text
        return "\n".join(RLM + part if has_rtl(part) and base_direction(part) == "ltr" else part
                         for part in text.split("\n"))

    def row(self, **kwargs: Any) -> Box:
        """A horizontal box that reads from the right in a right-to-left language."""
        return Box(rtl=self.rtl, **kwargs)

    def _reuse(self, name: str, box: Widget, shape: Any) -> Any:
        """The parts of a section still on screen in the same shape (the same box, theme and structure), or None."""
        built = self._built.get(name)
        if built is not None and built.box is box and built.theme is self.theme and built.shape == shape:
            return built.parts
        return None

    def _keep(self, name: str, box: Widget, shape: Any, parts: Any) -> Any:
        self._built[name] = Built(box, self.theme, shape, parts)
        return parts

    def _fill_row(self, box: BoxLayout, widgets: list[Widget]) -> None:
        """Put a row's widgets into a box made by the window, in reading order."""
        box.clear_widgets()
        for widget in reversed(widgets) if self.rtl else widgets:
            box.add_widget(widget)

    # ------------------------------------------------------------ header

    def header(self, box: BoxLayout, header: Header) -> None:
        theme = self.theme
        parts = self._reuse("header", box, ())
        if parts is None:
            name = fill_label("", theme.size(4.2), theme.text, bold=True, size_hint_x=0.3, lang=self.lang)
            pill = Box(fill=theme.faint, radius=8, size_hint_x=0.26, padding=[theme.size(1.2), 0])
            status = fill_label("", theme.size(2.8), theme.white, bold=True, halign="center")
            pill.add_widget(status)
            served = fill_label("", theme.size(2.4), theme.muted, halign="center", size_hint_x=0.2)
            link = Box(fill=theme.next, radius=8, size_hint_x=0.24, padding=[theme.size(1.2), 0])
            link_label = fill_label("", theme.size(2.4), theme.white, bold=True, halign="center", shorten=True)
            link.add_widget(link_label)
            self._fill_row(box, [name, pill, served, link])
            parts = self._keep("header", box, (), (name, pill, status, served, link, link_label))
        name, pill, status, served, link, link_label = parts
        words = self.say(Msg("counter.status." + header.status)) if header.status else ""
        if header.reason is not None:
            words += " · " + self.say(header.reason)
        name.text, status.text = header.counter, words
        pill.set_fill(theme.status.get(header.status, theme.faint))
        served.text = self.say(msg("counter.served_today", n=header.served_today))
        link.set_fill(theme.next if header.link == "online" else theme.levels["error"])
        link_label.text = self.say(msg("counter.link." + header.link))

    # ------------------------------------------------------------ the visitor

    def current(self, box: BoxLayout, current: Current | None, serving_s: int | None) -> None:
        """The visitor's card: built anew for another visitor; for the same one (called again, the connection lost
        or back) only its colour, its detail lines and the last-known line change."""
        shape = None if current is None else (current.number, current.topic, current.lang, current.colour)
        parts: VisitorParts | None = self._reuse("current", box, shape)
        if parts is None:
            parts = self._keep("current", box, shape, self._build_current(box, current))
        self.timer = parts.timer
        self.set_timer(serving_s)
        if current is None or parts.number is None or parts.details is None or parts.stale is None:
            return
        _colour(parts.number, self.theme.faint if current.stale else rgba(current.colour))
        texts = [self.mark(text) for text in self._details(current)]
        shown = list(reversed(parts.details.children))
        if len(shown) == len(texts):
            for label, text in zip(shown, texts, strict=True):
                label.text = text
        else:
            parts.details.clear_widgets()
            for text in texts:
                parts.details.add_widget(line(text, self.theme.size(2.5), self.theme.muted, lang=self.lang))
        parts.stale.text = self.say(msg("counter.current.stale")) if current.stale else ""

    def _build_current(self, box: BoxLayout, current: Current | None) -> VisitorParts:
        theme, lang = self.theme, self.lang
        box.clear_widgets()
        top = self.row(size_hint_y=None, height=theme.size(5))
        top.add_widget(fill_label(self.say(msg("counter.current.title")), theme.size(2.6), theme.muted, bold=True,
                                  size_hint_x=0.4, shorten=True, lang=lang))
        timer = fill_label("", theme.size(3.0), theme.text, bold=True, halign="right", shorten=True, lang=lang)
        top.add_widget(timer)
        box.add_widget(top)
        if current is None:
            box.add_widget(Widget())
            box.add_widget(line(self.say(msg("counter.current.none")), theme.size(3.2), theme.muted,
                                halign="center"))
            box.add_widget(Widget())
            return VisitorParts(timer)
        number = self._number(box, current)
        box.add_widget(number)
        box.add_widget(line(self.mark(current.topic), theme.size(3.6), theme.text, bold=True, lang=lang))
        language = self.say(msg("counter.current.lang", language=language_line(current.lang, lang)))
        box.add_widget(line(language, theme.size(3.4), theme.levels["info"], bold=True, lang=lang))
        details = BoxLayout(orientation="vertical", size_hint_y=None, height=0, spacing=theme.size(0.6))
        details.bind(minimum_height=details.setter("height"))
        box.add_widget(details)
        box.add_widget(Widget())
        stale = line("", theme.size(2.6), theme.levels["error"], bold=True, lang=lang)
        box.add_widget(stale)
        return VisitorParts(timer, number, details, stale)

    def _number(self, box: BoxLayout, current: Current) -> Label:
        """The ticket number on one line, as large as the box allows, leaving room for the lines below it."""
        theme = self.theme
        number = Label(text=current.number, font_name=FONT_BOLD, font_size=theme.size(20),
                       color=theme.faint if current.stale else rgba(current.colour), size_hint_y=None,
                       halign="right" if self.rtl else "left", valign="middle")
        length = max(1, len(current.number))

        def fit(*_: Any) -> None:
            width = number.width
            number.font_size = max(theme.size(4), min(theme.size(20), width / (DIGIT_EM * length), box.height * 0.3))
            number.text_size = (width, None)

        number.bind(width=fit, texture_size=lambda widget, texture: setattr(widget, "height", texture[1]))
        fit()
        return number

    def _details(self, current: Current) -> list[str]:
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
        return details

    def set_timer(self, serving_s: int | None) -> None:
        if self.timer is not None:
            self.timer.text = "" if serving_s is None else self.say(
                msg("counter.current.serving", time=clock(serving_s)))

    # ------------------------------------------------------------ the queue

    def queue(self, box: BoxLayout, rows: tuple[QueueRow, ...], forwarded: tuple[ForwardedRow, ...]) -> None:
        shape = (tuple((row.topic, row.tier, row.letter, row.name, row.colour) for row in rows), forwarded)
        parts: list[RowParts] | None = self._reuse("queue", box, shape)
        if parts is None:
            parts = self._keep("queue", box, shape, self._build_queue(box, rows, forwarded))
        for row, row_parts in zip(rows, parts, strict=True):
            self._update_row(row_parts, row)

    def _build_queue(self, box: BoxLayout, rows: tuple[QueueRow, ...],
                     forwarded: tuple[ForwardedRow, ...]) -> list[RowParts]:
        theme, lang = self.theme, self.lang
        box.clear_widgets()
        if forwarded:
            block = Box(fill=theme.levels["forward"], radius=10, orientation="vertical", size_hint_y=None,
                        padding=[theme.size(1.2), theme.size(0.8)], spacing=theme.size(0.3))
            block.add_widget(line(self.say(msg("counter.queue.forwarded")), theme.size(2.4), theme.white,
                                  bold=True, lang=lang))
            for ticket in forwarded[:4]:
                waited = "" if ticket.waited_min is None else self.say(msg("counter.queue.waited",
                                                                           minutes=ticket.waited_min))
                parts = [ticket.number, ticket.topic, ticket.from_counter, waited]
                block.add_widget(line(self.mark(" · ".join(part for part in parts if part)), theme.size(2.4),
                                      theme.white, bold=True, lang=lang))
                if ticket.note:
                    block.add_widget(line(f"“{ticket.note}”", theme.size(2.1), theme.white, lang=lang))
            block.bind(minimum_height=block.setter("height"))
            box.add_widget(block)
        box.add_widget(line(self.say(msg("counter.queue.title")), theme.size(2.6), theme.muted, bold=True, lang=lang))
        made = []
        for row in rows:
            widget, row_parts = self._queue_row(row)
            box.add_widget(widget)
            made.append(row_parts)
        box.add_widget(Widget())
        return made

    def _queue_row(self, row: QueueRow) -> tuple[Widget, RowParts]:
        theme, lang = self.theme, self.lang
        faded = row.tier > 0
        item = self.row(size_hint_y=None, height=theme.size(6.4), spacing=theme.size(1))
        fill, ink = tile_colours(row.colour, faded)
        letter = Box(fill=fill, radius=6, size_hint_x=None, width=theme.size(6))
        letter.add_widget(fill_label(row.letter, theme.size(3.2), ink, bold=True, halign="center"))
        item.add_widget(letter)
        words = BoxLayout(orientation="vertical")
        words.add_widget(fill_label(self.mark(row.name), theme.size(2.3), theme.muted if faded else theme.text,
                                    bold=not faded, shorten=True, lang=lang))
        detail = fill_label("", theme.size(1.9), theme.muted, shorten=True, lang=lang)
        words.add_widget(detail)
        item.add_widget(words)
        count = fill_label("", theme.size(3.6), theme.faint, bold=True, halign="right", size_hint_x=None,
                           width=theme.size(7), lang=lang)
        item.add_widget(count)
        call = PressButton("call:" + row.topic, Next(row.topic), self.press, theme.disabled, size_hint_x=None,
                           width=theme.size(11))
        call_label = fill_label(self.say(msg("counter.queue.call")), theme.size(2.1), theme.disabled_text, bold=True,
                                halign="center")
        call.add_widget(call_label)
        item.add_widget(call)
        return item, RowParts(detail, count, call, call_label)

    def _update_row(self, parts: RowParts, row: QueueRow) -> None:
        theme = self.theme
        detail = self.say(msg("counter.queue.longest", minutes=row.longest_wait_min)) \
            if row.waiting and row.longest_wait_min is not None else ""
        if row.priority:
            detail += ("  · " if detail else "") + self.say(msg("counter.queue.priority", n=row.priority))
        parts.detail.text = detail
        parts.count.text = str(row.waiting)
        _colour(parts.count, theme.text if row.waiting else theme.faint)
        parts.call.set_fill(theme.button if row.can_call else theme.disabled)
        _colour(parts.call_label, theme.button_text if row.can_call else theme.disabled_text)

    # ------------------------------------------------------------ actions

    def actions(self, box: BoxLayout, actions: tuple[ActionView, ...]) -> None:
        shape = tuple(action.id for action in actions)
        keys: list[PressButton] | None = self._reuse("actions", box, shape)
        if keys is None:
            made = [self.action_button(action, size_hint_x=1.4 if action.id == "next" else 1.0) for action in actions]
            self._fill_row(box, list(made))
            self._keep("actions", box, shape, made)
            return
        for key, action in zip(keys, actions, strict=True):
            self._update_key(key, action)

    def _key_colours(self, action: ActionView) -> tuple[RGBA, RGBA]:
        theme = self.theme
        if action.busy:
            return theme.busy, theme.text
        if action.enabled:
            return (theme.next if action.id in ("next", "confirm") else theme.button), theme.button_text
        return theme.disabled, theme.disabled_text

    def action_button(self, action: ActionView, **kwargs: Any) -> PressButton:
        theme = self.theme
        fill, ink = self._key_colours(action)
        widget = PressButton(action.id, action.action, self.press, fill, orientation="vertical",
                             padding=[theme.size(0.6), theme.size(0.6)], **kwargs)
        widget.add_widget(word_label(self.say(action.label), theme.size(2.2), ink, self.lang))
        widget.add_widget(fill_label(action.key, theme.size(2.0), ink, halign="center", size_hint_y=0.45))
        return widget

    def _update_key(self, key: PressButton, action: ActionView) -> None:
        """The same key with another state: its fill, its words' colour and the input it stands for."""
        fill, ink = self._key_colours(action)
        key.set_fill(fill)
        key.action = action.action
        face, label = reversed(key.children)  # added face first: children are last-added first
        if isinstance(face, FitLabel):
            face.words = self.say(action.label)
        _colour(face, ink)
        label.text = action.key
        _colour(label, ink)

    # ------------------------------------------------------------ alerts

    def alerts(self, box: BoxLayout, alerts: tuple[AlertView, ...], notice: AlertView | None, room: int) -> None:
        theme = self.theme
        notice_label: Label | None = self._reuse("alerts", box, (alerts, room))
        if notice_label is None:
            notice_label = self._keep("alerts", box, (alerts, room), self._build_alerts(box, alerts, room))
        colour = theme.levels["error"] if notice is not None and notice.level == "error" else \
            theme.levels["warning"] if notice is not None and notice.level == "warning" else theme.text
        notice_label.text = self.say(notice.text) if notice is not None else ""
        _colour(notice_label, colour)

    def _build_alerts(self, box: BoxLayout, alerts: tuple[AlertView, ...], room: int) -> Label:
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
        notice = fill_label("", theme.size(2.6), theme.text, bold=True, shorten=True, size_hint_y=1, lang=self.lang)
        box.add_widget(notice)
        if len(shown) < room:
            box.add_widget(Widget(size_hint_y=room - len(shown)))
        return notice


def _colour(label: Label, colour: RGBA) -> None:
    """Set a label's colour only when it differs: Kivy draws the label's texture again for a new colour."""
    if tuple(label.color) != tuple(colour):
        label.color = colour

