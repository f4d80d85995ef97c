"""The expected wait printed on a ticket: a model that learns from the hall's own events and says how sure it is.

The simple estimate other queue systems print (average service time x people ahead / open counters)
ignores what decides a wait in a hall like ours: the visits already under way, the counters that
serve a topic only when their own first tier is empty, tickets forwarded to a counter (they go
first), staff who are faster or slower at some topics, and pauses. This model plays the present
queue forward, counter by counter, with the routing rule the engine itself uses ("next": forwarded
first, then the first tier with anyone waiting, longest wait first) and the service times it has
learned per topic and counter. Tickets that arrive later in a topic a counter serves first are
added at the pace the topic has had today. It never reads a clock: `now` comes from the engine.

The range printed with the estimate is learned too: every first call compares the real wait with
the promise made at the kiosk, and two running quantiles of that (normalised) error give a band that
holds about 80 % of real waits. `bench/estimate_bench.py` measures both against the simple estimate.

Everything learned lives in `WaitModel` (broker/waitmodel.py), changed only through its `saw_*` methods,
which `HallState.apply` calls for each event: a replay of the log learns exactly the same model, and the
model is carried from day to day in the `day.started` event (`snapshot()` / `restore()`).
Imports: the protocol, hallstate, routing and waitmodel (none of which imports this module).
"""

from __future__ import annotations

import heapq
import math
import operator
from collections import deque
from dataclasses import dataclass
from typing import Any

from broker import protocol as p
from broker.hallstate import HallState
from broker.routing import FORWARDED, next_source
from broker.waitmodel import WaitModel, epoch_s

__all__ = ["Estimate", "WaitModel", "epoch_s", "estimate_wait", "round_wait_minutes", "simple_wait_s",
           "wait_range_minutes"]

REMAINING_FLOOR = 0.5  # a visit past its expected length still has half of one to go
OVERDUE_PAUSE_SHARE = 0.3
# calls played forward exactly; beyond them the topic's pace is extrapolated (bench/estimate_bench.py: as close
# as with 120, at half the work for every ticket drawn)
MAX_PICKS = 60
PACE_PICKS = 30  # calls played forward to learn the pace when the ticket is further back than MAX_PICKS
ARRIVAL_HORIZON_S = 3 * 3600.0


@dataclass(frozen=True)
class Estimate:
    """Seconds until a ticket is expected to be called, and the range that should hold the real wait."""

    wait_s: int
    low_s: int
    high_s: int


# ---------------------------------------------------------------- the estimate

@dataclass
class _Lane:
    """One topic's queue as the play-forward sees it: priority tickets first, then the rest, by order."""

    priority: deque[int]
    normal: deque[int]
    priority_rest: int = 0  # tickets beyond the copied ones (never reached within MAX_PICKS)
    normal_rest: int = 0

    def oldest(self) -> int | None:
        # the hottest line of the play-forward: no list built, no min() called
        priority, normal = self.priority, self.normal
        if priority:
            return priority[0] if not normal or priority[0] < normal[0] else normal[0]
        return normal[0] if normal else None

    def pop(self) -> int:
        return (self.priority or self.normal).popleft()


class _Heads(dict[str, int | None]):
    """Each topic's oldest order in the play (None: nobody waits), read straight from the state until the
    play first changes that topic's lane. `next_source` asks for it for every topic of a counter's tiers at
    every call played: a plain dict lookup keeps that off the interpreter's slow path."""

    def __init__(self, state: HallState) -> None:
        super().__init__()
        self.state = state

    def __missing__(self, topic: str) -> int | None:
        keys = self.state.waiting[topic]
        head: int | None = None
        if keys:
            split = self.state.priority_waiting(topic)
            head = keys[0][1] if split == len(keys) or split == 0 else min(keys[0][1], keys[split][1])
        self[topic] = head
        return head


class _Lanes(dict[str, _Lane]):
    """The queues, copied from the state the first time the play-forward changes each (most never are)."""

    def __init__(self, state: HallState, depth: int) -> None:
        super().__init__()
        self.state, self.depth = state, depth  # no more can be called while playing forward
        self.heads = _Heads(state)

    def __missing__(self, topic: str) -> _Lane:
        keys, depth = self.state.waiting[topic], self.depth
        split = self.state.priority_waiting(topic)
        lane = self[topic] = _Lane(deque(map(_ORDER, keys[:min(split, depth)])),
                                   deque(map(_ORDER, keys[split:split + depth])),
                                   priority_rest=max(0, split - depth),
                                   normal_rest=max(0, len(keys) - split - depth))
        return lane

    def call(self, topic: str) -> int:
        """Take the next ticket of the topic off its lane (priority first)."""
        lane = self[topic]
        order = lane.pop()
        self.heads[topic] = lane.oldest()
        return order

    def join(self, topic: str, order: int, priority: bool = False) -> None:
        """Put a ticket at the end of the topic's lane."""
        lane = self[topic]
        (lane.priority if priority else lane.normal).append(order)
        self.heads[topic] = lane.oldest()


