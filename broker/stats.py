"""Statistics of a hall from its event log: what managers plan staff with. Pure: events in, figures out.

The log is read once, in order, by a `Collector`. It files every fact in a `Tally` under the finest
key it belongs to, (day, topic, counter, hour), with "" where a dimension does not apply:

- a ticket drawn (and one that expired) under its topic and the hour it was drawn; no counter;
- its wait (drawn -> first called), whether that was within the topic's target, how far the promised
  wait was off, and whether the first visit resolved the matter, under its topic, the hour it was
  drawn and the counter that called it first;
- a visit (served = ended done, forwarded, no-show; its length) under the topic it was served for, the
  counter and the hour it was called;
- a counter's time, split into serving, idle (open, nobody called) and paused, and the time visitors
  spent waiting (person-seconds), cut at the hours they fall in;
- a visitor's rating (1-5, from the ticket's web page) under the topic, counter and hour of the visit
  that ended done, so that the response rate is ratings / visits served of the same key. A comment is
  never filed: it lives in the event log only, and goes with the day's ticket rows when they are purged.

Tallies merge exactly (counts and sums add, value lists join), so any grouping (per day, topic, counter,
hour, or a whole month) is a merge of finest tallies, and the totals of every grouping add up. The
same tallies are what the store keeps of a day once its ticket rows are purged: they hold durations
and counts, never a ticket number, a language or a time of day finer than the hour.

Days are the hall's days as the log delimits them (`day.started`); the rollover events that end a
day (expiries and counters closed for `day_end`) belong to the day they end, and their time is taken
as the hall's closing time or the day's last other event, whichever is later, so a counter left
open overnight does not count as fifteen idle hours.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from broker import protocol as p
from broker.config import HallConfig

Key = tuple[str, str, str, int]  # (day, topic, counter, hour); "" where a dimension does not apply
DAY_END = "day_end"
log = logging.getLogger(__name__)


@dataclass
class Tally:
    issued: int = 0
    served: int = 0  # visits that ended done (resolved or handed on)
    noshows: int = 0
    expired: int = 0
    forwarded: int = 0  # visits that ended with the visitor sent on (not re-routing by a closing counter)
    waits: list[float] = field(default_factory=list)  # seconds, drawn -> first called
    with_target: int = 0  # waits of topics with a target wait (all, unless a topic left the config)
    within_target: int = 0
    service: list[float] = field(default_factory=list)  # seconds a visit held its counter (done or forwarded)
    first_contacts: int = 0  # tickets whose first visit ended done or forwarded
    resolved_first: int = 0  # ... done and resolved there
    serving_s: float = 0.0
    idle_s: float = 0.0
    paused_s: float = 0.0
    waiting_s: float = 0.0  # person-seconds of waiting
    promised: int = 0  # first calls of tickets that carried an expected wait
    promise_error_s: float = 0.0  # sum of |real wait - expected wait|
    ranged: int = 0  # ... that carried a range too
    in_range: int = 0
    ratings: list[float] = field(default_factory=list)  # visitors' scores, 1-5, of visits served

    def merge(self, other: Tally) -> Tally:
        """Add another tally into this one (returns self)."""
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, list):
                mine.extend(getattr(other, f.name))
            else:
                setattr(self, f.name, mine + getattr(other, f.name))
        return self

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # event times are in milliseconds: three decimals lose nothing
                value = [round(v, 3) for v in value]
            elif isinstance(value, float):
                value = round(value, 3)
            if value:
                data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        tally = cls()
        for f in fields(tally):
            if f.name in data:
                value = data[f.name]
                setattr(tally, f.name, [float(v) for v in value] if isinstance(value, list)
                        else type(getattr(tally, f.name))(value))
        return tally

    # ------------------------------------------------------------ figures

    def figures(self, hours: float | None = None) -> dict[str, Any]:
        """Everything a report row shows. `hours`: the span the tally covers, for the mean number waiting."""
        waits = sorted(self.waits)
        service = sorted(self.service)
        open_s = self.serving_s + self.idle_s + self.paused_s
        return {
            "issued": self.issued, "served": self.served, "noshows": self.noshows, "expired": self.expired,
            "forwarded": self.forwarded,
            "called": len(waits),
            "wait_mean_s": _mean(waits), "wait_median_s": statistics.median(waits) if waits else None,
            "wait_p90_s": percentile(waits, 0.9),
            "within_target": _share(self.within_target, self.with_target),
            "service_mean_s": _mean(service), "service_median_s": statistics.median(service) if service else None,
            "first_contact_resolution": _share(self.resolved_first, self.first_contacts),
            "serving_s": self.serving_s, "idle_s": self.idle_s, "paused_s": self.paused_s,
            "serving_share": _share(self.serving_s, open_s), "idle_share": _share(self.idle_s, open_s),
            "paused_share": _share(self.paused_s, open_s),
            "waiting_mean": None if not hours else self.waiting_s / (hours * 3600),
            "promise_mae_s": None if not self.promised else self.promise_error_s / self.promised,
            "promise_in_range": _share(self.in_range, self.ranged),
            "ratings": len(self.ratings), "rating_mean": _mean(self.ratings),
            "rating_counts": [sum(1 for r in self.ratings if r == score) for score in p.SCORES],
            **{f"rating_{score}": sum(1 for r in self.ratings if r == score) for score in p.SCORES},
            "response_rate": _share(len(self.ratings), self.served),
        }


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# ---------------------------------------------------------------- reading the log

@dataclass
class _Ticket:
    topic: str  # the topic it was drawn for
    issued: datetime
    hour: int
    promised: int | None
    promise_range: tuple[int, int] | None
    first_counter: str = ""  # "" until first called
    first_visit_open: bool = False  # its first visit has started and not ended
    waiting: tuple[str, datetime] | None = None  # (topic it waits in, since) while waiting
    visit: tuple[str, str, datetime, int] | None = None  # (topic, counter, called, hour) during a visit
    served_as: tuple[str, str, int] | None = None  # (topic, counter, hour) of its last visit that ended done


@dataclass
class _Counter:
    status: str = p.CLOSED
    since: datetime | None = None
    serving: bool = False


class Collector:
    """Reads events in log order and files them in tallies. `add` every event, then `finish()`."""

    def __init__(self, hall: HallConfig, *, today_only: bool = False) -> None:
        self.hall = hall
        self.today_only = today_only  # live figures: a new day drops the tallies of the days before
        self.tallies: dict[Key, Tally] = {}
        self.day: str | None = None
        self.days: list[str] = []
        self._tickets: dict[str, _Ticket] = {}
        self._counters: dict[str, _Counter] = {}
        self._last: datetime | None = None  # the day's last event that is not a rollover
        self.unknown: dict[str, int] = {}  # event type -> events of a type this collector cannot file

    # ------------------------------------------------------------ filing

    def tally(self, topic: str, counter: str, hour: int) -> Tally:
        key = (self.day or "", topic, counter, hour)
        found = self.tallies.get(key)
        if found is None:
            found = self.tallies[key] = Tally()
        return found

    def _spread(self, start: datetime, end: datetime, topic: str, counter: str, name: str,
                into: dict[Key, Tally] | None = None) -> None:
        """Add the seconds between start and end to `name`, cut at the hours they fall in."""
        tallies = self.tallies if into is None else into
        while start < end:
            top = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            cut = min(end, top)
            key = (self.day or "", topic, counter, start.hour)
            tally = tallies.get(key) or tallies.setdefault(key, Tally())
            setattr(tally, name, getattr(tally, name) + (cut - start).total_seconds())
            start = cut

    def _counter_to(self, counter_id: str, at: datetime, status: str | None = None,
                    serving: bool | None = None) -> None:
        """A counter's time up to `at` is filed under what it was doing; then it does something else."""
        counter = self._counters.setdefault(counter_id, _Counter())
        if counter.since is not None and counter.status != p.CLOSED:
            name = "paused_s" if counter.status == p.PAUSED else "serving_s" if counter.serving else "idle_s"
            self._spread(counter.since, at, "", counter_id, name)
        counter.since = at
        if status is not None:
            counter.status = status
        if serving is not None:
            counter.serving = serving

    def _stop_waiting(self, ticket: _Ticket, at: datetime) -> None:
        if ticket.waiting is not None:
            topic, since = ticket.waiting
            self._spread(since, at, topic, "", "waiting_s")
            ticket.waiting = None

    def _end_visit(self, ticket: _Ticket, at: datetime, how: str, outcome: str | None = None) -> None:
        """A visit ends: `how` is done, forwarded, noshow or expired."""
        if ticket.visit is None:
            return
        topic, counter, called, hour = ticket.visit
        ticket.visit = None
        tally = self.tally(topic, counter, hour)
        if how == "done":
            tally.served += 1
            ticket.served_as = (topic, counter, hour)
        elif how == "forwarded":
            tally.forwarded += 1
        elif how == "noshow":
            tally.noshows += 1
        if how in ("done", "forwarded"):
            tally.service.append((at - called).total_seconds())
        if ticket.first_visit_open:
            ticket.first_visit_open = False
            if how in ("done", "forwarded"):
                first = self.tally(ticket.topic, ticket.first_counter, ticket.hour)
                first.first_contacts += 1
                first.resolved_first += how == "done" and outcome == "resolved"
        if counter in self._counters and self._counters[counter].serving:
            self._counter_to(counter, at, serving=False)

    # ------------------------------------------------------------ events

    def add(self, event: p.Event) -> None:
        at = datetime.fromisoformat(event.at)
        data = event.data
        if event.type == p.DAY_STARTED:
            self.finish()
            if self.today_only:
                self.tallies.clear()
            self.day = str(data["day"])
            self.days.append(self.day)
            self._tickets.clear()
            self._last = at
            return
        if self.day is None:  # events before the first day.started of a range: not a whole day, skipped
            return
        if data.get("reason") == DAY_END:
            at = self._day_end(at) or at
        else:
            self._last = at
        self._file(event.type, at, data)

    def _file(self, event_type: str, at: datetime, data: Mapping[str, Any]) -> None:
        match event_type:
            case p.TICKET_ISSUED:
                self._on_ticket_issued(at, data)
            case p.TICKET_CALLED:
                self._on_ticket_called(at, data)
            case p.TICKET_DONE:
                self._on_ticket_done(at, data)
            case p.TICKET_NOSHOW:
                self._on_ticket_noshow(at, data)
            case p.TICKET_FORWARDED:
                self._on_ticket_forwarded(at, data)
            case p.TICKET_EXPIRED:
                self._on_ticket_expired(at, data)
            case p.TICKET_FEEDBACK:
                self._on_ticket_feedback(at, data)
            case p.COUNTER_OPENED:
                self._counter_to(data["counter"], at, p.OPEN)
            case p.COUNTER_PAUSED:
                self._counter_to(data["counter"], at, p.PAUSED)
            case p.COUNTER_CLOSED:
                self._counter_to(data["counter"], at, p.CLOSED)
            case _:  # a log written by a newer version: its figures are missing, and the reader is told so
                self.unknown[event_type] = self.unknown.get(event_type, 0) + 1
                if self.unknown[event_type] == 1:
                    log.warning("statistics skip events of unknown type %r (first on %s)", event_type, self.day)

    def _day_end(self, at: datetime | None = None) -> datetime | None:
        """When the day ends for its open spans: its closing time or its last event, whichever is later
        (and never after `at`, the time a rollover event was logged)."""
        last = self._last or at
        if last is None or self.day is None:
            return last
        closes = self.hall.hours.closing_time(date.fromisoformat(self.day), last.tzinfo)
        end = last if closes is None else max(last, closes)
        return end if at is None else min(at, end)

    def _on_ticket_issued(self, at: datetime, data: Mapping[str, Any]) -> None:
        raw = data["ticket"]
        promise_range = raw.get("expected_wait_range_s")
        ticket = _Ticket(topic=raw["topic"], issued=at, hour=at.hour,
                         promised=raw.get("expected_wait_s"),
                         promise_range=tuple(promise_range) if isinstance(promise_range, list) else None)
        ticket.waiting = (ticket.topic, at)
        self._tickets[raw["number"]] = ticket
        self.tally(ticket.topic, "", ticket.hour).issued += 1

    def _on_ticket_called(self, at: datetime, data: Mapping[str, Any]) -> None:
        ticket = self._tickets.get(data["ticket"]["number"])
        if ticket is None or ticket.waiting is None:
            return  # a recall, or a ticket of a day outside the range
        counter = data["counter"]
        topic = ticket.waiting[0]
        self._stop_waiting(ticket, at)
        ticket.visit = (topic, counter, at, at.hour)
        if not ticket.first_counter:
            ticket.first_counter, ticket.first_visit_open = counter, True
            self._first_call(ticket, at, counter)
        self._counter_to(counter, at, serving=True)

    def _first_call(self, ticket: _Ticket, at: datetime, counter: str) -> None:
        waited = (at - ticket.issued).total_seconds()
        tally = self.tally(ticket.topic, counter, ticket.hour)
        tally.waits.append(waited)
        topic = self.hall.topics.get(ticket.topic)
        if topic is not None:
            tally.with_target += 1
            tally.within_target += waited <= topic.target_wait_min * 60
        if ticket.promised is not None:
            tally.promised += 1
            tally.promise_error_s += abs(waited - ticket.promised)
        if ticket.promise_range is not None:
            tally.ranged += 1
            tally.in_range += ticket.promise_range[0] <= waited <= ticket.promise_range[1]

    def _on_ticket_done(self, at: datetime, data: Mapping[str, Any]) -> None:
        ticket = self._tickets.get(data["ticket"]["number"])
        if ticket is not None:
            self._end_visit(ticket, at, "done", data.get("outcome"))

    def _on_ticket_noshow(self, at: datetime, data: Mapping[str, Any]) -> None:
        ticket = self._tickets.get(data["ticket"]["number"])
        if ticket is not None:
            self._end_visit(ticket, at, "noshow")

    def _on_ticket_forwarded(self, at: datetime, data: Mapping[str, Any]) -> None:
        ticket = self._tickets.get(data["ticket"]["number"])
        if ticket is None:
            return
        self._stop_waiting(ticket, at)  # re-routed while waiting: it waits on, in its topic
        self._end_visit(ticket, at, "forwarded")
        ticket.waiting = (data.get("to_topic") or data["ticket"].get("topic") or ticket.topic, at)

    def _on_ticket_expired(self, at: datetime, data: Mapping[str, Any]) -> None:
        ticket = self._tickets.get(data["ticket"]["number"])
        if ticket is None:
            return
        self._stop_waiting(ticket, at)
        self._end_visit(ticket, at, "expired")
        ticket.first_visit_open = False
        self.tally(ticket.topic, "", ticket.hour).expired += 1

    def _on_ticket_feedback(self, at: datetime, data: Mapping[str, Any]) -> None:
        ticket = self._tickets.get(data["ticket"]["number"])
        if ticket is not None and ticket.served_as is not None:
            self.tally(*ticket.served_as).ratings.append(float(data["score"]))

    # ------------------------------------------------------------ the end

    def finish(self) -> None:
        """Close the open spans of the day being read at its end (its closing time or its last event,
        whichever is later). Done at each day.started; call it once more after the last event."""
        end = self._day_end()
        if self.day is None or end is None:
            return
        for ticket in self._tickets.values():
            self._stop_waiting(ticket, end)
        for counter_id, counter in self._counters.items():
            if counter.status != p.CLOSED and counter.since is not None:
                self._counter_to(counter_id, max(end, counter.since))
        self._counters.clear()

    def open_spans(self, now: datetime) -> dict[Key, Tally]:
        """The time of what is still going on (counters at work, visitors waiting) up to `now`, as tallies
        to add for live figures; the collector itself is left as it is."""
        extra: dict[Key, Tally] = {}
        for ticket in self._tickets.values():
            if ticket.waiting is not None:
                self._spread(ticket.waiting[1], now, ticket.waiting[0], "", "waiting_s", extra)
        for counter_id, counter in self._counters.items():
            if counter.status != p.CLOSED and counter.since is not None:
                name = "paused_s" if counter.status == p.PAUSED else "serving_s" if counter.serving else "idle_s"
                self._spread(counter.since, now, "", counter_id, name, extra)
        return extra


