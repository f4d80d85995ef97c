"""The counter panel's theme and its few widget primitives: filled boxes, touch targets, labels.

Apart from the drawer (counter/widgets.py) so that each stays a page or two. A label here is given the staff's
language: in a right-to-left language its "left" is the right (ui.kivy_text.align), and a horizontal Box given
`rtl=True` lays its children out from the right, so one layout written for Swedish reads mirrored in Arabic.

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

from counter.model_types import Input
from ui.kivy_env import FONT, FONT_BOLD, RGBA, rgba
from ui.kivy_text import FitLabel, align

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
    """A BoxLayout with a filled (optionally rounded) background; `rtl`: a horizontal one reads from the right.

    Children are still added in reading order, so one piece of code builds both; a right-to-left box keeps them
    in its list the other way round, which is what makes Kivy lay them out from the right.
    """

    def __init__(self, fill: RGBA | None = None, radius: float = 0, rtl: bool = False, **kwargs: Any) -> None:
        self.rtl = rtl
        super().__init__(**kwargs)
        self._fill: Color | None = None
        if fill is not None:
            with self.canvas.before:
                self._fill = Color(*fill)
                self._shape: Any = RoundedRectangle(radius=[radius]) if radius else Rectangle()
            self.bind(pos=self._draw, size=self._draw)

    def add_widget(self, widget: Widget, *args: Any, **kwargs: Any) -> None:
        # Kivy lays a horizontal box's children out from the left, last child first: a child put at the end of
        # the list instead of its start lands on the left, so the first one added ends up on the right
        if self.rtl and self.orientation == "horizontal" and not args and "index" not in kwargs:
            kwargs["index"] = len(self.children)
        super().add_widget(widget, *args, **kwargs)

    def _draw(self, *_: Any) -> None:
        self._shape.pos, self._shape.size = self.pos, self.size

    def set_fill(self, fill: RGBA) -> None:
        if self._fill is not None and tuple(self._fill.rgba) != tuple(fill):
            self._fill.rgba = fill


class PressButton(ButtonBehavior, Box):
    """A touch target that stands for one model input (`action`); `button_id` lets the tests find it."""

    def __init__(self, button_id: str, action: Input, press: Press, fill: RGBA, **kwargs: Any) -> None:
        super().__init__(fill=fill, radius=10, **kwargs)
        self.button_id = button_id
        self.action = action
        self.bind(on_release=lambda *_: press(self.action))


def fill_label(text: str, size: float, colour: RGBA, *, bold: bool = False, halign: str = "left",
               valign: str = "middle", shorten: bool = False, lang: str = "", **kwargs: Any) -> Label:
    """A label that fills its box and wraps (or shortens) its text to it; left and right mirrored for `lang`."""
    label = Label(text=text, font_size=size, color=colour, font_name=FONT_BOLD if bold else FONT,
                  halign=align(halign, lang), valign=valign, shorten=shorten, shorten_from="right", **kwargs)
    label.bind(size=lambda widget, box: setattr(widget, "text_size", (box[0], box[1])))
    return label


FADED = 0.55  # a lower tier's tile: the topic colour this much over the white card


def tile_colours(colour: str, faded: bool) -> tuple[RGBA, RGBA]:
    """A topic tile's fill and its (white) letter: >= 4.5:1, or 3:1 when faded (broker.colours.tile_fill)."""
    from broker.colours import tile_fill

    return rgba(tile_fill(colour, FADED if faded else 1.0)), (1.0, 1.0, 1.0, 1.0)


def word_label(text: str, size: float, colour: RGBA, lang: str = "", **kwargs: Any) -> FitLabel:
    """A centred bold label for a key's face: its font shrinks (from `size`, to half of it) until its words fit
    the face between words, above the key's own label ("Kalla igen" over "+"); only then is a word hyphenated."""
    return FitLabel(words=text, largest=size, smallest=max(8.0, size * 0.5), lang=lang, color=colour,
                    font_name=FONT_BOLD, halign="center", **kwargs)


def fitted_line(text: str, size: float, colour: RGBA, lang: str, *, bold: bool = False, halign: str = "start",
                **kwargs: Any) -> FitLabel:
    """One line that shrinks (to 70 %) to fit its box, shaped and aligned for its language (alert strips)."""
    return FitLabel(words=text, largest=size, smallest=size * 0.7, max_lines=1, lang=lang, color=colour,
                    font_name=FONT_BOLD if bold else FONT, halign=halign, **kwargs)


def line(text: str, size: float, colour: RGBA, *, bold: bool = False, halign: str = "left", lang: str = "") -> Label:
    """A label as tall as its wrapped text, for stacks of lines; left and right mirrored for `lang`."""
    label = Label(text=text, font_size=size, color=colour, font_name=FONT_BOLD if bold else FONT,
                  halign=align(halign, lang), valign="middle", size_hint_y=None, height=0)  # an empty one takes no room
    label.bind(width=lambda widget, width: setattr(widget, "text_size", (width, None)),
               texture_size=lambda widget, texture: setattr(widget, "height", texture[1]))
    return label
