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

Everything learned lives in `WaitModel`, changed only through its `saw_*` methods, which
`HallState.apply` calls for each event: a replay of the log learns exactly the same model, and the
model is carried from day to day in the `day.started` event (`snapshot()` / `restore()`).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import protocol as p

if TYPE_CHECKING:  # hallstate imports this module
    from .hallstate import HallState

PAIR_WEIGHT = 0.1  # EMA weight of one visit in the (topic, counter) service time
PAIR_TRUST = 8  # visits at a counter before its own figure outweighs the topic's
FACTOR_WEIGHT = 0.05  # EMA weight of one visit in a counter's speed factor
PAUSE_WEIGHT = 0.3
PACE_WINDOW_S = 1800.0  # a topic's pace: its tickets of the last half hour...
PACE_MIN_SPAN_S = 600.0  # ...over at least ten minutes (a burst at opening is no pace for the day)...
PACE_MIN_TICKETS = 3  # ...once it has had this many
VISIT_MIN_S, VISIT_MAX_S = 5.0, 7200.0
REMAINING_FLOOR = 0.5  # a visit past its expected length still has half of one to go
PAUSE_DEFAULT_S = 15 * 60.0
OVERDUE_PAUSE_SHARE = 0.3
LOW_TAU, HIGH_TAU = 0.1, 0.9  # the printed range aims to hold 80 % of real waits
QUANTILE_STEP = 0.02
LOW_START, HIGH_START = -0.35, 0.45
MAX_PICKS = 120  # calls played forward exactly; beyond them the topic's pace is extrapolated
PACE_PICKS = 30  # calls played forward to learn the pace when the ticket is further back than MAX_PICKS
ARRIVAL_HORIZON_S = 3 * 3600.0


@dataclass(frozen=True)
class Estimate:
    """Seconds until a ticket is expected to be called, and the range that should hold the real wait."""

    wait_s: int
    low_s: int
    high_s: int