_ORDER = operator.itemgetter(1)  # a waiting key is (priority rank, order, number)


TARGET = 1 << 60  # the order of the ticket being estimated: after everyone present
# tickets that arrive later get TARGET + 1 + milliseconds after now, so they queue behind it


def estimate_wait(state: HallState, topic: str, priority: bool, now: float) -> Estimate:
    """The expected wait of a ticket drawn now in `topic`, with the range it should fall in."""
    model = state.model
    wait = _play_forward(state, topic, priority, now)
    wait = max(1.0, wait)
    low, high = model.range_for(topic, wait)
    return Estimate(wait_s=math.ceil(wait), low_s=min(low, math.ceil(wait)), high_s=max(high, math.ceil(wait)))


def _play_forward(state: HallState, topic: str, priority: bool, now: float) -> float:
    """Seconds until the new ticket is called, playing the counters forward one call at a time.

    Each counter open or paused is free at a moment (now; when its visit under way should end; when
    its pause should end); the earliest free one calls whom `Engine.pick_next` would call (the same
    rule: broker/routing.py), for as long as that counter takes for that topic. At most MAX_PICKS
    calls: a queue longer than that is finished at the pace the topic was served at while playing.
    """
    ahead = state.priority_waiting(topic) if priority else len(state.waiting[topic])
    reachable = ahead < MAX_PICKS
    play = _Play(state, topic, now, MAX_PICKS if reachable else PACE_PICKS)
    if reachable:
        play.lanes.join(topic, TARGET, priority)
    reached = play.run()
    lane = play.lanes[topic]
    if reached is not None:
        return reached - now
    # not reached by playing forward: the rest goes at the pace the topic was served at meanwhile
    remaining = sum(1 for order in lane.priority if order < TARGET) + lane.priority_rest
    if not priority:
        remaining += sum(1 for order in lane.normal if order < TARGET) + lane.normal_rest
    served = play.served_here - play.served_then if play.last_call == play.clock else play.served_here
    rate = served / (play.clock - now) if served and play.clock > now else _capacity(state, topic)
    return (play.clock - now) + (remaining + 0.5) / rate if rate > 0 else (remaining + 1) * state.model.topic_s[topic]


class _Play:
    """One play-forward: the counters' free moments, the queues' copies and the later arrivals."""

    def __init__(self, state: HallState, topic: str, now: float, picks: int) -> None:
        self.hall, self.model, self.topic, self.now, self.picks = state.hall, state.model, topic, now, picks
        self.free = _free_counters(state, topic, now)
        self.lanes = _Lanes(state, picks)
        self.forwarded = {c: deque(state.tickets[n].topic for n in counter.forwarded)
                          for c, counter in state.counters.items() if counter.forwarded}
        self.arrivals, self.gaps = _later_arrivals(state, topic, now, picks)
        self.added = 0
        self.served_here = 0  # calls of the topic while playing...
        self.served_then = 0  # ...of which at the moment the play stopped (they have only begun)
        self.clock = self.last_call = now

    def run(self) -> float | None:
        """Play up to `picks` calls; the moment the estimated ticket is called, or None if it is not."""
        free, hall, arrivals = self.free, self.hall, self.arrivals
        service: dict[tuple[str, str], float] = {}
        for _ in range(self.picks):
            if not free:
                break
            at, counter_id = heapq.heappop(free)
            self.clock = at
            if arrivals and arrivals[0][0] <= at:
                self._arrive_until(at)
            picked = _pick(hall.counters[counter_id].tiers, self.lanes, self.forwarded.get(counter_id))
            if picked is None:
                if arrivals:  # idle until the next arrival
                    heapq.heappush(free, (max(at, arrivals[0][0]), counter_id))
                continue
            picked_topic, order = picked
            if order == TARGET:
                return at
            if picked_topic == self.topic:
                self.served_here += 1
                self.served_then = self.served_then + 1 if at == self.last_call else 1
                self.last_call = at
            took = service.get((picked_topic, counter_id))
            if took is None:  # the model's figure is a few lookups and sums: once per pair in a play
                took = service[picked_topic, counter_id] = self.model.service_s(picked_topic, counter_id)
            heapq.heappush(free, (at + took, counter_id))
        return None

    def _arrive_until(self, at: float) -> None:
        """Who has drawn a ticket by the time a counter is free at `at`."""
        arrivals, now = self.arrivals, self.now
        while arrivals and arrivals[0][0] <= at:
            when, other = heapq.heappop(arrivals)
            self.lanes.join(other, TARGET + 1 + int((when - now) * 1000))
            self.added += 1
            gap = self.gaps[other]
            if when + gap < now + ARRIVAL_HORIZON_S and self.added < self.picks:  # no more than could be called
                heapq.heappush(arrivals, (when + gap, other))


