"""What the expected wait has learned: service times per topic and counter, pauses, today's pace and the
range's two quantiles (`WaitModel`), from the hall's own events.

`HallState.apply` calls the `saw_*` methods for each event, so a replay of the log learns exactly the
same model; it is carried from day to day in the `day.started` event (`snapshot()` / `restore()`).
broker/estimate.py plays the queue forward with it. Pure: it imports nothing of the hall but the clock-free
arithmetic here (hallstate imports it; it imports neither hallstate nor estimate).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PAIR_WEIGHT = 0.1  # EMA weight of one visit in the (topic, counter) service time
PAIR_TRUST = 8  # visits at a counter before its own figure outweighs the topic's
FACTOR_WEIGHT = 0.05  # EMA weight of one visit in a counter's speed factor
PAUSE_WEIGHT = 0.3
PACE_WINDOW_S = 1800.0  # a topic's pace: its tickets of the last half hour...
PACE_MIN_SPAN_S = 600.0  # ...over at least ten minutes (a burst at opening is no pace for the day)...
PACE_MIN_TICKETS = 3  # ...once it has had this many
VISIT_MIN_S, VISIT_MAX_S = 5.0, 7200.0
PAUSE_DEFAULT_S = 15 * 60.0
LOW_TAU, HIGH_TAU = 0.1, 0.9  # the printed range aims to hold 80 % of real waits
QUANTILE_STEP = 0.02
LOW_START, HIGH_START = -0.35, 0.45


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


def epoch_s(at: str) -> float:
    """An event's ISO time as seconds since the epoch: how the wait model counts (hallstate and engine too)."""
    return datetime.fromisoformat(at).timestamp()
