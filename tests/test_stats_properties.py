"""Statistics over random days of commands: the totals of every grouping add up, and agree with the log."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import protocol as p
from broker import stats
from broker.config import HallConfig
from tests.test_engine import Desk

TZ = ZoneInfo("Europe/Helsinki")
START = datetime(2026, 11, 30, 7, 50, tzinfo=TZ)
COUNTS = ("issued", "served", "noshows", "expired", "forwarded", "first_contacts", "resolved_first",
          "with_target", "within_target", "promised", "ranged", "in_range")
TIMES = ("serving_s", "idle_s", "paused_s", "waiting_s", "promise_error_s")

STEPS = st.lists(st.tuples(
    st.sampled_from(["issue", "issue", "issue", "issue", "next", "next", "next", "done", "done", "open", "open",
                     "pause", "close", "forward", "forward_counter", "recall", "noshow", "tomorrow"]),
    st.sampled_from(["general", "permits", "parking", "social", "taxes", "appointments"]),
    st.sampled_from(["1", "2", "3", "4", "5", "6"]), st.booleans(), st.integers(min_value=0, max_value=1500)),
    min_size=30, max_size=150)


def play(hall: HallConfig, steps: list) -> list[p.Event]:
    desk = Desk(hall, start=START)
    for op, topic, counter, flag, seconds in steps:
        desk.clock.advance(seconds=seconds)
        if op == "issue":
            desk.send("kiosk", "K1", "issue", topic=topic, priority=flag)
        elif op == "done":
            desk.send("counter", counter, "done", outcome="resolved" if flag else "handed_on")
        elif op == "forward":
            desk.send("counter", counter, "forward", topic=topic)
        elif op == "forward_counter":
            desk.send("counter", counter, "forward", counter=str(1 + (int(counter) % 6)))
        elif op == "tomorrow":
            desk.clock.advance(hours=20)
            desk.send("admin", "cli", "ping")
        else:
            desk.send("counter", counter, op)
    return desk.events


def sums(tallies: list[stats.Tally]) -> dict[str, float]:
    merged = stats.total(tallies)
    result: dict[str, float] = {name: getattr(merged, name) for name in COUNTS + TIMES}
    result["waits"], result["service"] = len(merged.waits), len(merged.service)
    return result


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_totals_add_up_across_groupings_and_agree_with_the_log(hall: HallConfig, steps: list) -> None:
    events = play(hall, steps)
    tallies = stats.collect(events, hall)
    everything = sums(list(tallies.values()))
    # every fact is in exactly one day and one hour
    for by in ("day", "hour"):
        assert sums(list(stats.group(tallies, by).values())) == pytest.approx(everything)
    assert sums(list(stats.group(tallies, "day", "topic", "counter", "hour").values())) == pytest.approx(
        sums([t for k, t in tallies.items() if k[1] and k[2]]))
    # what has a topic adds up over topics; what has a counter over counters
    by_topic = sums(list(stats.group(tallies, "topic").values()))
    for name in ("issued", "expired", "served", "noshows", "forwarded", "waits", "service", "first_contacts",
                 "resolved_first", "waiting_s", "within_target"):
        assert by_topic[name] == pytest.approx(everything[name]), name
    by_counter = sums(list(stats.group(tallies, "counter").values()))
    for name in ("served", "noshows", "forwarded", "waits", "service", "first_contacts", "resolved_first",
                 "serving_s", "idle_s", "paused_s", "within_target", "promised"):
        assert by_counter[name] == pytest.approx(everything[name]), name
    # and the counts are the log's
    seen = Counter(e.type for e in events)
    assert everything["issued"] == seen[p.TICKET_ISSUED]
    assert everything["expired"] == seen[p.TICKET_EXPIRED]
    assert everything["noshows"] == seen[p.TICKET_NOSHOW]
    assert everything["served"] == seen[p.TICKET_DONE]
    assert everything["forwarded"] == sum(1 for e in events if e.type == p.TICKET_FORWARDED
                                          and e.data.get("reason") != "counter_closed")
    first_calls = {(day, e.data["ticket"]["number"]) for day, e in _with_days(events)
                   if e.type == p.TICKET_CALLED and e.data["recall"] == 0}
    assert everything["waits"] == everything["with_target"] == everything["promised"] == len(first_calls)
    assert 0 <= everything["resolved_first"] <= everything["first_contacts"] <= everything["waits"]
    assert everything["within_target"] <= everything["waits"]
    assert all(w >= 0 for t in tallies.values() for w in t.waits + t.service)
    assert all(getattr(t, name) >= 0 for t in tallies.values() for name in TIMES)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_a_counters_time_is_its_open_time_and_tallies_survive_json(hall: HallConfig, steps: list) -> None:
    events = play(hall, steps)
    tallies = stats.collect(events, hall)
    for (counter,), tally in stats.group(tallies, "counter").items():
        assert tally.serving_s + tally.idle_s + tally.paused_s == pytest.approx(_open_time(events, hall, counter))
    for tally in tallies.values():  # what the store keeps of a purged day gives the same figures
        again, figures = stats.Tally.from_json(tally.to_json()).figures(), tally.figures()
        assert again.keys() == figures.keys()
        for key, value in figures.items():
            assert (again[key] is None) == (value is None), key
            if value is not None:
                assert again[key] == pytest.approx(value, abs=0.1), key


def _with_days(events: list[p.Event]) -> list[tuple[str, p.Event]]:
    day, result = "", []
    for event in events:
        if event.type == p.DAY_STARTED:
            day = event.data["day"]
        result.append((day, event))
    return result


def _open_time(events: list[p.Event], hall: HallConfig, counter: str) -> float:
    """A counter's time from opened to closed, straight from its own events (the day's end as stats takes it:
    the hall's closing time, or the last event before the rollover if that is later)."""
    total, since, last, day = 0.0, None, None, None
    for event in events:
        at = datetime.fromisoformat(event.at)
        if event.type == p.DAY_STARTED:
            day = event.data["day"]
            continue
        if event.data.get("reason") == "day_end":
            closes = hall.hours.closing_time(datetime.fromisoformat(day).date(), at.tzinfo) if day else None
            at = min(at, max(last, closes)) if closes and last else min(at, last or at)
        else:
            last = at
        if event.data.get("counter") != counter:
            continue
        if event.type in (p.COUNTER_OPENED, p.COUNTER_PAUSED) and since is None:
            since = at
        elif event.type == p.COUNTER_CLOSED and since is not None:
            total += (at - since).total_seconds()
            since = None
    if since is not None and last is not None:  # still open when the log ends: until the day's end
        closes = hall.hours.closing_time(datetime.fromisoformat(day).date(), last.tzinfo) if day else None
        total += ((max(last, closes) if closes else last) - since).total_seconds()
    return total


def test_open_time_helper_reads_a_whole_day(hall: HallConfig) -> None:
    """The helper above, on the hand-made morning: counter 1 was open 08:00-10:00, counter 4 until 17:00."""
    from tests.test_stats import the_morning

    events = the_morning(hall)
    assert _open_time(events, hall, "1") == 2 * 3600
    assert _open_time(events, hall, "4") == 9 * 3600
    assert timedelta(seconds=_open_time(events, hall, "2")) == timedelta(0)