def collect(events: Iterable[p.Event], hall: HallConfig) -> dict[Key, Tally]:
    """The finest tallies of a stretch of the log (whole days, from a day.started on)."""
    collector = Collector(hall)
    for event in events:
        collector.add(event)
    collector.finish()
    return collector.tallies


def day_rows(events: Iterable[p.Event], hall: HallConfig) -> dict[Key, dict[str, Any]]:
    """A day's finest tallies as JSON: what the store keeps of a day once its ticket rows are purged."""
    return {key: tally.to_json() for key, tally in collect(events, hall).items()}


def from_rows(rows: Iterable[tuple[str, str, str, int, Mapping[str, Any]]]) -> dict[Key, Tally]:
    return {(day, topic, counter, hour): Tally.from_json(data) for day, topic, counter, hour, data in rows}


# ---------------------------------------------------------------- groupings

DIMENSIONS = ("day", "topic", "counter", "hour")


def group(tallies: Mapping[Key, Tally], *by: str) -> dict[tuple[Any, ...], Tally]:
    """Merge the finest tallies into groups named by dimensions (`group(t, "day", "topic")`).

    A tally with no value in a grouped dimension ("" topic or counter) stays out of that grouping:
    counter time has no topic, a drawn ticket no counter.
    """
    index = [DIMENSIONS.index(name) for name in by]
    groups: dict[tuple[Any, ...], Tally] = {}
    for key, tally in tallies.items():
        label = tuple(key[i] for i in index)
        if any(value == "" for value in label):
            continue
        groups.setdefault(label, Tally()).merge(tally)
    return dict(sorted(groups.items()))


def total(tallies: Iterable[Tally]) -> Tally:
    result = Tally()
    for tally in tallies:
        result.merge(tally)
    return result
