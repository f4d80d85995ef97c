"""The panel's dialogs (forward, pause, close) drawn over it: a dimmed backdrop that swallows touches, and a card.

The forward dialog's note field is a real TextInput; it is kept (not rebuilt) while only the note changes, and
moved into the new card when the dialog is redrawn (another target chosen), so no typed word is lost.
Number-pad digits choose an item, Enter confirms, Esc cancels (counter/model.py).

Kivy must be configured (ui.kivy_env.configure_kivy) before this module is imported.
"""

from __future__ import annotations

from typing import Any

from kivy.graphics import Color, Rectangle
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.textinput import TextInput
from kivy.uix.widget import Widget

from counter.model_types import Dialog, DialogItem, Msg, SetNote
from counter.widgets import Box, Drawer, PressButton, fill_label, line, rgba
from ui.kivy_env import FONT


class Backdrop(FloatLayout):
    """Covers the panel while a dialog is open: dims it, and no touch reaches the buttons under it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.canvas.before:
            Color(0, 0, 0, 0.45)
            self._shade = Rectangle()
        self.bind(pos=self._draw, size=self._draw)

    def _draw(self, *_: Any) -> None:
        self._shade.pos, self._shade.size = self.pos, self.size

    def on_touch_down(self, touch: Any) -> bool:
        super().on_touch_down(touch)
        return True

    def on_touch_move(self, touch: Any) -> bool:
        super().on_touch_move(touch)
        return True

    def on_touch_up(self, touch: Any) -> bool:
        super().on_touch_up(touch)
        return True


class DialogView(Backdrop):
    """One dialog; `note` is the forward dialog's TextInput (None in the others)."""

    def __init__(self, dialog: Dialog, drawer: Drawer, note: TextInput | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dialog = dialog
        self.note: TextInput | None = None
        theme = drawer.theme
        self.drawer = drawer
        card = Box(fill=theme.card, radius=14, orientation="vertical", size_hint=(0.72, 0.84),
                   pos_hint={"center_x": 0.5, "center_y": 0.5}, padding=[theme.size(2.5), theme.size(2)],
                   spacing=theme.size(1.2))
        lang = drawer.lang
        card.add_widget(line(drawer.say(dialog.title), theme.size(4), theme.text, bold=True, lang=lang))
        for text in dialog.body:
            card.add_widget(line(drawer.say(text), theme.size(2.6), theme.muted, lang=lang))
        if dialog.switch is not None:
            card.add_widget(self._switch(dialog))
        if dialog.items:
            grid = GridLayout(cols=2 if len(dialog.items) > 4 else 1, spacing=theme.size(1),
                              orientation="rl-tb" if drawer.rtl else "lr-tb")  # the first choice on the reading side
            for item in dialog.items:
                grid.add_widget(self._item(item))
            card.add_widget(grid)
        else:
            card.add_widget(Widget())
        if dialog.note is not None:
            card.add_widget(line(drawer.say(Msg("counter.forward.note_hint")), theme.size(2.2), theme.muted,
                                 lang=lang))
            if note is None:
                note = TextInput(text=dialog.note, multiline=False, write_tab=False, font_name=FONT,
                                 font_size=theme.size(2.8), size_hint_y=None, height=theme.size(6.5))
                note.bind(text=lambda widget, text: drawer.press(SetNote(text)))
            elif note.parent is not None:
                note.parent.remove_widget(note)  # the field the staff may be typing in moves, focus and all
            self.note = note
            card.add_widget(note)
        row = drawer.row(size_hint_y=None, height=theme.size(10), spacing=theme.size(1.5))
        for action in (dialog.cancel, dialog.confirm):
            if action is not None:
                row.add_widget(drawer.action_button(action))
        card.add_widget(row)
        self.add_widget(card)

    def _switch(self, dialog: Dialog) -> Widget:
        drawer, theme = self.drawer, self.drawer.theme
        row = drawer.row(size_hint_y=None, height=theme.size(7), spacing=theme.size(1.5))
        assert dialog.switch is not None
        row.add_widget(drawer.action_button(dialog.switch))
        return row

    def _item(self, item: DialogItem) -> Widget:
        drawer, theme = self.drawer, self.drawer.theme
        if item.selected:
            fill, ink = theme.selected, theme.text
        elif item.enabled:
            fill, ink = (rgba(item.colour) if item.colour else theme.button), theme.button_text
        else:
            fill, ink = theme.disabled, theme.disabled_text
        widget = PressButton(f"item:{item.kind}:{item.id}", item.action, drawer.press, fill,
                             padding=[theme.size(1.2), theme.size(0.4)], spacing=theme.size(1), rtl=drawer.rtl)
        widget.add_widget(fill_label(item.key, theme.size(3.2), ink, bold=True, halign="center", size_hint_x=0.14))
        words = BoxLayout(orientation="vertical")
        words.add_widget(fill_label(drawer.say(item.label), theme.size(2.6), ink, bold=True, shorten=True,
                                    lang=drawer.lang))
        if item.detail is not None:
            words.add_widget(fill_label(drawer.say(item.detail), theme.size(2.0), ink, shorten=True, lang=drawer.lang))
        widget.add_widget(words)
        return widget

    def same_but_note(self, dialog: Dialog) -> bool:
        """The dialog on screen already shows this one, but for the text typed into the note."""
        from dataclasses import replace

        return replace(self.dialog, note=None) == replace(dialog, note=None)

    def update_note(self, dialog: Dialog) -> None:
        self.dialog = dialog
        if self.note is not None and dialog.note is not None and self.note.text != dialog.note:
            self.note.text = dialog.note  # the model cut it to the protocol's limit
