"""`vuoro demo --headless`: the demo hall with no windows, and a scripted morning of visitors and staff.

Everything goes through the real parts: the hall server with its event log, the embedded broker, and one
MQTT client per device (a kiosk, every counter) sending the same commands the apps send. Only time is
compressed: the server runs on a clock `--speed` times faster than the wall (a morning in about a minute),
so its waits, estimates and statistics are in the hall's own minutes. The visitors (when they come, what
about, how long their visit takes, who is forwarded or leaves before being called) are drawn from the
simulator's weekday profile (analytics/scenario.py), so the demo and `vuoro simulate` tell the same story.
At the end the day's figures are read back from the event log by broker/stats.py, as `vuoro report` does.

The morning is that of the first day the hall is open from today (or --date) on; --seed picks the visitors.
The hall is the real one others can reach (the command line finds it as it finds `vuoro server`), so the
script expects to be overtaken: a command refused (someone pressed the same counter's button first, or a
reply is late) is a line of the story and the counter carries on, never a traceback. tests/test_demo_dates.py
plays the script on the engine in-process over any day, seed and opening hours.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal, Protocol, assert_never

from analytics.scenario import Behaviour, Visitor, make_visitors, ticket_window, weekday_arrivals, weekday_profile
from broker import protocol as p
from broker import stats
from broker.client import CommandError, HallClient
from broker.config import HallConfig
from broker.estimate import wait_range_minutes  # as the paper ticket prints it
from vuoro.demo_server import hall_server, stop_signals, tell

MORNING_END_H = 12  # visitors arrive until noon...
MORNING_MIN_S = 4 * 3600  # ...or, in a hall that opens late, for its first four hours
LAST_CALL_AFTER_S = 2 * 3600  # the script stops this long after the last arrival even if someone still waits
OPEN_STAGGER_S = 20  # the counters open one after the other, this far apart
Action = Literal["open", "arrive", "next", "recall", "noshow", "finish"]  # what the script does next: see Script._do
LOOK_AHEAD_DAYS = 14  # the demo plays the first day the hall is open within this many days
DEMO_KIOSK = "K1"


def config_text(hall: HallConfig, text: Any) -> str:
    """A name from the hall file for this English terminal output: in English if the hall has it."""
    return str(text.get("en") or text[hall.main_language])


class HallTime(Protocol):
    """The script's clock: the hall's time, and a wait for a moment of it (False: stop waiting, stop)."""

    def now(self) -> datetime: ...

    def wait_until(self, moment: datetime) -> bool: ...


class Requester(Protocol):
    """What the script sends commands through: a HallClient, or whatever hands them to an engine."""

    def request(self, op: str, **fields: Any) -> dict[str, Any]: ...


class ScaledClock:
    """The hall's time, `speed` times faster than the wall from `start` on: what the demo server reads.
    It stands at `start` until `go()`: the broker, the server and the clients take a moment of the wall to
    start, many of the hall's minutes at this speed. `stop` ends every wait early (Ctrl-C)."""

    def __init__(self, start: datetime, speed: float, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self._base: tuple[datetime, float | None, float] = (start, None, speed)  # replaced whole: read by the server

    @property
    def speed(self) -> float:
        return self._base[2]

    def go(self) -> None:
        self._base = (self.now(), time.monotonic(), self.speed)

    def now(self) -> datetime:
        start, t0, speed = self._base
        return start if t0 is None else start + timedelta(seconds=(time.monotonic() - t0) * speed)

    def wait_until(self, moment: datetime) -> bool:
        ahead = (moment - self.now()).total_seconds()
        if ahead <= 0:
            return not self.stop.is_set()
        return not self.stop.wait(ahead / self.speed)

    def at_wall_speed(self) -> None:
        """From now on the hall's time runs as the wall's: the morning is over, people try it by hand."""
        self._base = (self.now(), time.monotonic(), 1.0)


def demo_day(hall: HallConfig, today: date) -> date | None:
    """The next day the hall is open (today included): the morning the demo plays; None if none is near."""
    for offset in range(LOOK_AHEAD_DAYS):
        day = today + timedelta(days=offset)
        if hall.hours.window(day) is not None:
            return day
    return None


@dataclass(frozen=True)
class Morning:
    """What the script plays: the day, when its counters open, when the last visitor may come and when
    the script stops, and the visitors."""

    day: date
    opens: datetime
    arrivals_end: datetime
    stop: datetime
    visitors: tuple[Visitor, ...]


def plan_morning(hall: HallConfig, today: date, count: int, seed: int) -> Morning | None:
    """`count` visitors from opening to noon (the weekday profile's morning peak) of the first day the hall
    is open from `today` on, or None if it is not open on any of the next LOOK_AHEAD_DAYS."""
    day = demo_day(hall, today)
    if day is None:
        return None
    opens_s, last_s = ticket_window(hall, day)  # last: the last-ticket cutoff, maybe before noon
    end_s = min(last_s, max(MORNING_END_H * 3600.0, opens_s + MORNING_MIN_S))

    def morning(minute: float) -> float:
        return weekday_profile(minute) if minute * 60 < end_s else 0.0

    visitors: tuple[Visitor, ...] = ()
    if count > 0 and end_s - opens_s >= 60:  # a window of less than a minute has no minute to arrive in
        visitors = make_visitors(hall, weekday_arrivals(hall, day, count, seed, profile=morning), Behaviour(), seed)
    midnight = datetime.combine(day, dtime(), hall.tz)
    arrivals_end = midnight + timedelta(seconds=max(end_s, opens_s))
    # Never past midnight: the server starts a new day there, closing every counter and expiring every ticket.
    stop = min(arrivals_end + timedelta(seconds=LAST_CALL_AFTER_S),
               datetime.combine(day + timedelta(days=1), dtime(), hall.tz) - timedelta(seconds=1))
    return Morning(day, midnight + timedelta(seconds=opens_s), arrivals_end, stop, visitors)


@dataclass
class Desk:
    """One counter's script: whether it is open, whom it serves now.

    `idle`: open, and found nobody to call; the next arrival or forward wakes it. A counter that has not
    opened yet is not idle: it calls its first visitor when it opens, never before."""

    id: str
    client: Requester
    opened: bool = False
    serving: str | None = None
    idle: bool = False


@dataclass
class Script:
    hall: HallConfig
    morning: Morning
    clock: HallTime
    kiosk: Requester
    desks: dict[str, Desk]
    say: Callable[[str], None]
    healthy: Callable[[], bool] = lambda: True  # False once the hall server has stopped: nobody would answer
    behaviour: Behaviour = field(default_factory=Behaviour)
    by_number: dict[str, Visitor] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)  # number -> visits begun (a forward starts a second)
    _queue: list[tuple[datetime, int, Action, tuple[Any, ...]]] = field(default_factory=list)
    _order: itertools.count = field(default_factory=itertools.count)

    def at(self, seconds: float) -> datetime:
        return datetime.combine(self.morning.day, dtime(), self.hall.tz) + timedelta(seconds=seconds)

    def later(self, moment: datetime, action: Action, *args: Any) -> None:
        heapq.heappush(self._queue, (moment, next(self._order), action, args))

    def name(self, text: Any) -> str:
        return config_text(self.hall, text)

    def line(self, moment: datetime, text: str) -> None:
        self.say(f"{moment:%H:%M:%S}  {text}")

    def _refused(self, now: datetime, who: str, op: str, exc: CommandError) -> None:
        """A refusal is part of the story (someone in a second terminal may press the same counter's
        buttons, or the server may be slow to answer): said, never a traceback."""
        self.line(now, f"{who}: {op} refused: {exc.code} ({exc.message})")

    def _ask(self, now: datetime, desk: Desk, op: str, **fields: Any) -> dict[str, Any] | None:
        """A counter's command; refused, the desk forgets its visit and calls the next visitor instead."""
        try:
            return desk.client.request(op, **fields)
        except CommandError as exc:
            self._refused(now, f"counter {desk.id}", op, exc)
        desk.serving = None
        self._call(now, desk)
        return None

    # ------------------------------------------------------------ the morning

    def run(self) -> None:
        for offset, desk in enumerate(self.desks.values()):
            self.later(self.morning.opens + timedelta(seconds=OPEN_STAGGER_S * offset), "open", desk)
        for visitor in self.morning.visitors:
            self.later(self.at(visitor.at), "arrive", visitor)
        while self._queue:
            moment, _, action, args = heapq.heappop(self._queue)
            if moment > self.morning.stop:
                self.line(self.morning.stop, "the script stops; whoever still waits is left to the real hall")
                break
            if not self.clock.wait_until(moment):
                self.line(self.clock.now(), "the script is stopped; whoever still waits is left to the real hall")
                break
            if not self.healthy():
                self.line(self.clock.now(), "the hall server has stopped: so does the script")
                break
            self._do(action, self.clock.now(), args)
        # The queue of actions runs dry when the last visitor has left and every counter has found no one.

    def _do(self, action: Action, now: datetime, args: tuple[Any, ...]) -> None:
        match action:
            case "open":
                self._open(now, *args)
            case "arrive":
                self._arrive(now, *args)
            case "next":
                self._next(now, *args)
            case "recall":
                self._recall(now, *args)
            case "noshow":
                self._noshow(now, *args)
            case "finish":
                self._finish(now, *args)
            case _:  # mypy proves this unreachable; at run time an action queued by mistake stops the script loudly
                assert_never(action)

    def close(self) -> None:
        """Every counter goes home (one that never opened, or was closed by someone else, says so harmlessly)."""
        now = self.clock.now()
        for desk in self.desks.values():
            if not self.healthy():
                return
            try:
                desk.client.request("close")
            except CommandError as exc:
                self._refused(now, f"counter {desk.id}", "close", exc)
            desk.opened, desk.idle, desk.serving = False, False, None

    def _open(self, now: datetime, desk: Desk) -> None:
        try:
            desk.client.request("open")
        except CommandError as exc:
            self._refused(now, f"counter {desk.id}", "open", exc)
            return
        desk.opened = True
        self.line(now, f"counter {desk.id} opens")
        self._call(now, desk)

    def _arrive(self, now: datetime, visitor: Visitor) -> None:
        priority = visitor.priority and self.hall.rules.priority_allowed
        lang = visitor.lang if visitor.lang in self.hall.languages else self.hall.main_language
        try:
            ticket = self.kiosk.request("issue", topic=visitor.topic, lang=lang, priority=priority)["ticket"]
        except CommandError as exc:
            self._refused(now, f"kiosk {DEMO_KIOSK}", "issue", exc)
            return
        self.by_number[ticket["number"]] = visitor
        single = round(ticket["expected_wait_s"] / 60)
        low, high = wait_range_minutes(ticket.get("expected_wait_range_s")) or (single, single)
        flag = ", priority" if ticket["priority"] else ""
        self.line(now, f"{ticket['number']} drawn at {DEMO_KIOSK} ({ticket['lang']}{flag}): "
                       f"{self.name(self.hall.topics[visitor.topic].name)}, {ticket['ahead']} ahead, "
                       f"expected {low}-{high} min")
        self._wake(now)

    def _wake(self, now: datetime) -> None:
        for desk in self.desks.values():
            if desk.idle:
                desk.idle = False
                self.later(now, "next", desk)

    def _next(self, now: datetime, desk: Desk) -> None:
        self._call(now, desk)

    def _call(self, now: datetime, desk: Desk) -> None:
        desk.serving = None
        try:
            ticket = desk.client.request("next")["ticket"]
        except CommandError as exc:
            if exc.code != p.Err.QUEUE_EMPTY:
                self._refused(now, f"counter {desk.id}", "next", exc)
            # Closed from elsewhere: out of the script. Anything else: tried again when someone arrives.
            desk.opened = exc.code != p.Err.COUNTER_CLOSED
            desk.idle = desk.opened
            return
        number = ticket["number"]
        desk.idle, desk.serving = False, number
        visit = self.visits.get(number, 0)
        self.visits[number] = visit + 1
        visitor = self.by_number.get(number)
        if visitor is None:  # drawn elsewhere (`vuoro ticket` in a second terminal): an ordinary visit
            visitor = self.by_number[number] = Visitor(at=0.0, topic=ticket["topic"])
        waited = (now - datetime.fromisoformat(ticket["issued_at"])).total_seconds() / 60
        self.line(now, f"{number} called to counter {desk.id}" + (f" after {waited:.0f} min" if not visit else
                                                                   " (forwarded)"))
        if visitor.leaves and not visit:
            self.later(now + timedelta(seconds=self.behaviour.recall_after_s), "recall", desk, number, 1)
            return
        self.later(now + timedelta(seconds=self._service_s(visitor, desk.id, visit)), "finish", desk, number)

    def _service_s(self, visitor: Visitor, counter: str, visit: int) -> float:
        """The visit's length: the hall's mean for topic and counter, spread log-normally by the visitor's draw."""
        topic = visitor.topic if not visit or visitor.forward is None else visitor.forward
        mean = self.behaviour.mean_service_s(self.hall, topic, counter)
        sigma = math.sqrt(math.log(1 + self.behaviour.service_cv ** 2))
        return mean * math.exp(sigma * visitor.service_z[min(visit, 1)] - sigma * sigma / 2)

    def _recall(self, now: datetime, desk: Desk, number: str, recalls: int) -> None:
        if self._ask(now, desk, "recall") is None:
            return
        self.line(now, f"{number} recalled at counter {desk.id} ({recalls})")
        if recalls < self.hall.rules.noshow_after_recalls:
            self.later(now + timedelta(seconds=self.behaviour.recall_after_s), "recall", desk, number, recalls + 1)
        else:
            self.later(now + timedelta(seconds=self.behaviour.recall_after_s), "noshow", desk, number)

    def _noshow(self, now: datetime, desk: Desk, number: str) -> None:
        if self._ask(now, desk, "noshow") is None:
            return
        self.line(now, f"{number} did not come: no-show at counter {desk.id}")
        self._call(now, desk)

    def _finish(self, now: datetime, desk: Desk, number: str) -> None:
        visitor = self.by_number[number]
        if visitor.forward is not None and self.visits[number] == 1:
            target = self._forward_counter(visitor.forward, desk.id) if visitor.to_counter else None
            if target is not None:
                if self._ask(now, desk, "forward", counter=target, note="demo: needs a specialist") is None:
                    return
                self.line(now, f"{number} forwarded by counter {desk.id} to counter {target}")
            else:
                if self._ask(now, desk, "forward", topic=visitor.forward) is None:
                    return
                self.line(now, f"{number} forwarded by counter {desk.id} to "
                               f"{self.name(self.hall.topics[visitor.forward].name)}")
            self._wake(now)
        else:
            outcome = "handed_on" if visitor.handed_on else "resolved"
            if self._ask(now, desk, "done", outcome=outcome) is None:
                return
            self.line(now, f"{number} done at counter {desk.id} ({outcome.replace('_', ' ')})")
        self._call(now, desk)

    def _forward_counter(self, topic: str, here: str) -> str | None:
        """Another open counter whose first tier is the topic: a forward to a named specialist, not to a queue.
        None while no such counter has opened yet (a closed counter refuses forwards): then to the topic."""
        return next((c.id for c in self.hall.home_counters(topic)
                     if c.id != here and c.id in self.desks and self.desks[c.id].opened), None)


