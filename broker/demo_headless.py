"""`vuoro demo --headless`: the demo hall with no windows, and a scripted morning of visitors and staff.

Everything goes through the real parts: the hall server with its event log, the embedded broker, and one
MQTT client per device (a kiosk, every counter) sending the same commands the apps send. Only time is
compressed: the server runs on a clock `--speed` times faster than the wall (a morning in about a minute),
so its waits, estimates and statistics are in the hall's own minutes. The visitors (when they come, what
about, how long their visit takes, who is forwarded or leaves before being called) are drawn from the
simulator's weekday profile (broker/scenario.py), so the demo and `vuoro simulate` tell the same story.
At the end the day's figures are read back from the event log by broker/stats.py, as `vuoro report` does.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from kiosk.ticket import wait_range_minutes  # as the paper ticket prints it

from . import protocol as p
from . import stats
from .client import CommandError, HallClient
from .config import HallConfig
from .scenario import Behaviour, Visitor, make_visitors, weekday_arrivals, weekday_profile

MORNING_END_H = 12  # visitors arrive until noon
LAST_CALL_H = 14  # the script stops at 14:00 hall time even if someone still waits
DEMO_KIOSK = "K1"


def config_text(hall: HallConfig, text: Any) -> str:
    """A name from the hall file for this English terminal output: in English if the hall has it."""
    return str(text.get("en") or text[hall.main_language])


class ScaledClock:
    """The hall's time, `speed` times faster than the wall from `start` on: what the demo server reads."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed, self._t0 = start, speed, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def wait_until(self, moment: datetime) -> None:
        ahead = (moment - self.now()).total_seconds()
        if ahead > 0:
            time.sleep(ahead / self.speed)


def demo_day(hall: HallConfig, today: date) -> date:
    """The next day the hall is open (today included): the morning the demo plays."""
    for offset in range(14):
        day = today + timedelta(days=offset)
        if hall.hours.window(day) is not None:
            return day
    raise ValueError(f"hall {hall.id} is not open on any of the next 14 days")


def morning_visitors(hall: HallConfig, day: date, count: int, seed: int) -> tuple[Visitor, ...]:
    """`count` visitors between opening and noon, with the weekday profile's morning peak."""
    def morning(minute: float) -> float:
        return weekday_profile(minute) if minute < MORNING_END_H * 60 else 0.0

    arrivals = weekday_arrivals(hall, day, count, seed, profile=morning)
    return make_visitors(hall, arrivals, Behaviour(), seed)


@dataclass
class Desk:
    """One counter's script: whom it serves now, and which visit of theirs it is."""

    id: str
    client: HallClient
    serving: str | None = None
    idle: bool = True


