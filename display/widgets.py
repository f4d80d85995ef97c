"""The parts of the display's window, each made once and then only told what changed.

Why not rebuild a part from its slice of the Board: making Kivy widgets is what costs (a board of
~40 labels took ~90 ms to rebuild on this machine, most of it in widget and label construction),
and a call must reach the screen within a frame. So every part keeps its widgets, and `show` sets
only the texts, colours and directions that differ from what is on screen: a label whose text did
not change is not rendered again, and a new call re-renders a handful of labels, not forty.

In a right-to-left language (Arabic) each part puts the same widgets in mirrored order (`ordered`) and aligns
its words to the right: the called number on the right, the lists on the left, the topic strip from the right.
The arrows are never mirrored: they point where the counter is in the hall, whatever the language.

Kivy must be configured (display.window.configure) before this module is imported.
"""

from __future__ import annotations

from typing import Any

from kivy.graphics import Color, Line, Mesh, Rectangle, RoundedRectangle
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from display import arrow
from display.board import CallView, Header, Labels, Notice, QueueView, Text, msg
from ui import i18n
from ui.kivy_env import DIGIT_EM, FONT, FONT_BOLD, RGBA, rgba
from ui.kivy_text import FitLabel, align
from ui.text_shaping import is_rtl_language

BACKGROUND, PANEL, TEXT, MUTED, HIGHLIGHT = "#0b1622", "#14233a", "#ffffff", "#a9bbcf", "#ffd23f"
NONE: RGBA = (0.0, 0.0, 0.0, 0.0)
COLUMN_UNITS = 71.0  # the middle row's height in hundredths of the window's (header 10, queues 14, gaps)
CURRENT_ROWS = 5  # at most this many other counters' calls beside the big one
CURRENT_ROW_U, HISTORY_ROW_U, TITLE_U = 9.0, 6.0, 5.0


def say(item: Text | None, lang: str) -> str:
    return "" if item is None else i18n.render(item, lang)


def box_label(text: str, size: float, colour: str = TEXT, *, bold: bool = False, halign: str = "left",
              lines: int = 1, **kwargs: Any) -> Label:
    """A label that fills its box: one line shortened with an ellipsis, or wrapped to at most `lines`."""
    fit: dict[str, Any] = {"shorten": True, "shorten_from": "right"} if lines == 1 else {"max_lines": lines}
    label = Label(text=text, font_size=size, color=rgba(colour), font_name=FONT_BOLD if bold else FONT,
                  halign=halign, valign="middle", **fit, **kwargs)
    label.bind(size=lambda widget, box: setattr(widget, "text_size", box))
    return label


def fit_label(largest: float, smallest: float, colour: str, *, bold: bool = False, lines: int = 1,
              **kwargs: Any) -> FitLabel:
    """A label whose words shrink (down to `smallest`), then wrap to at most `lines`, then hyphenate to fit."""
    return FitLabel(words="", largest=largest, smallest=smallest, max_lines=lines, color=rgba(colour),
                    font_name=FONT_BOLD if bold else FONT, halign="left", **kwargs)


def put(widget: Any, **values: Any) -> None:
    """Set properties that differ (Kivy re-renders a label on any assignment to its text, even an equal one)."""
    for name, value in values.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)


def ordered(children: list[Widget], lang: str) -> list[Widget]:
    """A row's parts in reading order: from the right in a right-to-left language, so the row is mirrored.
    Only the order: an arrow inside a row still points where its counter is (the hall is not mirrored)."""
    return list(reversed(children)) if is_rtl_language(lang) else children


def paint(colour: Color, value: RGBA) -> None:
    if tuple(colour.rgba) != value:
        colour.rgba = value


def arrange(box: Widget, children: list[Widget]) -> None:
    """Make these (already made) widgets the box's children, in order, touching nothing if they are already."""
    if list(reversed(box.children)) != children:
        box.clear_widgets()
        for child in children:
            box.add_widget(child)


