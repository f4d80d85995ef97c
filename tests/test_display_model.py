"""The hall display's board model, fed by the real queue engine's events and retained state (no broker, no window).

The engine decides what happens (tickets, calls, recalls, visits ending); `Feed` delivers its event
payloads and state payloads to the display model exactly as the MQTT topics carry them, and can delay,
repeat or drop deliveries as a network would. 2026-11-30 is a Monday: the demo hall is open 08:00-17:00.
"""

from __future__ import annotations

import gc
import itertools
import tracemalloc
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import protocol as p
from broker.config import DIRECTIONS, HallConfig
from broker.engine import Engine
from display import arrow
from display.board import CALLS, CLOSED, MESSAGE_IDS, STARTING, clock_text, wait_minutes
from display.model import CALLS_KEPT, Announce, DisplayModel, EventIn, Input, LinkIn, ServerIn, StateIn
from ui import i18n

TZ = ZoneInfo("Europe/Helsinki")
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)


class Feed:
    """A hall engine and the payloads it would publish: events at once, retained state when asked."""

    def __init__(self, hall: HallConfig, *, always_open: bool = True, start: datetime = MONDAY_9) -> None:
        self.hall = hall
        self.engine = Engine(hall, always_open=always_open)
        self.now = start
        self.ids = itertools.count(1)
        self.published: list[Any] = []  # every event payload, in order

    def send(self, role: str, device: str, op: str, **args: Any) -> list[dict[str, Any]]:
        command = p.Command(id=f"c{next(self.ids)}", role=role, device=device, op=op, args=args)
        outcome = self.engine.handle(command, self.now)
        payloads = [p.decode_object(p.encode(e.payload()), max_bytes=1 << 20) for e in outcome.events]
        self.published += payloads
        return payloads

    def issue(self, topic: str, lang: str = "sv") -> list[dict[str, Any]]:
        return self.send("kiosk", "K1", "issue", topic=topic, lang=lang)

    def counter(self, device: str, op: str, **args: Any) -> list[dict[str, Any]]:
        return self.send("counter", device, op, **args)

    def retained(self) -> list[StateIn]:
        """Every retained state part as the server publishes it after a (re)connect."""
        messages = self.engine.state_messages(self.engine.all_parts(), self.now)
        return [StateIn(part, p.decode_object(p.encode(body), max_bytes=1 << 20)) for part, body in messages.items()]

    def server(self) -> ServerIn:
        return ServerIn(p.presence_payload(p.ONLINE, seq=self.engine.state.seq))

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def connect(model: DisplayModel, feed: Feed) -> list[Announce]:
    """A display (re)connecting: its link comes up, the broker hands it the retained state and presence."""
    said = model.feed(LinkIn(True), feed.now)
    for item in feed.retained():
        said += model.feed(item, feed.now)
    return said + model.feed(feed.server(), feed.now)


def live(model: DisplayModel, feed: Feed, payloads: list[dict[str, Any]], *, state: bool = True) -> list[Announce]:
    """Events as they happen, then the retained state that follows them (unless held back)."""
    said: list[Announce] = []
    for payload in payloads:
        said += model.feed(EventIn(payload), feed.now)
    if state:
        for item in feed.retained():
            said += model.feed(item, feed.now)
    return said


def with_display(hall: HallConfig, display_id: str, **changes: Any) -> HallConfig:
    displays = dict(hall.displays)
    displays[display_id] = replace(hall.displays[display_id], **changes)
    return replace(hall, displays=displays)


@pytest.fixture
def feed(hall: HallConfig) -> Feed:
    feed = Feed(hall)
    for counter in ("1", "2", "3", "4", "6"):
        feed.counter(counter, "open")
    return feed


def synced(hall: HallConfig, feed: Feed, display: str = "entrance", **kwargs: Any) -> DisplayModel:
    model = DisplayModel.for_display(hall, display, **kwargs)
    assert connect(model, feed) == []
    assert model.synced
    return model


# ---------------------------------------------------------------- wayfinding per display


