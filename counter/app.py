"""The counter panel's Kivy app: it draws the model's Panel and feeds touches and keys back. No flow logic.

Why it is this thin: every action, refusal and failure path lives in counter/model.py and is tested
without a window. This module lays out the boxes once and, when the Panel changes, redraws only the
sections that differ (the header, the visitor, the queue, the buttons, the alerts, a dialog); the
serving timer is one label whose text changes once a second. Its clock runs at 1 Hz, plus a wake-up
when something arrives from the hall server, so an idle panel costs next to no CPU.

Keys: a USB number pad drives everything (Enter next, + recall, - no-show, 1 done, 2 handed on,
3 forward, 7 pause, 8 open, 9 close; in a dialog the digits choose, Enter confirms, Esc or . cancels).

Kivy must be configured (ui.kivy_env.configure_kivy) before this module is imported.
"""

from __future__ import annotations

import sys
from typing import Any

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.graphics import Color, Rectangle
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.widget import Widget

from counter.controller import CounterController
from counter.dialog_view import DialogView
from counter.keys import key_name
from counter.model_types import ConfirmForward, Input, Key, Panel
from counter.widgets import Box, Drawer, PressButton, Theme
from ui.device_app import DeviceApp
from ui.kivy_env import fix_mmap_threshold, flush_each_frame, freeze_start_up, release_memory