class Filled(BoxLayout):
    """A box with a background fill (rounded) and an optional frame, both recoloured without a rebuild."""

    def __init__(self, fill: RGBA, radius: float = 0, frame_width: float = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._radius, self._frame_width = radius, frame_width
        with self.canvas.before:
            self.fill = Color(*fill)
            self._shape = RoundedRectangle(radius=[radius]) if radius else Rectangle()
            self.frame = Color(*NONE)
            self._line = Line(width=max(1.0, frame_width))
        self.bind(pos=self._place, size=self._place)

    def _place(self, *_: Any) -> None:
        self._shape.pos, self._shape.size = self.pos, self.size
        inset = self._frame_width / 2
        self._line.rounded_rectangle = (self.x + inset, self.y + inset, max(0, self.width - 2 * inset),
                                        max(0, self.height - 2 * inset), max(1.0, self._radius))


class ArrowWidget(Widget):
    """The direction sign, drawn as triangles (display/arrow.py) in the largest square that fits."""

    def __init__(self, direction: str, colour: RGBA, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direction = direction
        with self.canvas:
            self.colour = Color(*colour)
            self._mesh = Mesh(mode="triangles")
        self.bind(pos=self._draw, size=self._draw)

    def point(self, direction: str) -> None:
        if direction != self.direction:
            self.direction = direction
            self._draw()

    def _draw(self, *_: Any) -> None:
        side = min(self.width, self.height)
        vertices, indices = arrow.mesh(self.direction, self.center_x - side / 2, self.center_y - side / 2, side)
        self._mesh.vertices, self._mesh.indices = vertices, indices


class HeaderBar(Filled):
    def __init__(self, unit: float, colour: str) -> None:
        super().__init__(rgba(colour), orientation="horizontal", size_hint_y=None, height=unit * 10,
                         padding=[unit * 3, 0], spacing=unit * 2)
        self.hall = box_label("", unit * 4.2, bold=True, size_hint_x=0.6)
        self.mark = box_label("", unit * 2.4, MUTED, halign="right", size_hint_x=0.2)  # "reconnecting", discreetly
        self.clock = box_label("", unit * 6, bold=True, halign="right", size_hint_x=0.2)
        for label in (self.hall, self.mark, self.clock):
            self.add_widget(label)

    def show(self, header: Header, mark: str) -> None:
        arrange(self, ordered([self.hall, self.mark, self.clock], header.lang))
        put(self.hall, halign=align("start", header.lang))
        for label in (self.mark, self.clock):
            put(label, halign=align("end", header.lang))
        put(self.hall, text=header.hall_name)
        put(self.mark, text=mark)
        put(self.clock, text=header.clock)


class HeroPanel(Filled):
    """The newest call: its number the largest thing on screen, the way to its counter beside the arrow."""

    def __init__(self, unit: float) -> None:
        super().__init__(rgba(PANEL), radius=unit * 2, frame_width=unit * 1.2, orientation="vertical",
                         padding=[unit * 3, unit * 2], size_hint_x=0.6)
        self.unit = unit
        self.idle = box_label("", unit * 4, MUTED, halign="center")
        self.caption = box_label("", unit * 3.6, bold=True, halign="center", size_hint_y=0.1)
        self.number = box_label("", unit * 34, bold=True, halign="center", size_hint_y=0.52)
        self.arrow = ArrowWidget("ahead", rgba(TEXT), size_hint_x=0.28)
        self.counter = box_label("", unit * 7.5, bold=True, size_hint_y=0.45)
        self.direction = box_label("", unit * 3.8, size_hint_y=0.28)
        self.place = box_label("", unit * 3.2, size_hint_y=0.27)
        self.words = BoxLayout(orientation="vertical")
        for label in (self.counter, self.direction, self.place):
            self.words.add_widget(label)
        self.row = BoxLayout(orientation="horizontal", size_hint_y=0.38, spacing=unit * 3)

    def show(self, view: CallView | None, labels: Labels, width: float) -> None:
        if view is None:
            arrange(self, [self.idle])
            paint(self.fill, rgba(PANEL))
            paint(self.frame, NONE)
            put(self.idle, text=say(labels.idle, labels.lang))
            return
        arrange(self, [self.caption, self.number, self.row])
        paint(self.fill, rgba(view.colour))
        paint(self.frame, rgba(HIGHLIGHT) if view.highlight else NONE)
        fits = (width - self.unit * 9) / (DIGIT_EM * max(1, len(view.number)))  # the panel less its paddings
        put(self.number, text=view.number, font_size=min(self.unit * 34, fits * 0.95))
        put(self.caption, text=say(msg("display.recall"), view.lang) if view.recall else "")
        arrange(self.row, ordered([self.arrow, self.words], view.lang))  # the words beside the arrow, mirrored
        self.arrow.point(view.direction)  # never mirrored: it shows where the counter really is
        for label in (self.counter, self.direction, self.place):
            put(label, halign=align("start", view.lang))
        put(self.counter, text=view.counter_name)
        put(self.direction, text=say(view.direction_text, view.lang))
        put(self.place, text=view.place)


class CallRow(BoxLayout):
    """One line of the side lists: the number on its topic colour, the arrow, the counter."""

    def __init__(self, height: float, unit: float, *, muted: bool) -> None:
        super().__init__(orientation="horizontal", size_hint_y=None, height=height, spacing=unit * 1.5)
        self.muted = muted
        self.chip = Filled(NONE, radius=unit, frame_width=unit * 0.6, size_hint_x=0.36)
        self.number = box_label("", height * 0.62, MUTED if muted else TEXT, bold=True, halign="center")
        self.chip.add_widget(self.number)
        self.arrow = ArrowWidget("ahead", rgba(MUTED if muted else TEXT), size_hint_x=0.12)
        self.counter = box_label("", height * 0.5, MUTED if muted else TEXT, bold=not muted, size_hint_x=0.52)

    def show(self, view: CallView) -> None:
        arrange(self, ordered([self.chip, self.arrow, self.counter], view.lang))
        put(self.counter, halign=align("start", view.lang))
        paint(self.chip.fill, rgba(view.colour, 0.55 if self.muted else 1.0))
        paint(self.chip.frame, rgba(HIGHLIGHT) if view.highlight else NONE)
        put(self.number, text=view.number)
        self.arrow.point(view.direction)
        put(self.counter, text=view.counter_name)


class RowPool:
    """Rows that stay with their ticket: when a new call pushes the list down, the rows move, and no label of
    theirs is rendered again (a row re-texted for the ticket below it would be, two labels a row)."""

    def __init__(self, make: Any, size: int) -> None:
        self.rows: dict[str, CallRow] = {}
        self.spare = [make() for _ in range(size)]

    def rows_for(self, views: tuple[CallView, ...]) -> list[CallRow]:
        wanted = {view.number for view in views}
        for number in [n for n in self.rows if n not in wanted]:
            self.spare.append(self.rows.pop(number))
        rows = []
        for view in views:
            row = self.rows.get(view.number) or self.rows.setdefault(view.number, self.spare.pop())
            row.show(view)
            rows.append(row)
        return rows


class SidePanel(BoxLayout):
    """The other counters' current calls, then earlier calls, as many as the column holds."""

    def __init__(self, unit: float) -> None:
        super().__init__(orientation="vertical", size_hint_x=0.4, spacing=unit * 1.2, padding=[unit * 2, 0, 0, 0])
        self.unit = unit
        self.now_title = box_label("", unit * 3.2, MUTED, bold=True, size_hint_y=None, height=unit * TITLE_U)
        self.earlier_title = box_label("", unit * 3.2, MUTED, bold=True, size_hint_y=None, height=unit * TITLE_U)
        self.current = RowPool(lambda: CallRow(unit * CURRENT_ROW_U, unit, muted=False), CURRENT_ROWS)
        gap = self.spacing / unit
        most_history = int((COLUMN_UNITS - TITLE_U - gap) // (HISTORY_ROW_U + gap))
        self.history = RowPool(lambda: CallRow(unit * HISTORY_ROW_U, unit, muted=True), most_history)
        self.filler = Widget()

    def show(self, labels: Labels, current: tuple[CallView, ...], history: tuple[CallView, ...]) -> None:
        rtl = is_rtl_language(labels.lang)
        put(self, padding=[0, 0, self.unit * 2, 0] if rtl else [self.unit * 2, 0, 0, 0])  # the gap on the hero's side
        for title in (self.now_title, self.earlier_title):
            put(title, halign=align("start", labels.lang))
        gap = self.spacing / self.unit
        room = COLUMN_UNITS
        children: list[Widget] = []
        shown = current[:min(CURRENT_ROWS, int((room - TITLE_U) // (CURRENT_ROW_U + gap)))]
        if shown:
            put(self.now_title, text=say(labels.now_serving, labels.lang))
            children.append(self.now_title)
            room -= TITLE_U + gap + len(shown) * (CURRENT_ROW_U + gap)
        children += self.current.rows_for(shown)
        earlier = history[:max(0, int((room - TITLE_U - gap) // (HISTORY_ROW_U + gap)))]
        if earlier:
            put(self.earlier_title, text=say(labels.earlier, labels.lang))
            children.append(self.earlier_title)
        children += self.history.rows_for(earlier)
        arrange(self, [*children, self.filler])


class QueueCell(Filled):
    def __init__(self, unit: float) -> None:
        super().__init__(rgba(PANEL), radius=unit, orientation="horizontal", padding=[unit * 0.8, unit * 0.8],
                         spacing=unit)
        self.letter_box = Filled(NONE, radius=unit * 0.8, size_hint_x=None, width=unit * 6)
        self.letter = box_label("", unit * 4.8, bold=True, halign="center")
        self.letter_box.add_widget(self.letter)
        # fitted, not shortened: a long German name shrinks, then wraps at a hyphenation point, never "Keine…"
        self.name = fit_label(unit * 2.0, unit * 1.5, TEXT, bold=True, lines=2, size_hint_y=0.5)
        self.waiting = fit_label(unit * 2.0, unit * 1.3, MUTED, size_hint_y=0.25)
        self.wait = fit_label(unit * 2.0, unit * 1.3, MUTED, size_hint_y=0.25)
        self.words = BoxLayout(orientation="vertical")
        for label in (self.name, self.waiting, self.wait):
            self.words.add_widget(label)

    def show(self, view: QueueView, lang: str) -> None:
        arrange(self, ordered([self.letter_box, self.words], lang))
        paint(self.letter_box.fill, rgba(view.colour))
        put(self.letter, text=view.letter)
        for label, words in ((self.name, view.name), (self.waiting, say(view.waiting, lang)),
                             (self.wait, say(view.wait, lang))):
            put(label, lang=lang, halign=align("start", lang), words=words)


class QueueBar(BoxLayout):
    """One cell per topic this display shows: its letter, name, how many wait and about how long."""

    def __init__(self, unit: float) -> None:
        super().__init__(orientation="horizontal", size_hint_y=None, height=unit * 14, spacing=unit * 1.2,
                         padding=[unit * 3, unit * 1.5])
        self.unit = unit
        self.cells: dict[str, QueueCell] = {}

    def show(self, queues: tuple[QueueView, ...], lang: str) -> None:
        for view in queues:
            if view.topic not in self.cells:
                self.cells[view.topic] = QueueCell(self.unit)
            self.cells[view.topic].show(view, lang)
        arrange(self, ordered([self.cells[view.topic] for view in queues], lang))


class NoticePanel(BoxLayout):
    """The closed board's (or the starting board's) message, over the whole middle of the screen."""

    def __init__(self, unit: float) -> None:
        super().__init__(orientation="vertical", padding=[unit * 6, unit * 8], spacing=unit * 2)
        self.title = box_label("", unit * 11, bold=True, halign="center", size_hint_y=0.4)
        self.body = box_label("", unit * 4.5, MUTED, halign="center", lines=2, size_hint_y=0.2)
        for child in (Widget(size_hint_y=0.2), self.title, self.body, Widget(size_hint_y=0.2)):
            self.add_widget(child)

    def show(self, notice: Notice) -> None:
        put(self.title, text=say(notice.title, notice.lang))
        put(self.body, text=say(notice.body, notice.lang))
