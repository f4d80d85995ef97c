"""The display's glue between the pure DisplayModel, the hall server and the announcer. No Kivy here.

Why a separate layer: the model must be touched from one thread only, while messages arrive on
paho's thread and announcements are generated on the announcer's worker. So:

- everything that arrives from another thread becomes a model input on a thread-safe queue, and
  `wake` asks the UI thread to `pump()` soon (the window's clock sleeps until then: nothing polls);
- `pump()` drains that queue into the model, hands new calls to the announcer, and lets the
  announcer start its next announcement;
- `board()` gives the Board to draw, the same object while nothing visible changed.

The inbox and the wake-up are the devices' shared scaffolding (ui/device_loop.py).
Tests drive it without a window: call `pump()` from the test thread, as the UI would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from broker import __version__
from broker import protocol as p
from broker.client import HallClient
from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from display.announce import Announcer, Espeak, Player, Speech
from display.board import Board
from display.model import Announce, DisplayModel, EventIn, Input, LinkIn, ServerIn, StateIn
from ui.device_loop import Clock, DeviceLoop

log = logging.getLogger(__name__)

SERVER_EVENTS = frozenset(p.EVENT_TYPES)


class DisplayController(DeviceLoop[Input]):
    """Owns the model, the hall client and the announcer; the UI calls pump() and board()."""

    def __init__(self, hall: HallConfig, address: BrokerAddress, display_id: str, *, player: Player | None,
                 speech: Speech | None = None, announce: bool | None = None, sound_dir: Path | None = None,
                 fixed_lang: str | None = None, clock: Clock | None = None, mqtt_version: str = "3.1.1",
                 wake: Callable[[], None] | None = None) -> None:
        super().__init__(hall.tz, clock, wake)
        self.hall = hall
        self.model = DisplayModel.for_display(hall, display_id, fixed_lang)  # ValueError for an unknown id
        enabled = self.model.display.announce if announce is None else announce
        if speech is None and enabled:
            espeak = Espeak()
            speech = espeak if espeak.available else None
            if speech is None:
                log.warning("espeak-ng is not installed: calls are announced by the chime alone")
        self.speech = speech
        self.announcer = Announcer(hall, player, enabled=enabled, speech=speech, workdir=sound_dir,
                                   keep=sound_dir is not None, wake=self._wake)
        voice = speech.version() if isinstance(speech, Espeak) else ("custom" if speech else "none")
        self.client = HallClient(address, hall.id, "display", display_id, version=mqtt_version, presence=True,
                                 watch=True, listener=self._on_message,
                                 presence_fields={"app": "display", "app_version": __version__,
                                                  "announce": self.announcer.enabled, "speech": voice})
        # LinkIn(True) after HallClient's own handler, which publishes our presence
        self.hook_link(self.client.link, LinkIn(True), LinkIn(False), announce_first=True)
        self._board: Board | None = None
        self._held: list[Announce] = []

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 0.0) -> DisplayController:
        """Connect in the background; the board says "connecting" until the server's state is in."""
        self.client.start(timeout=timeout)
        return self

    def stop(self) -> None:
        self.client.close()
        self.announcer.close()

    # ------------------------------------------------------------ the UI thread's side

    def pump(self, *, announce: bool = True) -> bool:
        """Drain what other threads posted into the model; True when anything was fed.

        With announce=False new calls are held (see `announce_held`): the window draws the call first, then
        lets the announcer's worker start speaking it, so that the two do not compete for the frame.
        """
        fed = False
        now = self.clock()
        for item in self.posted():
            try:
                self._held += self.model.feed(item, now)
            except Exception:  # a message nobody foresaw must not take the board down: log it, keep going
                log.exception("the display could not use %r", item)
            fed = True
        if self.model.sync.link != self.client.connected:  # a change the callbacks did not tell (start-up)
            self.model.feed(LinkIn(self.client.connected), now)
            fed = True
        if announce:
            self.announce_held()
        return fed

    def announce_held(self) -> None:
        held, self._held = self._held, []
        for call in held:
            self.announcer.announce(call)
        self.announcer.pump()

    def board(self, now: datetime | None = None) -> Board:
        """The board to draw; the same object while nothing visible changed (cheap to compare)."""
        board = self.model.board(now or self.clock())
        if board != self._board:
            self._board = board
        return self._board

    def next_change(self) -> datetime:
        return self.model.next_change(self.clock())

    @property
    def synced(self) -> bool:
        return self.model.synced

    # ------------------------------------------------------------ other threads

    def _wake(self) -> None:
        self.wake()

    def _on_message(self, topic: p.ParsedTopic, data: dict[str, Any]) -> None:
        """paho's thread: keep only what the board depends on (not other devices' presence)."""
        if topic.kind == "state" and topic.name and data:
            self.post(StateIn(topic.name, data))
        elif topic.kind == "event" and topic.name in SERVER_EVENTS and data:
            self.post(EventIn(data))
        elif topic.kind == "server" and data:
            self.post(ServerIn(data))
