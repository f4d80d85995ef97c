"""The kiosk's Kivy app: it draws the model's Screen and feeds button presses back. No flow logic here.

Why it is this thin: the flow (and every failure path) lives in kiosk/model.py and is tested without a
window; this module only turns a frozen Screen into widgets. It redraws only when the Screen differs
from the one on display, and its clock runs at 1 Hz (plus a wake-up when a reply or a status arrives
from another thread), so an idle kiosk costs next to no CPU.

Kivy must be configured (ui.kivy_env.configure_kivy) before this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.graphics import Color, Line, Rectangle, RoundedRectangle
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from kiosk.controller import KioskController
from kiosk.model_types import Button, Msg, Screen, Text, Touch
from kiosk.reach import REACH_TOP
from ui import i18n
from ui.device_app import DeviceApp
from ui.kivy_env import (
    DIGIT_EM,
    FONT,
    FONT_BOLD,
    RGBA,
    fix_mmap_threshold,
    flush_each_frame,
    freeze_start_up,
    release_memory,
    rgba,
)
from ui.kivy_text import FitLabel, line_height, measure
from ui.text_fit import wrap
from ui.text_shaping import is_rtl_language

RELEASE_AFTER_S = 0.5  # after the start screen is drawn: collect, trim the heap, drop the hyphenation dictionaries
LARGE_TEXT = 1.3  # the accessible mode's text against the normal mode's: WCAG's large text, and never smaller


class Theme:
    """Colours and sizes of one screen; accessibility mode swaps in high contrast and larger text."""

    def __init__(self, high_contrast: bool, large_text: bool, height: float) -> None:
        self.base = height / 100.0  # one percent of the screen's height: the normal mode's unit
        self.scale = LARGE_TEXT if large_text else 1.0
        self.unit = self.base * self.scale
        self.high_contrast = high_contrast
        if high_contrast:
            self.background, self.text, self.muted = rgba("#000000"), rgba("#ffffff"), rgba("#ffffff")
            self.button, self.button_text, self.selected = rgba("#000000"), rgba("#ffff00"), rgba("#ffff00")
            self.border = rgba("#ffff00")
        else:
            self.background, self.text, self.muted = rgba("#f3f5f8"), rgba("#14202e"), rgba("#3b4a5c")
            self.button, self.button_text, self.selected = rgba("#14365d"), rgba("#ffffff"), rgba("#f2b705")
            self.border = rgba("#14365d")

    def size(self, factor: float) -> float:
        return max(12.0, self.unit * factor)


def text_label(text: str, size: float, colour: RGBA, lang: str, *, bold: bool = False, halign: str = "center",
               smallest: float = 0.0, max_lines: int = 0) -> FitLabel:
    """A label that wraps to its width and is as tall as its lines, so nothing is clipped."""
    return FitLabel(words=text, largest=size, smallest=smallest or size, color=colour, lang=lang, grow=True,
                    font_name=FONT_BOLD if bold else FONT, halign=halign, max_lines=max_lines)


def fill_label(text: str, size: float, colour: RGBA, lang: str, *, bold: bool = True, halign: str = "center",
               smallest: float = 0.0) -> FitLabel:
    """A label that fills its box: shrinks (to 70 %, or `smallest`), wraps, and only then hyphenates to fit it."""
    return FitLabel(words=text, largest=size, smallest=smallest, color=colour, lang=lang,
                    font_name=FONT_BOLD if bold else FONT, halign=halign)


class TouchButton(ButtonBehavior, BoxLayout):
    """A large, filled touch target; `action` is the model input it stands for."""

    def __init__(self, button: Button, fill: RGBA, border: RGBA | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.button_id = button.id
        self.action = button.action
        with self.canvas.before:
            Color(*fill)
            self._fill = RoundedRectangle(radius=[12])
            if border is not None:
                Color(*border)
                self._border = Line(width=3)
        self.bind(pos=self._draw, size=self._draw)
        self._has_border = border is not None

    def _draw(self, *_: Any) -> None:
        self._fill.pos, self._fill.size = self.pos, self.size
        if self._has_border:
            self._border.rounded_rectangle = (self.x, self.y, self.width, self.height, 12)


class KioskRoot(BoxLayout):
    """The window's content: rebuilt from a Screen; feeds Touch on any touch to keep the session alive."""

    def __init__(self, press: Callable[[Any], None], **kwargs: Any) -> None:
        super().__init__(orientation="vertical", **kwargs)
        self.press = press
        with self.canvas.before:
            self._bg_colour = Color(1, 1, 1, 1)
            self._bg = Rectangle()
        self.bind(pos=self._draw_bg, size=self._draw_bg)
        self._draw_bg()  # a root made at its final size never sees its size change

    def _draw_bg(self, *_: Any) -> None:
        self._bg.pos, self._bg.size = self.pos, self.size

    def on_touch_down(self, touch: Any) -> bool:
        self.press(Touch())
        return bool(super().on_touch_down(touch))

    def show(self, screen: Screen) -> None:
        self.clear_widgets()
        theme = Theme(screen.flags.high_contrast, screen.flags.large_text, self.height or Window.height)
        self._bg_colour.rgba = theme.background
        self.padding = [theme.size(3), theme.size(3)]
        self.spacing = theme.size(1.5)
        ScreenDrawer(self, screen, theme).draw()