def run_headless(args: argparse.Namespace, hall: HallConfig) -> int:
    today = args.date or datetime.now(hall.tz).date()
    morning = plan_morning(hall, today, args.visitors, args.seed)
    if morning is None:
        tell(f"vuoro demo: hall {hall.id} is not open on any of the {LOOK_AHEAD_DAYS} days from {today}: "
             "no morning to play", err=True)
        return 1
    stop = stop_signals()
    clock = ScaledClock(morning.opens - timedelta(seconds=30), args.speed, stop)
    db = Path(args.db if args.db != "var/demo.sqlite" else "var/demo-headless.sqlite")
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # each headless run plays its own fresh morning
    say: Callable[[str], None] = (lambda text: None) if args.quiet else tell
    started = time.monotonic()
    with hall_server(args, hall, db, clock=clock) as (service, address):
        tell(f"vuoro demo --headless: hall {hall.id}, {morning.day:%A %d %B %Y} from {morning.opens:%H:%M}, "
             f"{len(morning.visitors)} visitors, time x{args.speed:g}; broker {address.url}; log {db}")
        clients = [HallClient(address, hall.id, "kiosk", DEMO_KIOSK)]
        clients += [HallClient(address, hall.id, "counter", counter_id) for counter_id in hall.counters]
        try:
            for client in clients:
                client.start(timeout=10)  # one that cannot connect has its requests refused as `timeout`
            desks = {c.device: Desk(c.device, c) for c in clients[1:]}
            script = Script(hall, morning, clock, clients[0], desks, say, healthy=lambda: service.fatal is None)
            clock.go()
            script.run()
            script.close()
        finally:
            for client in clients:
                client.close()
        if service.fatal is not None:
            tell(f"vuoro demo: the hall server stopped on an error: {service.fatal}", err=True)
            return 1
        if args.keep_running and not stop.is_set():
            clock.at_wall_speed()
            tell(summary(hall, read_tallies(db, hall), time.monotonic() - started))
            tell(f"vuoro demo: the hall keeps running on broker {address.url} at the wall's speed; "
                 "Ctrl-C stops it")
            while not stop.wait(0.5) and service.fatal is None:
                pass
            tell("vuoro demo: stopped")
            return 0 if service.fatal is None else 1
    tell(summary(hall, read_tallies(db, hall), time.monotonic() - started))
    return 0