def test_a_call_shows_on_each_display_with_its_own_way_to_the_counter(hall: HallConfig, feed: Feed) -> None:
    entrance, upstairs = synced(hall, feed, "entrance"), synced(hall, feed, "upstairs")
    feed.issue("permits", lang="fi")
    events = feed.counter("4", "next")
    for model in (entrance, upstairs):
        assert live(model, feed, events) == [Announce("B001", "4", "fi", 0, events[-1]["seq"])]
    hero_in, hero_up = entrance.board(feed.now).hero, upstairs.board(feed.now).hero
    assert hero_in is not None and hero_up is not None
    assert (hero_in.number, hero_in.counter, hero_in.direction) == ("B001", "4", "right")
    assert (hero_up.number, hero_up.counter, hero_up.direction) == ("B001", "4", "downstairs")
    # the hero speaks the visitor's language: the counter's name and the way, in Finnish
    assert hero_in.lang == hero_up.lang == "fi" and hero_in.counter_name == "Tiski 4"
    assert hero_in.place == "Osa D, sisäänkäyntikerros"  # no wayfinding of its own: the counter's location
    assert hero_up.place == "Portaat alas, sitten oikealle"  # the upstairs display's own way there
    assert i18n.render(hero_up.direction_text, "fi") == "Alakerrassa"
    assert hero_in.highlight and hero_up.highlight


def test_every_direction_of_the_config_has_a_sign_and_words(hall: HallConfig) -> None:
    for direction in DIRECTIONS:
        assert f"display.direction.{direction}" in MESSAGE_IDS
        assert arrow.triangles(direction)
    for display in hall.displays.values():
        assert set(display.directions) == set(hall.counters)


# ---------------------------------------------------------------- retained state: late start, reconnect


def test_a_display_started_after_the_call_shows_it_at_once_and_says_nothing(hall: HallConfig, feed: Feed) -> None:
    feed.issue("general", lang="en")
    feed.counter("1", "next")
    model = DisplayModel.for_display(hall, "upstairs")
    assert model.board(feed.now).mode == STARTING
    assert connect(model, feed) == []  # an old call is shown, not announced
    board = model.board(feed.now)
    assert board.mode == CALLS and board.hero is not None
    assert (board.hero.number, board.hero.direction, board.hero.highlight) == ("A001", "downstairs", False)


def test_retained_state_arriving_after_the_live_event_does_not_announce_it_again(hall: HallConfig,
                                                                                feed: Feed) -> None:
    model = synced(hall, feed)
    feed.issue("general")
    events = feed.counter("1", "next")
    assert len(live(model, feed, events, state=False)) == 1
    assert live(model, feed, [], state=True) == []  # the state that includes the call
    assert live(model, feed, events) == []  # QoS 1 may deliver an event twice


def test_after_a_reconnect_the_board_is_rebuilt_without_a_second_announcement(hall: HallConfig,
                                                                             feed: Feed) -> None:
    model = synced(hall, feed)
    feed.issue("general")
    assert len(live(model, feed, feed.counter("1", "next"))) == 1
    before = model.board(feed.now)
    model.feed(LinkIn(False), feed.now)
    cut_off = model.board(feed.now)
    assert not cut_off.online and cut_off.hero == before.hero and cut_off.mode == CALLS  # the last board stays
    assert connect(model, feed) == []
    assert model.board(feed.now) == before


