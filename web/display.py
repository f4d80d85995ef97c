"""The web hall display `/display/<id>`, for the smart TVs many halls already have: the Kivy display's own board
model (display/model.py), fed the same retained state and events through `vuoro web`'s broker account, and
rendered as HTML and as a JSON message for the page's Server-Sent Events.

May import display.model, display.board, ui.i18n and broker; the app (web/app.py) routes to it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from broker import protocol as p
from broker.config import HallConfig
from display.board import CALLS, Board, CallView, QueueView
from display.model import DisplayModel, EventIn, Input, LinkIn, ServerIn, StateIn
from ui.i18n import render
from web.hub import BOARD_PREFIX, Hub
from web.texts import direction

log = logging.getLogger(__name__)
KEY_PREFIX = BOARD_PREFIX  # a display's listeners are keyed "display/<id>" beside the tickets' tokens


class WebDisplays:
    """One DisplayModel per display id a TV has asked for: made from the retained state the hub holds, then fed
    every message the hub receives."""

    def __init__(self, hall: HallConfig, hub: Hub) -> None:
        self.hall = hall
        self.hub = hub
        self.models: dict[str, DisplayModel] = {}

    def model(self, display_id: str) -> DisplayModel | None:
        """The display's board model (made on first use), or None: no such display in the hall file."""
        if display_id not in self.hall.displays:
            return None
        now = self.hub.clock()
        model = self.models.get(display_id)
        if model is None:
            model = self.models[display_id] = DisplayModel.for_display(self.hall, display_id)
            if self.hub.server:
                _feed(model, p.ParsedTopic("server"), self.hub.server, now)
            for part, data in list(self.hub.state.items()):
                _feed(model, p.ParsedTopic("state", name=part), data, now)
        model.feed(LinkIn(self.hub.connected), now)
        return model

    def feed(self, parsed: p.ParsedTopic, data: dict[str, Any]) -> None:
        """A message from the hall, for every display model made so far."""
        now = self.hub.clock()
        for model in self.models.values():
            _feed(model, parsed, data, now)

    def board(self, display_id: str) -> dict[str, Any] | None:
        model = self.model(display_id)
        return None if model is None else board_json(model.board(self.hub.clock()))

    def message(self, display_id: str) -> bytes | None:
        board = self.board(display_id)
        if board is None:
            return None
        return b"event: board\ndata: " + json.dumps(board, ensure_ascii=False).encode("utf-8") + b"\n\n"


def _feed(model: DisplayModel, parsed: p.ParsedTopic, data: dict[str, Any], now: datetime) -> None:
    item: Input | None = None
    if parsed.kind == "state" and parsed.name:
        item = StateIn(parsed.name, data)
    elif parsed.kind == "event":
        item = EventIn(data)
    elif parsed.kind == "server":
        item = ServerIn(data)
    if item is not None:
        try:
            model.feed(item, now)
        except Exception as exc:  # a message that is not what it says: the board stays, the hub reads on
            log.warning("the web display ignored a %s message: %s: %s", parsed.kind, type(exc).__name__, exc)


def _call(view: CallView) -> dict[str, Any]:
    return {"number": view.number, "counter": view.counter_name, "place": view.place,
            "direction": render(view.direction_text, view.lang), "recall": view.recall, "seq": view.seq,
            "lang": view.lang, "dir": direction(view.lang), "highlight": view.highlight}


def _queue(view: QueueView, lang: str) -> dict[str, Any]:
    return {"letter": view.letter, "name": view.name, "waiting": render(view.waiting, lang),
            "wait": render(view.wait, lang) if view.wait is not None else ""}


def board_json(board: Board) -> dict[str, Any]:
    """Everything the web display shows: the template fills it in, and SSE carries it as it is."""
    lang = board.header.lang
    notice = board.notice
    calls = board.mode == CALLS  # the starting and the closed board show their notice alone
    return {
        "mode": board.mode, "lang": lang, "dir": direction(lang), "hall": board.header.hall_name,
        "clock": board.header.clock, "online": board.online,
        "now_serving": render(board.labels.now_serving, lang), "earlier": render(board.labels.earlier, lang),
        "idle": render(board.labels.idle, lang),
        "hero": _call(board.hero) if board.hero is not None and calls else None,
        "current": [_call(c) for c in board.current] if calls else [],
        "history": [_call(c) for c in board.history] if calls else [],
        "queues": [_queue(q, lang) for q in board.queues],
        "notice": None if notice is None else {
            "title": render(notice.title, notice.lang),
            "body": render(notice.body, notice.lang) if notice.body is not None else ""},
    }