@dataclass
class Script:
    hall: HallConfig
    day: date
    clock: ScaledClock
    kiosk: HallClient
    desks: dict[str, Desk]
    visitors: tuple[Visitor, ...]
    say: Callable[[str], None]
    behaviour: Behaviour = field(default_factory=Behaviour)
    by_number: dict[str, Visitor] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)  # number -> visits begun (a forward starts a second)
    _queue: list[tuple[datetime, int, str, tuple[Any, ...]]] = field(default_factory=list)
    _order: itertools.count = field(default_factory=itertools.count)

    def at(self, seconds: float) -> datetime:
        return datetime.combine(self.day, dtime(), self.hall.tz) + timedelta(seconds=seconds)

    def later(self, moment: datetime, action: str, *args: Any) -> None:
        heapq.heappush(self._queue, (moment, next(self._order), action, args))

    def name(self, text: Any) -> str:
        return config_text(self.hall, text)

    def line(self, moment: datetime, text: str) -> None:
        self.say(f"{moment:%H:%M:%S}  {text}")

    # ------------------------------------------------------------ the morning

    def run(self) -> None:
        opens = self.hall.hours.window(self.day)
        assert opens is not None
        start = datetime.combine(self.day, opens[0], self.hall.tz)
        for offset, desk in enumerate(self.desks.values()):
            self.later(start + timedelta(seconds=20 * offset), "open", desk)
        for visitor in self.visitors:
            self.later(self.at(visitor.at), "arrive", visitor)
        stop = datetime.combine(self.day, dtime(LAST_CALL_H), self.hall.tz)
        while self._queue:
            moment, _, action, args = heapq.heappop(self._queue)
            if moment > stop:
                self.line(stop, "the script stops; whoever still waits is left to the real hall")
                break
            self.clock.wait_until(moment)
            getattr(self, f"_{action}")(self.clock.now(), *args)
        # The queue of actions runs dry when the last visitor has left and every counter has found no one.

    def _open(self, now: datetime, desk: Desk) -> None:
        desk.client.request("open")
        self.line(now, f"counter {desk.id} opens")
        self._call(now, desk)

    def _arrive(self, now: datetime, visitor: Visitor) -> None:
        result = self.kiosk.request("issue", topic=visitor.topic, lang=visitor.lang or self.hall.main_language,
                                    priority=visitor.priority)
        ticket = result["ticket"]
        self.by_number[ticket["number"]] = visitor
        single = round(ticket["expected_wait_s"] / 60)
        low, high = wait_range_minutes(ticket.get("expected_wait_range_s")) or (single, single)
        priority = ", priority" if ticket["priority"] else ""
        self.line(now, f"{ticket['number']} drawn at {DEMO_KIOSK} ({ticket['lang']}{priority}): "
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
        try:
            ticket = desk.client.request("next")["ticket"]
        except CommandError as exc:
            if exc.code != p.Err.QUEUE_EMPTY:
                raise
            desk.idle, desk.serving = True, None
            return
        number = ticket["number"]
        desk.idle, desk.serving = False, number
        visit = self.visits.get(number, 0)
        self.visits[number] = visit + 1
        visitor = self.by_number[number]
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
        desk.client.request("recall")
        self.line(now, f"{number} recalled at counter {desk.id} ({recalls})")
        if recalls < self.hall.rules.noshow_after_recalls:
            self.later(now + timedelta(seconds=self.behaviour.recall_after_s), "recall", desk, number, recalls + 1)
        else:
            self.later(now + timedelta(seconds=self.behaviour.recall_after_s), "noshow", desk, number)

    def _noshow(self, now: datetime, desk: Desk, number: str) -> None:
        desk.client.request("noshow")
        self.line(now, f"{number} did not come: no-show at counter {desk.id}")
        self._call(now, desk)

    def _finish(self, now: datetime, desk: Desk, number: str) -> None:
        visitor = self.by_number[number]
        if visitor.forward is not None and self.visits[number] == 1:
            target = self._forward_counter(visitor.forward, desk.id) if visitor.to_counter else None
            if target is not None:
                desk.client.request("forward", counter=target, note="demo: needs a specialist")
                self.line(now, f"{number} forwarded by counter {desk.id} to counter {target}")
            else:
                desk.client.request("forward", topic=visitor.forward)
                self.line(now, f"{number} forwarded by counter {desk.id} to "
                               f"{self.name(self.hall.topics[visitor.forward].name)}")
            self._wake(now)
        else:
            outcome = "handed_on" if visitor.handed_on else "resolved"
            desk.client.request("done", outcome=outcome)
            self.line(now, f"{number} done at counter {desk.id} ({outcome.replace('_', ' ')})")
        self._call(now, desk)

    def _forward_counter(self, topic: str, here: str) -> str | None:
        """Another counter whose first tier is the topic: a forward to a named specialist, not to a queue."""
        return next((c.id for c in self.hall.home_counters(topic) if c.id in self.desks and c.id != here), None)


def run_headless(args: argparse.Namespace, hall: HallConfig) -> int:
    from .demo import hall_server
    from .store import Store

    day = demo_day(hall, datetime.now(hall.tz).date())
    visitors = morning_visitors(hall, day, args.visitors, args.seed)
    window = hall.hours.window(day)
    assert window is not None
    clock = ScaledClock(datetime.combine(day, window[0], hall.tz) - timedelta(seconds=30), args.speed)
    db = Path(args.db if args.db != "var/demo.sqlite" else "var/demo-headless.sqlite")
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # each headless run plays its own fresh morning
    say: Callable[[str], None] = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    started = time.monotonic()
    with hall_server(hall, db, args.broker, args.listen, clock=clock) as (_, address):
        print(f"vuoro demo --headless: hall {hall.id}, {day:%A %d %B %Y} from {window[0]:%H:%M}, "
              f"{len(visitors)} visitors, time x{args.speed:g}; broker {address.url}; log {db}", flush=True)
        clients = [HallClient(address, hall.id, "kiosk", DEMO_KIOSK)]
        clients += [HallClient(address, hall.id, "counter", counter_id) for counter_id in hall.counters]
        try:
            for client in clients:
                client.start(timeout=10)
            desks = {c.device: Desk(c.device, c) for c in clients[1:]}
            Script(hall, day, clock, clients[0], desks, visitors, say).run()
            for desk in desks.values():
                desk.client.request("close")
        finally:
            for client in clients:
                client.close()
    real_s = time.monotonic() - started
    store = Store(db, hall.id)
    try:
        tallies = stats.collect(store.events(), hall)
    finally:
        store.close()
    print(summary(hall, tallies, real_s))
    return 0


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
