"""The hall display's Kivy app: it draws the model's Board and nothing else. No board logic here.

Why it is this thin: what to show (and every reconnect and day change) lives in display/model.py
and is tested without a window; this module turns a frozen Board into widgets. The window is made
of parts (header, the called number, the side lists, the queues, the notice: display/widgets.py),
made once, and each is told only what changed: a new call never re-renders the clock, the minute
never re-renders the number, and a highlight ending only recolours a frame.

Nothing polls. The controller wakes the loop when a message arrives (display/window.py makes Kivy
sleep until then), and one timer is set for the next moment the board changes by itself (the
minute, the language turning, a highlight ending).

Kivy must be configured (display.window.configure) before this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.base import ExceptionHandler, ExceptionManager
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout

from display.board import CALLS, Board, msg
from display.controller import DisplayController
from display.widgets import (
    BACKGROUND,
    HeaderBar,
    HeroPanel,
    NoticePanel,
    QueueBar,
    SidePanel,
    arrange,
    ordered,
    rgba,
    say,
)
from ui.device_app import DeviceApp
from ui.kivy_env import flush_each_frame, freeze_start_up, release_memory


class BoardView(FloatLayout):
    """The whole screen: header (with the reconnecting mark), then the calls (or the notice), then the queues."""

    def __init__(self, hall_colour: str, unit: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # the background is the window's clear colour: no full-screen fill to draw
        self.unit = unit
        self.column = BoxLayout(orientation="vertical", spacing=unit * 1.5, pos_hint={"x": 0, "y": 0})
        self.header = HeaderBar(unit, hall_colour)
        self.middle = BoxLayout(orientation="horizontal", padding=[unit * 3, 0])
        self.hero, self.side = HeroPanel(unit), SidePanel(unit)
        self.notice = NoticePanel(unit)
        self.queues = QueueBar(unit)
        self.column.add_widget(self.header)
        self.column.add_widget(self.middle)
        self.column.add_widget(self.queues)
        self.add_widget(self.column)
        self.mode: str | None = None

    def show(self, board: Board) -> None:
        self.header.show(board.header, "" if board.online else
                         "⟳  " + say(msg("display.reconnecting"), board.labels.lang))
        if board.mode == CALLS:  # the hero on the reading side's start: mirrored in a right-to-left language
            arrange(self.middle, ordered([self.hero, self.side], board.labels.lang))
        else:
            arrange(self.middle, [self.notice])
        if board.mode != self.mode:
            self.mode = board.mode
            self.queues.opacity = 1 if board.mode == CALLS else 0
        if board.mode == CALLS:
            self.hero.show(board.hero, board.labels, (self.width or Window.width) * 0.6)
            self.side.show(board.labels, board.current, board.history)
            self.queues.show(board.queues, board.labels.lang)
        elif board.notice is not None:
            self.notice.show(board.notice)


class KivyPlayer:
    """Plays announcements through SDL's audio (Kivy's SoundLoader); on the UI thread, as the Announcer calls it."""

    def __init__(self) -> None:
        self._sound: Any = None
        self.failed = False  # no audio device: announcements are skipped (and logged once)

    def play(self, path: Path, done: Callable[[], None]) -> None:
        from kivy.core.audio import SoundLoader

        sound = SoundLoader.load(str(path))
        if sound is None:
            if not self.failed:
                self.failed = True
                logging.getLogger(__name__).error("no audio output: announcements cannot be played")
            done()
            return

        def stopped(*_: Any) -> None:
            sound.unbind(on_stop=stopped)
            sound.unload()
            self._sound = None
            done()

        sound.bind(on_stop=stopped)
        self._sound = sound
        sound.play()

    def stop(self) -> None:
        if self._sound is not None:
            self._sound.stop()


class KeepRunning(ExceptionHandler):
    """A display runs unattended for months: a bug while drawing is logged, and the loop goes on with the last
    board rather than leaving a blank screen (Kivy would stop the app). Ctrl-C and exits still end it."""

    def handle_exception(self, inst: BaseException) -> int:
        if isinstance(inst, KeyboardInterrupt | SystemExit):
            return int(ExceptionManager.RAISE)
        logging.getLogger(__name__).error("error in the display's window; going on", exc_info=inst)
        return int(ExceptionManager.PASS)


RELEASE_AFTER_S = 1.5  # quiet after a drawn change: then collect and trim the heap (ui.kivy_env.release_memory)
SETTLE_S = 0.3  # how long a change of the queues or the header may wait for the messages that follow it


def urgent(board: Board, drawn: Board | None) -> bool:
    """A call, a change at a counter, the mark or the mode: drawn on the next frame. The rest can wait a moment.

    After each call the server sends its retained state (queues, counters, the hall) within ~100 ms, in
    several messages. Drawing each at once costs a whole frame each (~40 ms under software GL at 1080p), and
    a call arriving meanwhile would wait for them; gathered, they cost one frame, and nobody sees the delay.
    """
    if drawn is None:
        return True
    return (board.mode, board.online, board.hero, board.current, board.history, board.notice) != \
        (drawn.mode, drawn.online, drawn.hero, drawn.current, drawn.history, drawn.notice)


class DisplayApp(DeviceApp):
    """The display window: redraws parts of the board when the controller or the timer says so."""

    title = "Vuoro display"
    snapshot_background = rgba(BACKGROUND)  # on screen the background is the window's clear colour

    def __init__(self, controller: DisplayController, **kwargs: Any) -> None:
        super().__init__(controller, **kwargs)
        self.controller: DisplayController = controller
        self.drawn: Board | None = None
        self.view: BoardView | None = None
        self.refreshes = 0  # boards drawn (tests check that idle draws nothing)
        self._timer: Any = None
        self._later: Any = None  # a redraw held back to gather the retained state that follows a call
        self.after_update: Callable[[], None] | None = None  # snapshots and tests watch the board with it
        # Each drawn change frees label textures that llvmpipe malloc'd (a 1080p number is ~2 MB), and glibc keeps
        # the freed heap: without a trim the display grew ~10 MiB per 1,000 calls (bench/display_bench.py).
        self._release = Clock.create_trigger(lambda dt: release_memory(), RELEASE_AFTER_S)

    def build(self) -> BoardView:
        flush_each_frame()
        freeze_start_up()  # the collections of release_memory then walk only what the board made since
        ExceptionManager.add_handler(KeepRunning())
        Window.clearcolor = rgba(BACKGROUND)
        self.view = BoardView(self.controller.hall.colour, Window.height / 100.0)
        self.controller.start()
        self.update()
        return self.view

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._release.cancel()
        super().on_stop()

    def drained(self) -> None:
        self.controller.pump(announce=False)
        board = self.controller.board()
        if urgent(board, self.drawn):
            self.update()
        elif self._later is None and board != self.drawn:
            self._later = Clock.schedule_once(self._catch_up, SETTLE_S)
        Clock.schedule_once(lambda dt: self.controller.announce_held(), 0)  # once this frame is drawn

    def _catch_up(self, dt: float = 0) -> None:
        self._later = None
        self.update()

    def update(self, *_: Any) -> None:
        """Draw the board if it changed, and set the one timer for its next change of its own."""
        self.refresh(self.controller.board())
        if self._timer is not None:
            self._timer.cancel()
        delay = (self.controller.next_change() - self.controller.clock()).total_seconds()
        self._timer = Clock.schedule_once(self.update, max(0.05, delay + 0.01))
        if self.after_update is not None:
            self.after_update()

    def refresh(self, board: Board) -> None:
        if board is self.drawn or board == self.drawn or self.view is None:
            return
        called = urgent(board, self.drawn)
        self.drawn = board
        self.refreshes += 1
        self.view.show(board)
        if called:  # after calls only (not the minute or a language turning: an idle board costs nothing), and
            self._release.cancel()  # only once the board has been quiet for a moment: never in a burst of calls
            self._release()