ALERT_ROWS = 3  # alert strips shown at once; more are counted on the last one
SWITCH_INTERVAL_S = 0.0005
PENDING_SHOW_S = 0.25  # a command not answered by then shows as "sending" on the panel
RELEASE_AFTER_S = 1.5  # after a visitor changes, while staff greet them: a few ms to collect and trim the heap
class CounterRoot(FloatLayout):
    """The window's content: the panel's boxes, and a dialog above them when one is open; `rtl`: the visitor's card
    on the right and the queue on the left, for a right-to-left staff language (the drawer mirrors each row)."""

    def __init__(self, theme: Theme, rtl: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.canvas.before:
            Color(*theme.background)
            self._bg = Rectangle()
        self.bind(pos=self._draw, size=self._draw)
        self._draw()  # a root made at its final size never sees its size change
        pad = theme.size(1.4)
        self.main = BoxLayout(orientation="vertical", padding=[pad, pad], spacing=pad)
        self.header = BoxLayout(size_hint_y=0.075, spacing=pad)
        body = Box(size_hint_y=0.58, spacing=pad, rtl=rtl)
        self.current = Box(fill=theme.card, radius=14, orientation="vertical", size_hint_x=0.56,
                           padding=[theme.size(2.5), theme.size(1.5)], spacing=theme.size(0.6))
        self.queue = Box(fill=theme.card, radius=14, orientation="vertical", size_hint_x=0.44,
                         padding=[theme.size(1.8), theme.size(1.5)], spacing=theme.size(0.8))
        body.add_widget(self.current)
        body.add_widget(self.queue)
        self.actions = BoxLayout(size_hint_y=0.13, spacing=theme.size(1))
        self.alerts = BoxLayout(orientation="vertical", size_hint_y=0.215, spacing=theme.size(0.6))
        for widget in (self.header, body, self.actions, self.alerts):
            self.main.add_widget(widget)
        self.add_widget(self.main)
        self.dialog: DialogView | None = None

    def _draw(self, *_: Any) -> None:
        self._bg.pos, self._bg.size = self.pos, self.size


def draw_panel(root: CounterRoot, drawer: Drawer, panel: Panel, serving_s: int | None) -> None:
    """Every section of the panel at once: a picture of it, or a first frame."""
    drawer.header(root.header, panel.header)
    drawer.current(root.current, panel.current, serving_s)
    drawer.queue(root.queue, panel.queues, panel.forwarded)
    drawer.actions(root.actions, panel.actions)
    drawer.alerts(root.alerts, panel.alerts, panel.notice, ALERT_ROWS)


class CounterApp(DeviceApp):
    """The counter panel window."""

    title = "Vuoro counter"

    def __init__(self, controller: CounterController, **kwargs: Any) -> None:
        super().__init__(controller, **kwargs)
        self.controller: CounterController = controller
        self.drawn: Panel | None = None
        self.root_widget: CounterRoot | None = None
        self.drawer: Drawer | None = None
        self.redraws: dict[str, int] = {}  # section -> times drawn (tests check an idle panel redraws nothing)
        self._release = Clock.create_trigger(lambda dt: release_memory(), RELEASE_AFTER_S)

    def build(self) -> CounterRoot:
        fix_mmap_threshold()
        flush_each_frame()
        # A command leaves on the worker and paho's threads while this one runs Kivy's loop: let a waiting thread
        # have the interpreter within half a millisecond (CPython's default is 5 ms), so a key press is on the
        # wire as soon as from the command line.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        freeze_start_up()
        Window.clearcolor = (0.91, 0.93, 0.95, 1)
        theme = Theme(Window.height)
        self.drawer = Drawer(theme, self.controller.model.lang, self.press)
        self.root_widget = CounterRoot(theme, rtl=self.drawer.rtl)
        self.root_widget.bind(size=lambda *_: self.redraw())
        Window.bind(on_key_down=self._on_key_down)
        Clock.schedule_interval(lambda dt: self.refresh(self.controller.tick()), 1.0)
        self.controller.start()
        self.refresh(self.controller.panel())
        return self.root_widget

    def on_stop(self) -> None:
        Window.unbind(on_key_down=self._on_key_down)
        super().on_stop()

    # ------------------------------------------------------------ input

    def drained(self) -> None:
        """After a wake: what arrived is in the model; draw the panel if anything changed."""
        if self.controller.pump():
            self.refresh(self.controller.panel())

    def press(self, action: Input) -> None:
        """A touch or a key. When it sends a command, nothing is drawn until the reply (or PENDING_SHOW_S):
        a frame drawn under a software GL driver holds the GIL for milliseconds, and the command must leave first.
        """
        if self.controller.act(action):
            Clock.schedule_once(lambda dt: self.refresh(self.controller.panel()), PENDING_SHOW_S)
        else:
            self.refresh(self.controller.panel())

    def _on_key_down(self, window: Any, key: int, scancode: int, codepoint: str | None, modifiers: list[str]) -> bool:
        name = key_name(key, codepoint, modifiers)
        dialog = self.root_widget.dialog if self.root_widget is not None else None
        if dialog is not None and dialog.note is not None and dialog.note.focus:
            # typing a note: the keys are the note's, but Enter forwards and Esc leaves the field
            if name == "enter":
                self.press(ConfirmForward())
                return True
            if name == "escape":
                dialog.note.focus = False
                return True
            return False
        if name is None:
            return False
        self.press(Key(name))
        return True  # consumed: Esc cancels a dialog, it never closes the panel

    # ------------------------------------------------------------ drawing

    def refresh(self, panel: Panel) -> None:
        old, self.drawn = self.drawn, panel
        if old is panel:
            return
        self._draw(old, panel)

    def redraw(self) -> None:
        """Everything again (the window changed size)."""
        if self.drawn is not None and self.root_widget is not None and self.drawer is not None:
            self.drawer.theme = Theme(Window.height)
            self._draw(None, self.drawn)

    def _count(self, section: str) -> None:
        self.redraws[section] = self.redraws.get(section, 0) + 1

    def _draw(self, old: Panel | None, panel: Panel) -> None:
        root, drawer = self.root_widget, self.drawer
        if root is None or drawer is None:
            return
        if old is None or old.header != panel.header:
            drawer.header(root.header, panel.header)
            self._count("header")
        if old is None or old.current != panel.current:
            drawer.current(root.current, panel.current, panel.serving_s)
            self._count("current")
            self._release.cancel()
            self._release()  # a visit began or ended: give back the last one's memory once the panel is quiet
        elif old.serving_s != panel.serving_s:
            drawer.set_timer(panel.serving_s)
            self._count("timer")
        if old is None or (old.queues, old.forwarded) != (panel.queues, panel.forwarded):
            drawer.queue(root.queue, panel.queues, panel.forwarded)
            self._count("queue")
        if old is None or old.actions != panel.actions:
            drawer.actions(root.actions, panel.actions)
            self._count("actions")
        if old is None or (old.alerts, old.notice) != (panel.alerts, panel.notice):
            drawer.alerts(root.alerts, panel.alerts, panel.notice, ALERT_ROWS)
            self._count("alerts")
        self._draw_dialog(root, drawer, panel)

    def _draw_dialog(self, root: CounterRoot, drawer: Drawer, panel: Panel) -> None:
        shown = root.dialog
        if panel.dialog is None:
            if shown is not None:
                root.remove_widget(shown)
                root.dialog = None
            return
        if shown is not None and shown.same_but_note(panel.dialog):
            shown.update_note(panel.dialog)
            return
        note = shown.note if shown is not None and panel.dialog.note is not None else None
        root.dialog = DialogView(panel.dialog, drawer, note)
        if shown is not None:
            root.remove_widget(shown)
        root.add_widget(root.dialog)
        self._count("dialog")

    # ------------------------------------------------------------ tests and snapshots

    def find_button(self, button_id: str) -> PressButton | None:
        """The widget of a button on the panel now (the dialog's first, when one is open)."""
        if self.root_widget is None:
            return None
        layers: list[Widget] = [self.root_widget.dialog] if self.root_widget.dialog is not None else []
        layers.append(self.root_widget.main)
        for layer in layers:
            found = next((w for w in layer.walk(restrict=True)
                          if isinstance(w, PressButton) and w.button_id == button_id), None)
            if found is not None or layer is not self.root_widget.main:
                return found
        return None