def read_tallies(db: Path, hall: HallConfig) -> dict[stats.Key, stats.Tally]:
    from broker.store import Store

    store = Store(db, hall.id)
    try:
        return stats.collect(store.events(), hall)
    finally:
        store.close()


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f} %"


def _letter(hall: HallConfig, topic_id: str) -> str:
    topic = hall.topics.get(topic_id)
    return topic.letter if topic else "~" + topic_id


def summary(hall: HallConfig, tallies: dict[stats.Key, stats.Tally], real_s: float) -> str:
    """The morning in figures, from the event log: per topic, and for the hall."""
    everything = stats.total(tallies.values()).figures()
    lines = ["", f"Summary (from the event log, {real_s:.0f} s of real time):",
             f"  {everything['issued']} tickets drawn, {everything['served']} visits served, "
             f"{everything['forwarded']} forwarded, {everything['noshows']} no-shows, {everything['expired']} expired",
             f"  wait to the first call: mean {_minutes(everything['wait_mean_s'])} min, median "
             f"{_minutes(everything['wait_median_s'])} min, 90th percentile {_minutes(everything['wait_p90_s'])} min; "
             f"{_percent(everything['within_target'])} within their topic's target",
             f"  resolved at the first counter: {_percent(everything['first_contact_resolution'])}; "
             f"the printed wait was off by {_minutes(everything['promise_mae_s'])} min on average, and "
             f"{_percent(everything['promise_in_range'])} of real waits fell within the printed range",
             "", f"  {'topic':<28}{'drawn':>6}{'served':>7}{'wait mean':>10}{'p90':>6}{'in target':>10}",
             f"  {'':<28}{'':>6}{'':>7}{'min':>10}{'min':>6}"]
    by_topic = stats.group(tallies, "topic")
    for (topic_id,), tally in sorted(by_topic.items(), key=lambda item: _letter(hall, item[0][0])):
        topic = hall.topics.get(topic_id)
        name = config_text(hall, topic.name) if topic else topic_id
        f = tally.figures()
        lines.append(f"  {topic.letter if topic else '?'} {name[:26]:<26}{f['issued']:>6}{f['served']:>7}"
                     f"{_minutes(f['wait_mean_s']):>10}{_minutes(f['wait_p90_s']):>6}{_percent(f['within_target']):>10}")
    return "\n".join(lines)
