"""The display's glue against a real hall server on a real broker (amqtt and Mosquitto), with real speech.

No window: the test thread plays the UI thread and calls pump() whenever the controller wakes it, as
the Kivy loop would. Announcements go to a RecordingPlayer (a sound card that records what it plays).
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import protocol as p
from broker.client import HallClient
from broker.config import HallConfig
from display.announce import MAX_AGE_S, RecordingPlayer
from display.board import Board
from display.controller import DisplayController
from display.model import LinkIn, StateIn
from tests.support.brokers import AmqttBroker, MosquittoBroker, ServerProcess
from tests.support.wait import CONNECT_S, wait_until

Broker = AmqttBroker | MosquittoBroker
BOARD_S = MAX_AGE_S  # the display's own patience: a call not announced within this is dropped


class Screen:
    """One display, driven the way its window drives it."""

    def __init__(self, controller: DisplayController, player: RecordingPlayer) -> None:
        self.controller, self.player = controller, player
        self.woken = threading.Event()
        controller.wake = self.woken.set

    def until(self, predicate: Callable[[Board], bool], timeout: float = BOARD_S) -> Board:
        def reached() -> Board | None:
            self.woken.clear()
            self.controller.pump()
            board = self.controller.board()
            return board if predicate(board) else None

        return wait_until(reached, timeout, lambda: f"the board to get there; it shows {self.controller.board()}")

    def said(self, number: str) -> list[str]:
        return [o.result for o in self.controller.announcer.outcomes if o.number == number]


@pytest.fixture
def make_screen(hall: HallConfig, tmp_path: Path) -> Iterator[Callable[..., Screen]]:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run bin/test, which installs it")
    made: list[Screen] = []

    def make(broker: Broker, display: str = "entrance") -> Screen:
        player = RecordingPlayer(tmp_path / f"{display}-{len(made)}.wav", speed=25.0)
        controller = DisplayController(hall, broker.address, display, player=player,
                                       sound_dir=tmp_path / f"{display}-{len(made)}")
        screen = Screen(controller, player)
        controller.start(timeout=CONNECT_S)
        made.append(screen)
        return screen

    yield make
    for screen in made:
        screen.controller.stop()


@pytest.fixture
def clients(hall: HallConfig) -> Iterator[Callable[[Broker, str, str], HallClient]]:
    made: list[HallClient] = []

    def make(broker: Broker, role: str, device: str) -> HallClient:
        client = HallClient(broker.address, hall.id, role, device, presence=False)
        assert client.start()
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def hero_is(number: str, **fields: Any) -> Callable[[Board], bool]:
    def check(board: Board) -> bool:
        return board.hero is not None and board.hero.number == number and all(
            getattr(board.hero, key) == value for key, value in fields.items())
    return check


def test_a_call_reaches_the_board_and_is_announced_once_in_the_visitors_language(
        any_broker: Broker, make_service: Callable, make_screen: Callable[..., Screen], clients: Callable) -> None:
    make_service(any_broker)
    screen = make_screen(any_broker)
    screen.until(lambda board: board.mode == "calls")
    kiosk, counter = clients(any_broker, "kiosk", "K1"), clients(any_broker, "counter", "4")
    number = kiosk.request("issue", topic="permits", lang="fi")["ticket"]["number"]
    counter.request("open")
    counter.request("next")
    board = screen.until(hero_is(number, counter="4", direction="right", highlight=True))
    assert board.online and board.hero is not None and board.hero.counter_name == "Tiski 4"
    screen.until(lambda b: screen.said(number) == ["played"])
    spoken = next(o.spoken for o in screen.controller.announcer.outcomes if o.number == number)
    assert spoken is not None and [part.lang for part in spoken.parts[1:]] == ["fi", "sv"]
    assert spoken.path.exists() and screen.player.played == [spoken.path] and screen.player.overlaps == 0


def test_a_broker_restart_during_a_call_keeps_the_board_and_says_nothing_twice(
        any_broker: Broker, make_screen: Callable[..., Screen], clients: Callable, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "hall.sqlite", any_broker.address).start()  # `vuoro server`, as in a hall
    try:
        broker_restart_during_a_call(any_broker, make_screen, clients)
    finally:
        assert server.stop() == 0


def broker_restart_during_a_call(any_broker: Broker, make_screen: Callable[..., Screen], clients: Callable) -> None:
    screen = make_screen(any_broker, "upstairs")
    screen.until(lambda board: board.mode == "calls")
    kiosk, counter = clients(any_broker, "kiosk", "K1"), clients(any_broker, "counter", "6")
    first = kiosk.request("issue", topic="appointments", lang="en")["ticket"]["number"]
    counter.request("open")
    counter.request("next")
    screen.until(hero_is(first, direction="ahead-right"))
    screen.until(lambda b: screen.controller.announcer.queue.playing is not None)  # mid-announcement
    fed: list[Any] = []
    feed = screen.controller.model.feed
    screen.controller.model.feed = lambda item, now: (fed.append(item), feed(item, now))[1]  # type: ignore[method-assign]
    any_broker.stop()
    cut_off = screen.until(lambda board: not board.online)
    assert hero_is(first)(cut_off)  # the last board stays, with the reconnecting mark
    time.sleep(1.0)  # the broker stays away a while (not a wait for anything): reconnect attempts hit a closed port
    any_broker.start()  # a Mosquitto without persistence comes back empty: the server republishes its state
    back = screen.until(lambda board: board.online and hero_is(first)(board))
    assert back.hero is not None and back.hero.direction == "ahead-right"
    screen.until(lambda board: any(isinstance(i, StateIn) and i.part == p.CALLS_PART for i in fed))
    # down, then up: rebuilt from the retained state. The same state may be fed twice in a row (down again when a
    # reconnect attempt hit the broker while it restarted; up from the connect callback and from the pump's own
    # look at the client, whichever comes first): the model takes a repeat as no change
    ups = [i.up for i in fed if isinstance(i, LinkIn)]
    assert [state for state, _ in itertools.groupby(ups)] == [False, True], ups
    second = kiosk.request("issue", topic="appointments", lang="sv")["ticket"]["number"]
    counter.request("next")
    screen.until(hero_is(second))
    screen.until(lambda b: screen.said(second) == ["played"])
    assert screen.said(first) == ["played"]  # once, before and after the restart
    assert screen.player.overlaps == 0


def test_a_display_started_after_the_call_shows_it_from_retained_state_silently(
        amqtt_broker: AmqttBroker, make_service: Callable, make_screen: Callable[..., Screen],
        clients: Callable, hall: HallConfig) -> None:
    make_service(amqtt_broker)
    kiosk, counter = clients(amqtt_broker, "kiosk", "K1"), clients(amqtt_broker, "counter", "1")
    number = kiosk.request("issue", topic="general", lang="se")["ticket"]["number"]
    counter.request("open")
    counter.request("next")
    # the server sends state after the events, at most ten times a second: a display started before that
    # would hear the call arrive in the state as news (and say it). Here it starts once the call is retained.
    watcher = HallClient(amqtt_broker.address, hall.id, "admin", "watcher", presence=False, watch=True)
    assert watcher.start()
    try:
        assert watcher.wait_for(lambda s: number in [c["number"] for c in s.get(p.CALLS_PART, {}).get("calls", [])])
    finally:
        watcher.close()
    screen = make_screen(amqtt_broker, "upstairs")
    board = screen.until(hero_is(number, direction="downstairs", highlight=False))
    assert board.hero is not None and board.hero.counter_name == "Diskka 1"  # the visitor's language
    # the retained call was fed in the pump that drew it, and an announcement is queued right there: none is
    announcer = screen.controller.announcer
    assert announcer.queue.waiting == [] and announcer.queue.playing is None and list(announcer.outcomes) == []


def test_the_display_is_present_while_it_runs_and_says_stopped_when_it_stops(
        amqtt_broker: AmqttBroker, make_service: Callable, make_screen: Callable[..., Screen],
        clients: Callable, hall: HallConfig) -> None:
    make_service(amqtt_broker)
    watcher = HallClient(amqtt_broker.address, hall.id, "admin", "watcher", presence=False, watch=True)
    assert watcher.start()
    try:
        screen = make_screen(amqtt_broker, "entrance")
        key = p.device_part("display", "entrance")
        assert watcher.wait_for(lambda s: s.get(key, {}).get("status") == p.ONLINE)
        presence = watcher.snapshot()[key]
        assert presence["app"] == "display" and presence["announce"] is True
        assert presence["speech"].startswith("espeak-ng")
        screen.controller.stop()
        assert watcher.wait_for(lambda s: s.get(key, {}).get("status") == p.STOPPED)
    finally:
        watcher.close()
