"""The one text widget of the kiosk, the counter panel and the hall display: a label that fits its box.

`FitLabel` is told its words (`words`), its language and the largest and smallest font size it may use;
whenever its box, words or sizes change it lays the words out with ui.text_fit (shrink, then wrap,
then hyphenate) and draws the lines at the size found. Measuring goes through Kivy's own core label, the
shaping one installed by ui.kivy_env, so Arabic is measured as it is drawn. `fitted` keeps the result:
the fit test (tests/test_fit.py) walks every screen and fails on any label whose words did not fit.

`grow=True` makes the label as tall as its lines (stacks of lines in a scrolling-free column): only its
width is fixed then. Alignment is given as "start"/"end" (or left/right/center): "start" is the left in
Swedish and the right in Arabic, so a mirrored screen needs no second layout.

Kivy must be configured (ui.kivy_env.configure_kivy) before this module is imported.
"""

from __future__ import annotations

from typing import Any

from kivy.core.text import Label as CoreLabelBase
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.label import Label

from ui.text_fit import Fitted, fit
from ui.text_shaping import is_rtl_language

_measurers: dict[tuple[str, float], Any] = {}


def _core(font_name: str, size: float) -> Any:
    """A core label per font and size, reused for measuring (each holds an open font).

    Keyed by the exact size the label is drawn at: a measurer at a rounded size opened a second font of its own
    next to the one drawing (each open font ~55 KB of SDL_ttf, and a glyph cache).
    """
    key = (font_name, float(size))
    core = _measurers.get(key)
    if core is None:
        import kivy.uix.label as uix_label  # the shaping provider kivy_env installed, not the bare SDL2 one

        provider = getattr(uix_label, "CoreLabel", CoreLabelBase)
        core = _measurers[key] = provider(font_name=font_name, font_size=key[1])
        core.resolve_font_name()
    return core


def measure(font_name: str) -> Any:
    def width(text: str, size: float) -> float:
        return float(_core(font_name, size).get_extents(text)[0])

    return width


def line_height(font_name: str, factor: float) -> Any:
    def height(size: float) -> float:
        return float(_core(font_name, size).get_extents("ÅgŊ")[1]) * factor

    return height


def align(halign: str, lang: str | None) -> str:
    """"start"/"end" as left or right for the language's direction; left and right themselves are mirrored too
    for a right-to-left language (a layout written for Swedish reads from the right in Arabic)."""
    rtl = is_rtl_language(lang)
    if halign in ("start", "left"):
        return "right" if rtl else "left"
    if halign in ("end", "right"):
        return "left" if rtl else "right"
    return halign


class FitLabel(Label):
    """A label that lays its `words` out to fit its box, between `largest` and `smallest` font sizes."""

    words = StringProperty("")
    lang = StringProperty("")
    largest = NumericProperty(20.0)
    smallest = NumericProperty(0.0)  # 0: 70 % of largest
    max_lines = NumericProperty(0)  # 0: as many as the box holds
    grow = BooleanProperty(False)
    fitted = ObjectProperty(None, allownone=True)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("valign", "middle")
        if "halign" in kwargs:
            kwargs["halign"] = align(kwargs["halign"], kwargs.get("lang"))
        super().__init__(**kwargs)
        self.bind(size=self._refit, words=self._refit, largest=self._refit, smallest=self._refit,
                  max_lines=self._refit, font_name=self._refit, padding=self._refit)
        if self.grow:
            self.size_hint_y = None
            self.bind(texture_size=lambda widget, texture: setattr(widget, "height", texture[1]))
        self._refit()

    def _refit(self, *_: Any) -> None:
        pad_x = self.padding[0] + self.padding[2] if len(self.padding) == 4 else 2 * self.padding[0]
        width = max(1.0, self.width - pad_x)
        height = None if self.grow else max(1.0, self.height - (self.padding[1] + self.padding[3]
                                                                 if len(self.padding) == 4 else 2 * self.padding[1]))
        smallest = self.smallest or self.largest * 0.7
        result: Fitted = fit(self.words, width, height, self.largest, min(smallest, self.largest),
                             measure(self.font_name), line_height(self.font_name, self.line_height), self.lang,
                             int(self.max_lines) or None)
        self.fitted = result
        label: Any = self  # Kivy's properties carry no types
        if label.font_size != result.size:
            label.font_size = result.size
        if label.text != result.text:
            label.text = result.text
        # no height: Kivy drops the lines a fixed text height cannot hold (the first ones first); the lines were
        # fitted to the box above, and any that could not be are drawn whole and reported (tests/test_text_fit.py)
        text_size = (width + 0.5, None)
        if tuple(label.text_size) != text_size:
            label.text_size = text_size

    def needed_height(self) -> float:
        """How tall the laid-out lines are (the fit test compares it with the box)."""
        lines = self.text.count("\n") + 1 if self.text else 0
        return lines * line_height(self.font_name, self.line_height)(self.font_size)

    def widest_line(self) -> float:
        width = measure(self.font_name)
        return max((width(line, self.font_size) for line in self.text.split("\n")), default=0.0)