def _free_counters(state: HallState, topic: str, now: float) -> list[tuple[float, str]]:
    """When each counter at work is free to call (a heap): now, when its visit should end or its pause."""
    hall, model = state.hall, state.model
    free: list[tuple[float, str]] = []
    for counter_id, counter in state.counters.items():
        if counter.status == p.OPEN:
            current = state.current_ticket(counter_id)
            at = now
            if current is not None and current.called_at is not None:
                expected = model.service_s(current.topic, counter_id)
                elapsed = now - epoch_s(current.called_at)
                at = now + max(expected - elapsed, REMAINING_FLOOR * expected)
            free.append((at, counter_id))
        elif counter.status == p.PAUSED:
            since = epoch_s(counter.since) if counter.since else now
            back = since + model.pause_s
            free.append((back if back > now else now + OVERDUE_PAUSE_SHARE * model.pause_s, counter_id))
    if not any(hall.counters[c].serves(topic) for _, c in free):
        # nobody serving the topic is at work yet: the counters it belongs to first are assumed to open
        free += [(now, c.id) for c in hall.home_counters(topic) if c.id not in {cid for _, cid in free}]
    heapq.heapify(free)
    return free


def _later_arrivals(state: HallState, topic: str, now: float,
                    picks: int) -> tuple[list[tuple[float, str]], dict[str, float]]:
    """Later arrivals, at today's pace, in the topics some counter serves before this one: the first of
    each (a heap) and each topic's gap between arrivals."""
    arrivals: list[tuple[float, str]] = []
    gaps: dict[str, float] = {}
    for other in _competitors(state, topic):
        if len(state.waiting[other]) >= picks:
            continue  # its new visitors come after more than can be called while playing
        gap = state.model.arrival_gap_s(other, now)
        if gap is not None and gap > 0:
            gaps[other] = gap
            arrivals.append((now + gap, other))
    heapq.heapify(arrivals)
    return arrivals, gaps


def _pick(tiers: tuple[tuple[str, ...], ...], lanes: _Lanes,
          forwarded: deque[str] | None) -> tuple[str, int] | None:
    """Whom `Engine.pick_next` would call, by the same rule (broker/routing.py): the topic and the order."""
    source = next_source(tiers, lanes.heads.__getitem__, forwarded=bool(forwarded))
    if source is None:
        return None
    if source == FORWARDED:
        assert forwarded is not None
        return forwarded.popleft(), 0
    return source, lanes.call(source)


def _competitors(state: HallState, topic: str) -> list[str]:
    """Topics served in an earlier tier than this one at a counter that serves it: their new visitors go first.

    New visitors of the topic itself, and of topics beside it in its tier, come after the ticket: a tier is
    served longest wait first, so they are never called before it at that counter and are not played."""
    hall = state.hall
    found: dict[str, None] = {}
    for counter in hall.counters_serving(topic):
        tier = counter.tier_of(topic) or 0
        for earlier in counter.tiers[:tier]:
            found.update(dict.fromkeys(t for t in earlier if t != topic))
    return list(found)


def _capacity(state: HallState, topic: str) -> float:
    """Visits of the topic per second the serving counters could give it, all else equal."""
    model = state.model
    counters = [c for c in state.hall.counters_serving(topic) if state.counters[c.id].status != p.CLOSED] \
        or state.hall.home_counters(topic)
    return sum(1.0 / (model.service_s(topic, c.id) * (1 + (c.tier_of(topic) or 0))) for c in counters)


def simple_wait_s(state: HallState, topic: str, ahead: int) -> int:
    """What other queue systems print: mean service time x people ahead / counters open for the topic."""
    open_counters = sum(1 for c in state.hall.counters_serving(topic) if state.counters[c.id].status == p.OPEN)
    counters = open_counters or len(state.hall.home_counters(topic))
    return math.ceil(state.service_time_s[topic] * ahead / counters)



# ---------------------------------------------------------------- the wait as a visitor reads it
# The paper ticket, the ticket's web page and `vuoro ticket` say the wait in these same steps.

def round_wait_minutes(seconds: float) -> int:
    """An honest estimate, not false precision: exact under 10 min, then 5-min, then 15-min steps."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 10:
        return minutes
    if minutes < 60:
        return math.ceil(minutes / 5) * 5
    return round(minutes / 15) * 15


def _step(minutes: float) -> int:
    return 1 if minutes < 10 else 5 if minutes < 60 else 15


def wait_range_minutes(range_s: Any) -> tuple[int, int] | None:
    """The server's range of the wait (expected_wait_range_s) in the same honest steps, widened outwards
    (low end down, high end up) so that rounding never narrows what the server promised. None when the
    range is missing, malformed or collapses to one value (then the single estimate is shown)."""
    if not (isinstance(range_s, list | tuple) and len(range_s) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in range_s)):
        return None
    low_min, high_min = range_s[0] / 60, range_s[1] / 60
    if high_min < low_min:
        return None
    low = math.floor(low_min / _step(low_min)) * _step(low_min)
    high = max(1, math.ceil(high_min / _step(high_min)) * _step(high_min))
    return (low, high) if low < high else None