@dataclass
class WaitModel:
    """What the hall has learned; serialisable, so the next day starts where this one ended."""

    topic_s: dict[str, float]  # mean time a visit of the topic holds a counter (done, forwarded or no-show)
    pair_s: dict[tuple[str, str], float] = field(default_factory=dict)  # (topic, counter) -> seconds
    pair_n: dict[tuple[str, str], int] = field(default_factory=dict)
    factor: dict[str, float] = field(default_factory=dict)  # counter -> speed relative to the topic mean
    pause_s: float = PAUSE_DEFAULT_S
    low_q: float = LOW_START
    high_q: float = HIGH_START
    calibrated: int = 0
    # today's pace (reset by day.started): when the first ticket was drawn, and each topic's recent tickets
    day_start: float | None = None
    issues: dict[str, list[float]] = field(default_factory=dict)  # in order, the last half hour's

    @classmethod
    def for_hall(cls, service_min: Mapping[str, float]) -> WaitModel:
        return cls(topic_s={topic: minutes * 60.0 for topic, minutes in service_min.items()})

    # ------------------------------------------------------------ learning (called by HallState.apply)

    def saw_visit(self, topic: str, counter: str, seconds: float) -> None:
        """A visit ended (done, forwarded or no-show): it held the counter this long."""
        if topic not in self.topic_s:
            return
        seconds = min(max(seconds, VISIT_MIN_S), VISIT_MAX_S)
        mean = self.topic_s[topic]
        key = (topic, counter)
        previous = self.service_s(topic, counter)
        self.pair_s[key] = previous + PAIR_WEIGHT * (seconds - previous)
        self.pair_n[key] = min(self.pair_n.get(key, 0) + 1, 1000)
        ratio = min(max(seconds / mean, 0.2), 5.0)
        old = self.factor.get(counter, 1.0)
        self.factor[counter] = old + FACTOR_WEIGHT * (ratio - old)
        self.topic_s[topic] = mean + PAIR_WEIGHT / 2 * (seconds - mean)

    def saw_pause(self, seconds: float) -> None:
        if seconds > 0:
            self.pause_s += PAUSE_WEIGHT * (min(seconds, 4 * 3600.0) - self.pause_s)

    def saw_issue(self, topic: str, at: float) -> None:
        if self.day_start is None:
            self.day_start = at
        recent = self.issues.setdefault(topic, [])
        recent.append(at)
        if recent[0] <= at - PACE_WINDOW_S:
            del recent[:bisect.bisect_right(recent, at - PACE_WINDOW_S)]

    def saw_first_call(self, topic: str, promised_s: float, waited_s: float) -> None:
        """The promise made at the kiosk meets the real wait: move the two quantiles of the error."""
        error = (waited_s - promised_s) / (promised_s + self.topic_s.get(topic, 300.0))
        self.low_q += QUANTILE_STEP * (LOW_TAU - (1.0 if error < self.low_q else 0.0))
        self.high_q += QUANTILE_STEP * (HIGH_TAU - (1.0 if error < self.high_q else 0.0))
        self.low_q = min(self.low_q, 0.0)
        self.high_q = max(self.high_q, 0.0)
        self.calibrated += 1

    def new_day(self) -> None:
        self.day_start = None
        self.issues.clear()

    # ------------------------------------------------------------ reading

    def service_s(self, topic: str, counter: str) -> float:
        """The expected length of a visit of this topic at this counter.

        A counter's own figure for the topic once it has served a few; before that, the topic's
        mean scaled by how fast this counter is at everything else.
        """
        mean = self.topic_s.get(topic, 300.0)
        prior = mean * self.factor.get(counter, 1.0)
        n = self.pair_n.get((topic, counter), 0)
        if n == 0:
            return prior
        own = self.pair_s[(topic, counter)]
        return own if n >= PAIR_TRUST else (n * own + (PAIR_TRUST - n) * prior) / PAIR_TRUST

    def arrival_gap_s(self, topic: str, now: float) -> float | None:
        """Seconds between new visitors of a topic at its pace of the last half hour (or since the day's
        first ticket, but at least ten minutes); None until it has had a few tickets in that time."""
        if self.day_start is None:
            return None
        recent = self.issues.get(topic, [])
        count = bisect.bisect_right(recent, now) - bisect.bisect_right(recent, now - PACE_WINDOW_S)
        if count < PACE_MIN_TICKETS:
            return None
        return max(PACE_MIN_SPAN_S, min(PACE_WINDOW_S, now - self.day_start)) / count

    def range_for(self, topic: str, wait_s: float) -> tuple[int, int]:
        scale = wait_s + self.topic_s.get(topic, 300.0)
        return (max(0, math.floor(wait_s + self.low_q * scale)), math.ceil(wait_s + self.high_q * scale))

    # ------------------------------------------------------------ carried over days

    def snapshot(self) -> dict[str, Any]:
        return {
            "topic_s": {t: round(s, 1) for t, s in self.topic_s.items()},
            "pair_s": {f"{t}/{c}": round(s, 1) for (t, c), s in self.pair_s.items()},
            "pair_n": {f"{t}/{c}": n for (t, c), n in self.pair_n.items()},
            "factor": {c: round(f, 4) for c, f in self.factor.items()},
            "pause_s": round(self.pause_s, 1),
            "range_q": [round(self.low_q, 4), round(self.high_q, 4)],
            "calibrated": self.calibrated,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take over a snapshot; figures for topics this hall no longer has are dropped."""
        for topic, seconds in data.get("topic_s", {}).items():
            if topic in self.topic_s:
                self.topic_s[topic] = float(seconds)
        pairs = {tuple(key.split("/", 1)): float(s) for key, s in data.get("pair_s", {}).items()}
        self.pair_s = {(t, c): s for (t, c), s in pairs.items() if t in self.topic_s}
        counts = {tuple(key.split("/", 1)): int(n) for key, n in data.get("pair_n", {}).items()}
        self.pair_n = {(t, c): n for (t, c), n in counts.items() if (t, c) in self.pair_s}
        self.factor = {c: float(f) for c, f in data.get("factor", {}).items()}
        self.pause_s = float(data.get("pause_s", self.pause_s))
        low, high = data.get("range_q", [self.low_q, self.high_q])
        self.low_q, self.high_q = float(low), float(high)
        self.calibrated = int(data.get("calibrated", self.calibrated))


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


class _Lanes(dict[str, _Lane]):
    """The queues, copied from the state the first time the play-forward looks at each (most never are)."""

    def __init__(self, state: HallState, depth: int) -> None:
        super().__init__()
        self.state, self.depth = state, depth  # no more can be called while playing forward

    def __missing__(self, topic: str) -> _Lane:
        keys, depth = self.state.waiting[topic], self.depth
        split = self.state.priority_waiting(topic)
        lane = self[topic] = _Lane(deque(k[1] for k in keys[:min(split, depth)]),
                                   deque(k[1] for k in keys[split:split + depth]),
                                   priority_rest=max(0, split - depth),
                                   normal_rest=max(0, len(keys) - split - depth))
        return lane


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
    its pause should end); the earliest free one calls whom `Engine.pick_next` would call, for as long
    as that counter takes for that topic. At most MAX_PICKS calls: a queue longer than that is
    finished at the pace the topic was served at while playing.
    """
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

    ahead = state.priority_waiting(topic) if priority else len(state.waiting[topic])
    reachable = ahead < MAX_PICKS
    picks = MAX_PICKS if reachable else PACE_PICKS
    lanes = _Lanes(state, picks)
    lane = lanes[topic]
    if reachable:
        (lane.priority if priority else lane.normal).append(TARGET)
    forwarded = {c: deque(state.tickets[n].topic for n in counter.forwarded)
                 for c, counter in state.counters.items() if counter.forwarded}
    # later arrivals, at today's pace, in the topics some counter serves before this one
    arrivals: list[tuple[float, str]] = []
    gaps: dict[str, float] = {}
    for other in _competitors(state, topic):
        if len(state.waiting[other]) >= picks:
            continue  # its new visitors come after more than can be called while playing
        gap = model.arrival_gap_s(other, now)
        if gap is not None and gap > 0:
            gaps[other] = gap
            arrivals.append((now + gap, other))
    heapq.heapify(arrivals)

    served_here = 0  # calls of the topic while playing...
    served_then = 0  # ...of which at the moment the play stopped (they have only begun)
    added = 0
    clock = last_call = now
    for _ in range(picks):
        if not free:
            break
        at, counter_id = heapq.heappop(free)
        clock = at
        while arrivals and arrivals[0][0] <= at:  # who has drawn a ticket by the time this counter is free
            when, other = heapq.heappop(arrivals)
            lanes[other].normal.append(TARGET + 1 + int((when - now) * 1000))
            added += 1
            if when + gaps[other] < now + ARRIVAL_HORIZON_S and added < picks:  # no more than could be called
                heapq.heappush(arrivals, (when + gaps[other], other))
        picked = _pick(hall.counters[counter_id].tiers, lanes, forwarded.get(counter_id))
        if picked is None:
            if arrivals:  # idle until the next arrival
                heapq.heappush(free, (max(at, arrivals[0][0]), counter_id))
            continue
        picked_topic, order = picked
        if order == TARGET:
            return at - now
        if picked_topic == topic:
            served_here += 1
            served_then = served_then + 1 if at == last_call else 1
            last_call = at
        heapq.heappush(free, (at + model.service_s(picked_topic, counter_id), counter_id))
    # not reached by playing forward: the rest goes at the pace the topic was served at meanwhile
    remaining = sum(1 for order in lane.priority if order < TARGET) + lane.priority_rest
    if not priority:
        remaining += sum(1 for order in lane.normal if order < TARGET) + lane.normal_rest
    served = served_here - served_then if last_call == clock else served_here
    rate = served / (clock - now) if served and clock > now else _capacity(state, topic)
    return (clock - now) + (remaining + 0.5) / rate if rate > 0 else (remaining + 1) * model.topic_s[topic]


def _pick(tiers: tuple[tuple[str, ...], ...], lanes: _Lanes,
          forwarded: deque[str] | None) -> tuple[str, int] | None:
    """What `Engine.pick_next` would call: forwarded here first, then the first tier with anyone waiting."""
    if forwarded:
        return forwarded.popleft(), 0
    for tier in tiers:
        best: tuple[int, str] | None = None
        for topic in tier:
            oldest = lanes[topic].oldest()
            if oldest is not None and (best is None or oldest < best[0]):
                best = (oldest, topic)
        if best is not None:
            return best[1], lanes[best[1]].pop()
    return None


def _competitors(state: HallState, topic: str) -> list[str]:
    """Topics served before (or beside) this one at a counter that serves it: their new visitors compete.
    (The topic's own new visitors come after the ticket and never go before it.)"""
    hall = state.hall
    found: dict[str, None] = {}
    for counter in hall.counters_serving(topic):
        tier = counter.tier_of(topic) or 0
        for earlier in counter.tiers[:tier + 1]:
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


def epoch_s(at: str) -> float:
    """An event's ISO time as seconds since the epoch: how the wait model counts (hallstate and engine too)."""
    return datetime.fromisoformat(at).timestamp()