class ScreenDrawer:
    """Turns one Screen into widgets on the root (one method per kind of screen)."""

    def __init__(self, root: KioskRoot, screen: Screen, theme: Theme) -> None:
        self.root, self.screen, self.theme = root, screen, theme

    def t(self, item: Text) -> str:
        return i18n.render(item, self.screen.lang)

    def add(self, widget: Widget) -> Widget:
        self.root.add_widget(widget)
        return widget

    @property
    def rtl(self) -> bool:
        return is_rtl_language(self.screen.lang)

    def lines(self, items: tuple[Text, ...], factor: float, *, bold: bool = False, colour: RGBA | None = None) -> None:
        for item in items:
            text = self.t(item)
            if text:
                lang = item.lang or self.screen.lang if isinstance(item, Msg) else self.screen.lang
                self.add(text_label(text, self.theme.size(factor), colour or self.theme.text, lang, bold=bold,
                                    smallest=self.theme.size(factor) * 0.75))

    def spacer(self) -> None:
        self.add(Widget())

    def draw(self) -> None:
        name = self.screen.name
        if name in ("ticket", "paper_out"):
            self.ticket()
        elif name in ("start", "topic", "subtopic"):
            self.choices()
        else:  # issuing, closed, out_of_service, refused: words, and maybe a way back
            self.spacer()
            self.lines(self.screen.title, 4.2, bold=True)
            self.lines(self.screen.body, 2.8, colour=self.theme.muted)
            self.spacer()
            self.controls()

    def choices(self) -> None:
        screen, theme = self.screen, self.theme
        many_titles = len(screen.title) > 1
        self.lines(screen.title[:1], 4.0, bold=True)
        self.lines(screen.title[1:], 2.4, colour=theme.muted)
        self.lines(screen.body, 2.2 if many_titles else 2.6, colour=theme.muted)
        topics = any(button.kind == "topic" for button in screen.buttons)
        if screen.flags.reach:
            # Wheelchair reach (kiosk/reach.py): every choice sits below REACH_TOP of the screen's height, in a
            # block at the bottom above the controls. Topics keep one column so their names stay large and whole;
            # languages take two. Whatever room the block leaves goes above it, under the titles.
            self.spacer()
            # the width and the height of the margins go to the names, kept whole and large
            self.root.padding = [theme.size(1.5), theme.size(3), theme.size(1.5), theme.size(1.5)]
            self.root.spacing = theme.size(0.8)  # the lines above the block (six greetings) need the room
            height = self.root.height or Window.height
            below = theme.size(1.5) + self.controls_height() + 2 * theme.size(0.8)  # padding, controls, two gaps
            block = max(0.0, height * REACH_TOP - below)
            if topics:  # one column, each row as tall as its name's lines (measured), so no name is cut or shrunk
                grid: Widget = BoxLayout(orientation="vertical", spacing=theme.size(0.4), size_hint_y=None,
                                         height=block)
            else:  # languages: one column too, so that "Davvisámegiella" stays whole at the larger size
                rows = len(screen.buttons)
                grid = GridLayout(cols=1, spacing=theme.size(0.6), size_hint_y=None,
                                  height=min(block, rows * theme.size(6) + (rows - 1) * theme.size(0.6)))
        else:
            grid = BoxLayout(orientation="vertical", spacing=theme.size(1.2))
        for button in screen.buttons:
            grid.add_widget(self.topic_button(button) if button.kind == "topic" else self.language_button(button))
        self.add(grid)
        self.controls()

    def controls_height(self) -> float:
        """The controls row: lower in the accessible mode, whose unit is larger (and its block of choices taller)."""
        return self.theme.size(7 if self.screen.flags.reach else 9)

    def name_lines(self, name: str) -> int:
        """How many lines a topic's name takes in the accessible mode's one column (see topic_button)."""
        theme = self.theme
        width = (self.root.width or Window.width) - 2 * theme.size(1.5) - 2 * theme.size(1.0) - theme.size(5.0) \
            - theme.size(1.0)
        lines = wrap(name, width, theme.size(2.8), measure(FONT_BOLD), self.screen.lang, hyphenate=False)
        return len(lines) if lines else 3

    def row_weight(self, name: str) -> float:
        """A topic row's share of the accessible block, in pixels it needs: its name's lines, or its letter at the
        normal mode's size if that is taller (a one-line name's row would otherwise shrink the letter), plus a
        fifth of a line to breathe. The block's spare room (or want) is shared in proportion."""
        theme = self.theme
        name_line = line_height(FONT_BOLD, 1.0)(theme.size(2.8))
        letter_line = line_height(FONT_BOLD, 1.0)(theme.base * 5.5)
        return max(self.name_lines(name) * name_line, letter_line) + 0.2 * name_line

    def language_button(self, button: Button) -> Widget:
        theme = self.theme
        fill = theme.selected if button.selected else theme.button
        widget = TouchButton(button, fill, theme.border if theme.high_contrast else None)
        text_colour = (0.0, 0.0, 0.0, 1.0) if button.selected else theme.button_text
        lang = button.label.lang if isinstance(button.label, Msg) and button.label.lang else self.screen.lang
        widget.add_widget(fill_label(self.t(button.label), theme.size(3.6), text_colour, lang))
        return widget

    def topic_button(self, button: Button) -> Widget:
        theme = self.theme
        colour = rgba(button.colour or "#14365d")
        compact = self.screen.flags.reach  # one column in the reach block: the letter and the name, no description
        lang = self.screen.lang
        widget = TouchButton(button, colour, theme.border if theme.high_contrast else None, orientation="horizontal",
                             padding=[theme.size(1.0 if compact else 1.5), 0 if compact else theme.size(0.5)],
                             spacing=theme.size(1.0 if compact else 1.5))
        ink = self.ink_on(colour)
        # the letter: in the accessible mode never below the normal mode's largest size (so never below what the
        # normal mode drew, which can only have shrunk from it), up to LARGE_TEXT times it where the row allows
        letter = fill_label(button.letter or "", theme.size(5.5), ink, lang,
                            smallest=theme.base * 5.5 if compact else 0.0)
        if compact:
            letter.size_hint_x, letter.width = None, theme.size(5.0)
            widget.size_hint_y = self.row_weight(self.t(button.label))  # its share of the block
        else:
            letter.size_hint_x = 0.16
        words = BoxLayout(orientation="vertical")
        words.add_widget(Widget())
        # the accessible mode's unit is already LARGE_TEXT times the normal one: the same factors, 1.3x the size
        # the normal mode's button has a fixed height: its name takes one line, shrinking to 80 % for it
        words.add_widget(text_label(self.t(button.label), theme.size(2.8), ink, lang, bold=True, halign="start",
                                    smallest=theme.size(2.8) * (1.0 if compact else 0.8),
                                    max_lines=0 if compact else 1))
        if button.detail and not compact:
            words.add_widget(text_label(self.t(button.detail), theme.size(1.9), ink, lang, halign="start",
                                        smallest=theme.size(1.9) * 0.8))
        words.add_widget(Widget())
        for part in ((words, letter) if self.rtl else (letter, words)):  # the letter on the reading side's start
            widget.add_widget(part)
        return widget

    def ink_on(self, fill: RGBA) -> RGBA:
        """White or black letters, whichever reads better on a hall colour (tests/test_contrast.py)."""
        from broker.colours import contrast_ratio

        white: RGBA = (1.0, 1.0, 1.0, 1.0)
        black: RGBA = (0.0, 0.0, 0.0, 1.0)
        return white if contrast_ratio(fill[:3], (1.0, 1.0, 1.0)) >= contrast_ratio(fill[:3], (0.0, 0.0, 0.0)) \
            else black

    def controls(self) -> None:
        screen, theme = self.screen, self.theme
        if not screen.controls:
            return
        row = BoxLayout(orientation="horizontal", spacing=theme.size(1.5), size_hint_y=None,
                        height=self.controls_height())
        for button in (reversed(screen.controls) if self.rtl else screen.controls):  # "back" on the reading start
            label = self.t(button.label)
            if button.kind == "toggle":
                label = ("✓ " if button.selected else "") + label
            if button.id == "done" and screen.flags.countdown_s is not None:
                label += f"  ({screen.flags.countdown_s})"
            fill = theme.selected if button.selected else theme.button
            widget = TouchButton(button, fill, theme.border if theme.high_contrast else None,
                                 padding=[theme.size(1), 0])
            text_colour = (0.0, 0.0, 0.0, 1.0) if button.selected else theme.button_text
            widget.add_widget(fill_label(label, theme.size(2.2), text_colour, screen.lang))
            row.add_widget(widget)
        self.add(row)

    def number_size(self, characters: int) -> float:
        """The ticket number's font size: one line, as large as the screen's width allows, and in the accessible
        mode exactly LARGE_TEXT times the normal mode's.

        Both modes are sized from the width the accessible mode leaves (its margins are wider): a normal number
        as wide as the screen would leave the accessible one no room to be larger, and it came out smaller.
        """
        theme = self.theme
        margins = 2 * max(12.0, theme.base * LARGE_TEXT * 3)  # KioskRoot.show's padding in the accessible mode
        widest = ((self.root.width or Window.width) - margins) / (DIGIT_EM * max(1, characters)) * 0.95
        if self.screen.flags.big_number:  # no paper: the number is all the visitor has, as large as it goes
            return min(theme.size(24), widest)
        normal = min(theme.base * 16, widest / LARGE_TEXT)
        return normal * theme.scale

    def ticket(self) -> None:
        screen, theme = self.screen, self.theme
        ticket = screen.ticket
        assert ticket is not None
        big = screen.flags.big_number
        self.lines(screen.title, 3.0, colour=theme.muted)
        number_colour = theme.text if theme.high_contrast else rgba(ticket.colour)
        number = Label(text=ticket.number, font_name=FONT_BOLD, color=number_colour, size_hint_y=None,
                       font_size=self.number_size(len(ticket.number)))
        number.bind(texture_size=lambda widget, texture: setattr(widget, "height", texture[1]))
        self.add(number)
        first, *rest = screen.body
        if big:  # the printer failed: say so first, in bold, then what the ticket would have said
            self.lines(screen.body[:2], 3.4, bold=True)
            rest = list(screen.body[2:])
        else:
            self.lines((first,), 3.6, bold=True)
        self.lines(tuple(rest), 2.6)
        self.spacer()
        self.controls()