def test_a_server_gone_offline_marks_the_board_and_keeps_it(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    feed.issue("general")
    live(model, feed, feed.counter("1", "next"))
    before = model.board(feed.now)
    model.feed(ServerIn(p.presence_payload(p.OFFLINE)), feed.now)  # its Last Will: the broker is still there
    gone = model.board(feed.now)
    assert not gone.online and gone.hero == before.hero
    assert model.feed(feed.server(), feed.now) == [] and model.board(feed.now).online


def test_a_call_made_while_cut_off_is_announced_on_return_only_while_fresh(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    for _ in range(2):
        feed.issue("general")
    model.feed(LinkIn(False), feed.now)
    first = feed.counter("1", "next")[-1]["seq"]
    feed.advance(seconds=30)
    assert connect(model, feed) == [Announce("A001", "1", "sv", 0, first)]  # 30 s ago: still worth saying
    model.feed(LinkIn(False), feed.now)
    feed.counter("2", "next")
    feed.advance(minutes=5)
    assert connect(model, feed) == []  # five minutes late: shown, not said
    assert {c.number for c in model.current_calls()} == {"A001", "A002"}


def test_an_older_state_never_undoes_a_newer_event(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    feed.issue("general")
    live(model, feed, feed.counter("1", "next"))
    stale = feed.retained()  # A001 at counter 1
    live(model, feed, feed.counter("1", "done", outcome="resolved"), state=False)
    for item in stale:
        model.feed(item, feed.now)
    board = model.board(feed.now)
    assert board.hero is None and [c.number for c in board.history] == ["A001"]


def test_a_new_server_log_starts_the_board_afresh(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    feed.issue("general")
    live(model, feed, feed.counter("1", "next"))
    fresh = Feed(hall)  # the server came back on an empty database: same day, numbers from A001 again
    fresh.now = feed.now
    fresh.counter("2", "open")
    fresh.issue("general")
    events = fresh.counter("2", "next")
    assert model.feed(fresh.server(), fresh.now) == []
    said = live(model, fresh, events)
    assert said == [Announce("A001", "2", "sv", 0, events[-1]["seq"])]
    board = model.board(fresh.now)
    assert board.hero is not None and (board.hero.number, board.hero.counter) == ("A001", "2")
    assert board.history == () and board.current == ()


def test_the_same_presence_again_after_our_own_reconnect_changes_nothing(hall: HallConfig, feed: Feed) -> None:
    presence = feed.server()  # retained: published when the server connected, older than what follows
    model = DisplayModel.for_display(hall, "entrance")
    model.feed(LinkIn(True), feed.now)
    model.feed(presence, feed.now)
    feed.issue("general")
    live(model, feed, feed.counter("1", "next"))
    model.feed(LinkIn(False), feed.now)
    model.feed(LinkIn(True), feed.now)
    model.feed(presence, feed.now)
    assert model.board(feed.now).hero is not None


def test_a_new_day_clears_the_calls(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    feed.issue("general")
    live(model, feed, feed.counter("1", "next"))
    feed.advance(days=1)
    said = live(model, feed, feed.send("admin", "cli", "ping"))
    board = model.board(feed.now)
    assert said == [] and board.hero is None and board.history == ()


# ---------------------------------------------------------------- recall, history, highlight


def test_a_recall_highlights_again_and_is_announced_again(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    feed.issue("permits", lang="en")
    live(model, feed, feed.counter("4", "next"))
    feed.advance(seconds=model.display.highlight_s + 1)
    assert model.board(feed.now).hero.highlight is False  # type: ignore[union-attr]
    events = feed.counter("4", "recall")
    assert live(model, feed, events) == [Announce("B001", "4", "en", 1, events[-1]["seq"])]
    hero = model.board(feed.now).hero
    assert hero is not None and hero.highlight and hero.recall == 1
    assert model.next_change(feed.now) <= feed.now + timedelta(seconds=model.display.highlight_s)
    feed.advance(seconds=model.display.highlight_s)
    assert not model.board(feed.now).hero.highlight  # type: ignore[union-attr]


def test_the_hero_is_the_newest_call_and_earlier_calls_follow_newest_first(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    for _ in range(5):
        feed.issue("general")
    for counter in ("1", "2", "1", "2", "1"):  # each next closes the counter's previous visit
        live(model, feed, feed.counter(counter, "next"))
        feed.advance(seconds=20)
    board = model.board(feed.now)
    assert board.hero is not None and board.hero.number == "A005"
    assert [c.number for c in board.current] == ["A004"]
    assert [c.number for c in board.history] == ["A003", "A002", "A001"]
    assert all(not c.highlight for c in board.history)
    live(model, feed, feed.counter("1", "recall"))  # a recall puts A005 first again, and only once
    assert [c.number for c in model.board(feed.now).history] == ["A003", "A002", "A001"]


def test_history_is_as_long_as_the_display_says(hall: HallConfig, feed: Feed) -> None:
    small = with_display(hall, "entrance", history=2)
    model = synced(small, feed)
    for _ in range(6):
        feed.issue("general")
    for _ in range(6):
        live(model, feed, feed.counter("1", "next"))
    assert [c.number for c in model.board(feed.now).history] == ["A005", "A004"]


def test_a_ticket_forwarded_and_called_elsewhere_moves_to_its_new_counter(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    feed.issue("general")
    live(model, feed, feed.counter("1", "next"))
    live(model, feed, feed.counter("1", "forward", counter="4"))
    assert model.board(feed.now).hero is None
    said = live(model, feed, feed.counter("4", "next"))
    board = model.board(feed.now)
    assert [a.counter for a in said] == ["4"]
    assert board.hero is not None and (board.hero.number, board.hero.counter) == ("A001", "4")
    assert board.history == ()  # one ticket, one line: its newest call


# ---------------------------------------------------------------- filters, queues, closed hours


def test_a_display_showing_some_counters_shows_and_says_only_theirs(hall: HallConfig, feed: Feed) -> None:
    only_six = with_display(hall, "upstairs", counters=("6",))
    model = synced(only_six, feed, "upstairs")
    feed.issue("general")
    feed.issue("appointments")
    assert live(model, feed, feed.counter("1", "next")) == []
    assert model.board(feed.now).hero is None
    said = live(model, feed, feed.counter("6", "next"))
    assert [a.number for a in said] == ["F001"]
    board = model.board(feed.now)
    assert board.hero is not None and board.hero.number == "F001" and board.current == () and board.history == ()
    assert [q.topic for q in board.queues] == ["permits", "taxes", "appointments"]  # what counter 6 serves


def test_queues_show_how_many_wait_and_about_how_long(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    for _ in range(3):
        live(model, feed, feed.issue("parking"))
    queues = {q.topic: q for q in model.board(feed.now).queues}
    parking, social = queues["parking"], queues["social"]
    assert i18n.render(parking.waiting, "en") == "3 waiting"
    expected = feed.engine.queue_state("parking", feed.now)["expected_wait_s"]
    assert parking.wait is not None and i18n.render(parking.wait, "fi") == f"noin {wait_minutes(expected)} min"
    assert i18n.render(social.waiting, "sv") == "Ingen kö" and social.wait is None
    assert [q.letter for q in model.board(feed.now).queues] == ["A", "B", "C", "D", "E", "F"]


def test_outside_opening_hours_an_empty_hall_shows_the_closed_board(hall: HallConfig) -> None:
    evening = Feed(hall, always_open=False, start=datetime(2026, 11, 30, 16, 30, tzinfo=TZ))
    evening.counter("1", "open")
    evening.issue("general")
    model = synced(hall, evening)
    evening.advance(minutes=40)  # 17:10, closed, but a visitor still waits: the calls board stays
    assert model.board(evening.now).mode == CALLS
    live(model, evening, evening.counter("1", "next"))
    evening.advance(minutes=5)
    assert model.board(evening.now).mode == CALLS  # someone is at a counter
    live(model, evening, evening.counter("1", "done", outcome="resolved"))
    board = model.board(evening.now)
    assert board.mode == CLOSED and board.notice is not None
    assert i18n.render(board.notice.title, "en") == "Closed"
    assert i18n.render(board.notice.body, "en") == "We open tomorrow at 08:00."  # type: ignore[arg-type]
    friday = datetime(2026, 12, 4, 18, 0, tzinfo=TZ)
    assert i18n.render(model.board(friday).notice.body, "sv") == "Vi öppnar måndag 7 december kl. 8.00."  # type: ignore[union-attr, arg-type]
    assert model.board(datetime(2026, 12, 7, 7, 0, tzinfo=TZ)).notice.body.id == "display.closed.today"  # type: ignore[union-attr]
    assert model.board(datetime(2026, 12, 7, 8, 0, tzinfo=TZ)).mode == CALLS


def test_a_hall_kept_open_never_shows_the_closed_board(hall: HallConfig) -> None:
    night = Feed(hall, always_open=True, start=datetime(2026, 11, 29, 23, 0, tzinfo=TZ))  # a Sunday night
    model = synced(hall, night)
    assert model.board(night.now).mode == CALLS


# ---------------------------------------------------------------- language rotation


def test_static_texts_take_the_hall_languages_in_turn(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed)
    period = model.display.rotate_languages_s
    turn = period * len(hall.languages)
    start = datetime.fromtimestamp((feed.now.timestamp() // turn + 1) * turn, TZ)
    seen = [model.board(start + timedelta(seconds=period * i)) for i in range(len(hall.languages) + 1)]
    assert [b.labels.lang for b in seen] == [*hall.languages, "sv"]
    assert hall.languages[:4] == ("sv", "fi", "en", "se")
    assert [b.header.hall_name for b in seen[:2]] == [hall.name["sv"], hall.name["fi"]]
    assert [q.name for q in seen[1].queues][:1] == ["Yleinen neuvonta"]
    assert model.next_change(start) == start + timedelta(seconds=period)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.floats(min_value=0, max_value=7 * 86400), period=st.sampled_from([0, 3, 7, 10, 60]))
def test_the_language_changes_only_when_the_model_says_the_board_changes(hall: HallConfig, offset: float,
                                                                        period: int) -> None:
    model = DisplayModel.for_display(with_display(hall, "entrance", rotate_languages_s=period), "entrance")
    now = MONDAY_9 + timedelta(seconds=offset)
    change = model.next_change(now)
    assert now < change <= now + timedelta(minutes=1)
    just_before = change - timedelta(microseconds=1)
    assert model.lang(just_before) == model.lang(now)
    assert clock_text(just_before) == clock_text(now)
    if period == 0:
        assert model.lang(now) == "sv"


def test_a_fixed_language_never_turns(hall: HallConfig, feed: Feed) -> None:
    model = synced(hall, feed, fixed_lang="se")
    assert {model.board(feed.now + timedelta(seconds=s)).labels.lang for s in range(0, 100, 7)} == {"se"}
    with pytest.raises(ValueError, match="language"):
        DisplayModel.for_display(hall, "entrance", fixed_lang="ja")
    with pytest.raises(ValueError, match="lobby"):
        DisplayModel.for_display(hall, "lobby")


# ---------------------------------------------------------------- any order of operations


OPS = st.lists(st.tuples(st.sampled_from(["issue", "next", "recall", "done", "noshow", "forward", "pause",
                                          "reconnect", "late_state"]),
                         st.sampled_from(["1", "2", "3", "4", "6"]),
                         st.sampled_from(["general", "permits", "parking", "appointments"])),
               min_size=1, max_size=40)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_run_of_the_hall_announces_each_live_call_once_and_ends_on_the_servers_board(
        hall: HallConfig, ops: list[tuple[str, str, str]]) -> None:
    feed = Feed(hall)
    for counter in ("1", "2", "3", "4", "6"):
        feed.counter(counter, "open")
    model = synced(hall, feed)
    said: list[Announce] = []
    called: list[int] = []
    held: list[StateIn] = []
    for op, counter, topic in ops:
        feed.advance(seconds=7)
        if op == "reconnect":
            model.feed(LinkIn(False), feed.now)
            said += connect(model, feed)
            continue
        if op == "late_state":
            held = feed.retained()  # delivered after later events: must not undo them
            continue
        if op == "issue":
            events = feed.issue(topic)
        elif op == "forward":
            events = feed.counter(counter, "forward", topic=topic)
        elif op == "done":
            events = feed.counter(counter, "done", outcome="resolved")
        else:
            events = feed.counter(counter, op)
        called += [e["seq"] for e in events if e["type"] == p.TICKET_CALLED]
        said += live(model, feed, events, state=False)
        for item in held:
            said += model.feed(item, feed.now)
        held = []
    said += live(model, feed, [], state=True)
    assert sorted(a.seq for a in said) == called  # every call said once, nothing else, nothing twice
    engine_current = {c: s.current for c, s in feed.engine.state.counters.items() if s.current}
    assert {c.counter: c.number for c in model.current_calls()} == engine_current
    board = model.board(feed.now)
    shown = [board.hero, *board.current] if board.hero else []
    assert [c.number for c in shown] == [c.number for c in model.current_calls()]
    assert len({c.number for c in (*shown, *board.history)}) == len(shown) + len(board.history)


# ---------------------------------------------------------------- months unattended


def shifted(payload: dict[str, Any], offset: int) -> dict[str, Any]:
    """A payload of a later day: every seq in it moved on by offset (calls carry their own)."""
    moved = {**payload, "seq": payload["seq"] + offset}
    if isinstance(payload.get("calls"), list):
        moved["calls"] = [{**call, "seq": call["seq"] + offset} for call in payload["calls"]]
    return moved


def test_thousands_of_calls_leave_the_models_memory_where_it_was(hall: HallConfig) -> None:
    """A day of the engine's real traffic (900 calls) replayed as 24 days, 21,600 calls: the model keeps
    what it shows and nothing more. Replayed rather than re-run so that the engine's own work stays out
    of the measurement and the test stays quick."""
    feed = Feed(hall)
    day: list[Input] = []
    for counter in ("1", "2", "3"):
        feed.counter(counter, "open")
    for index in range(900):
        feed.issue("general")
        feed.counter("123"[index % 3], "next")
        feed.advance(seconds=20)
        if index % 10 == 0:
            day += [EventIn(e) for e in feed.published] + feed.retained()
            feed.published.clear()
    day += [EventIn(e) for e in feed.published] + feed.retained()
    span = feed.engine.state.seq
    model = DisplayModel.for_display(hall, "entrance")
    model.feed(LinkIn(True), feed.now)
    model.feed(feed.server(), feed.now)
    moment = itertools.count()

    def replay(days: range) -> None:
        for number in days:
            offset = number * span
            for item in day:
                now = MONDAY_9 + timedelta(days=number, seconds=next(moment) % 80000)
                if isinstance(item, EventIn):
                    model.feed(EventIn(shifted(dict(item.data), offset)), now)
                else:
                    model.feed(StateIn(item.part, shifted(dict(item.data), offset)), now)
            model.board(now)

    replay(range(0, 2))  # warm up: caches, the first boards
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        replay(range(2, 26))
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if "display" in s.traceback[0].filename)
    assert len(model.calls) <= CALLS_KEPT
    assert model.heard > 25 * span  # it really took every day in
    assert grown < 32 * 1024, f"the display model grew by {grown} bytes over 21,600 calls"


# ---------------------------------------------------------------- whatever arrives


GARBAGE = (st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=False) | st.text(max_size=4)
           | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
CALL = st.fixed_dictionaries(
    {"number": st.sampled_from(["A001", "B002", ""]) | GARBAGE, "counter": st.sampled_from(["1", "4", "99"]) | GARBAGE,
     "seq": st.integers(0, 10**6) | GARBAGE},
    optional={"at": st.sampled_from(["2026-11-30T09:00:00+02:00", "yesterday"]) | GARBAGE,
              "recall": st.integers(0, 3) | GARBAGE, "recalls": GARBAGE,
              "lang": st.sampled_from(["fi", "xx"]) | GARBAGE,
              "topic": st.sampled_from(["general", "nope"]) | GARBAGE, "state": st.sampled_from(["called"]) | GARBAGE,
              "called_at": GARBAGE})
PAYLOADS = st.fixed_dictionaries(  # a seq that is a number, or the model rightly ignores the whole message
    {"seq": st.integers(0, 10**6)},
    optional={"calls": st.lists(CALL | GARBAGE, max_size=3) | GARBAGE, "ticket": CALL | GARBAGE,
              "counter": st.sampled_from(["1", "6", "99"]) | GARBAGE, "recall": st.integers(0, 2) | GARBAGE,
              "at": GARBAGE, "status": st.sampled_from(["online", "open", "closed"]) | GARBAGE,
              "day": st.sampled_from(["2026-11-30", "2026-12-01"]) | GARBAGE, "waiting": GARBAGE,
              "expected_wait_s": GARBAGE, "always_open": GARBAGE})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["state", "event", "server"]),
                          st.sampled_from([p.HALL_PART, p.CALLS_PART, "counter/1", "queue/general", "counter/9",
                                           "stats", "ticket.called", "ticket.done", "day.started"]),
                          PAYLOADS), max_size=12))
def test_malformed_or_surprising_messages_never_break_the_board(
        hall: HallConfig, feed: Feed, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
    model = synced(hall, feed)
    feed.issue("general")
    live(model, feed, feed.counter("1", "next"))
    for kind, name, payload in messages:
        if kind == "state":
            model.feed(StateIn(name, payload), feed.now)
        elif kind == "event":
            model.feed(EventIn({**payload, "type": name} if "type" not in payload else payload), feed.now)
        else:
            model.feed(ServerIn(payload), feed.now)
        board = model.board(feed.now)
        assert board.mode in (CALLS, CLOSED, STARTING)
        model.next_change(feed.now)
