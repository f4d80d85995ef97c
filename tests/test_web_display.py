"""The web hall display's board (web/display.py): the Kivy display's model, fed what the hub holds and hears."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from broker import protocol as p
from broker.config import HallConfig
from web.display import WebDisplays

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Europe/Helsinki"))


def _hub(**state: Any) -> Any:
    return SimpleNamespace(clock=lambda: NOW, state=state, connected=True,
                           server={"v": 1, "status": p.ONLINE, "seq": 5})


def test_a_board_starts_from_the_retained_state_the_hub_already_holds(hall: HallConfig) -> None:
    calls = {"v": 1, "seq": 5, "calls": [{"number": "A001", "topic": "general", "lang": "fi", "counter": "1",
                                          "at": NOW.isoformat(), "recall": 0, "seq": 5}]}
    counter = {"v": 1, "seq": 5, "counter": "1", "status": p.OPEN, "forwarded": [],
               "ticket": {"number": "A001", "topic": "general", "lang": "fi", "state": p.CALLED, "counter": "1",
                          "called_at": NOW.isoformat(), "recalls": 0}}
    displays = WebDisplays(hall, _hub(**{p.HALL_PART: {"v": 1, "seq": 5, "day": "2026-11-30", "always_open": True},
                                        p.CALLS_PART: calls, p.counter_part("1"): counter}))
    board = displays.board("entrance")
    assert board is not None and board["mode"] == "calls" and board["notice"] is None
    assert board["hero"]["number"] == "A001" and board["hero"]["lang"] == "fi" and board["hero"]["direction"]
    assert displays.board("nowhere") is None and displays.message("nowhere") is None
    assert displays.message("entrance").startswith(b"event: board\ndata: {")


def test_garbage_from_the_broker_leaves_the_board_as_it_was(hall: HallConfig) -> None:
    displays = WebDisplays(hall, _hub(**{p.HALL_PART: {"v": 1, "seq": 1, "day": "2026-11-30", "always_open": True},
                                        p.CALLS_PART: {"v": 1, "seq": 1, "calls": []}}))
    before = displays.board("entrance")
    for data in ({"type": p.TICKET_CALLED, "seq": "x", "ticket": 5}, {"seq": 2, "type": p.TICKET_CALLED},
                 {"seq": 3, "type": p.DAY_STARTED, "day": ["not", "a", "day"]}, {}):
        displays.feed(p.ParsedTopic("event", name=p.TICKET_CALLED), data)
    displays.feed(p.ParsedTopic("state", name=p.CALLS_PART), {"v": 1, "seq": "many", "calls": "all"})
    displays.feed(p.ParsedTopic("server"), {"status": 42})
    after = displays.board("entrance")
    assert after is not None and before is not None and after["hero"] is None and after["hall"] == before["hall"]