class KioskApp(DeviceApp):
    """The kiosk window. `after_sync` runs once the kiosk has synced with the hall server (snapshots)."""

    title = "Vuoro kiosk"

    def __init__(self, controller: KioskController, **kwargs: Any) -> None:
        super().__init__(controller, **kwargs)
        self.controller: KioskController = controller
        self.drawn: Screen | None = None
        self.root_widget: KioskRoot | None = None
        self.frames = 0  # how many times a screen was drawn (tests check it does not redraw when idle)
        self._release = Clock.create_trigger(lambda dt: release_memory(), RELEASE_AFTER_S)

    def build(self) -> KioskRoot:
        flush_each_frame()
        fix_mmap_threshold()
        freeze_start_up()
        self.root_widget = KioskRoot(self.press)
        self.root_widget.bind(size=lambda *_: self.redraw(force=True))
        Clock.schedule_interval(lambda dt: self.refresh(self.controller.tick()), 1.0)
        self.controller.start()
        self.refresh(self.controller.screen())
        return self.root_widget

    def drained(self) -> None:
        if self.controller.pump():
            self.refresh(self.controller.screen())

    def press(self, action: Any) -> None:
        self.refresh(self.controller.press(action))

    def refresh(self, screen: Screen) -> None:
        if screen != self.drawn:
            self.drawn = screen
            self.redraw()
            if screen.name == "start":  # after the start screen's frame, while nobody is at the kiosk: a visit
                self._release()  # ended, or the kiosk started or synced (its first screens loaded dictionaries)

    def redraw(self, force: bool = False) -> None:
        if self.root_widget is None or self.drawn is None:
            return
        self.frames += 1
        self.root_widget.show(self.drawn)
        self._bind_buttons(self.root_widget)

    def _bind_buttons(self, widget: Widget) -> None:
        for child in widget.walk(restrict=True):
            if isinstance(child, TouchButton):
                child.bind(on_release=lambda button: self.press(button.action))

    def find_button(self, button_id: str) -> TouchButton | None:
        """The widget of a model button on the screen now (tests touch it)."""
        if self.root_widget is None:
            return None
        return next((w for w in self.root_widget.walk(restrict=True)
                     if isinstance(w, TouchButton) and w.button_id == button_id), None)
