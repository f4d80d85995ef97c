"""What a simulated day is made of: its visitors (a weekday profile, or arrivals from a file or a real
log), how visitors and staff behave, and the staffing plan: which counters are open when.

Randomness is drawn once per visitor, before the day starts (how long each of their visits takes,
whether they leave before being called, whether they are forwarded), so two staffing plans are
compared on the very same visitors: the difference in waits is the plan's, not chance's.
Pure: no clock, no files (the CLI reads them and hands over their text).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING

from broker import protocol as p
from broker.config import HallConfig

if TYPE_CHECKING:
    from broker.stats import Tally

DAY_S = 24 * 3600


# ---------------------------------------------------------------- visitors

@dataclass(frozen=True)
class Visitor:
    """One visitor, with every random draw of their day made in advance."""

    at: float  # seconds after midnight (hall time) when they draw the ticket
    topic: str
    priority: bool = False
    lang: str | None = None
    service_z: tuple[float, float] = (0.0, 0.0)  # standard normal draws: the first visit, the one after a forward
    leaves: bool = False  # gone before being called: recalled, then a no-show
    forward: str | None = None  # topic the first counter forwards them to
    to_counter: bool = False  # forwarded to a counter of that topic rather than to the topic's queue
    handed_on: bool = False  # done, but not resolved here


@dataclass(frozen=True)
class Behaviour:
    """How visitors and staff behave; defaults are those of a typical municipal service centre."""

    service_cv: float = 0.6  # spread of visit lengths (log-normal): some visits are short, a few very long
    # "lognormal" (with service_cv, and no visit under 20 s) or "exponential" (the M/M/c textbook hall, no floor)
    service_dist: str = "lognormal"
    service_s: Mapping[str, float] = field(default_factory=dict)  # mean visit by topic; default: the hall's
    speed: Mapping[str, float] = field(default_factory=dict)  # counter -> factor on visit length (staff differ)
    later_tier_slowdown: float = 0.15  # topics a counter serves only in a later tier take it longer
    leave_share: float = 0.04
    forward_share: Mapping[str, float] = field(default_factory=dict)  # default: 0.2 for first-tier-shared
    forward_to_counter_share: float = 0.3
    handed_on_share: float = 0.05
    priority_share: float = 0.03
    recall_after_s: float = 40.0
    break_after_s: float = 3 * 3600.0  # after this long open, a counter pauses once...
    break_stagger_s: float = 15 * 60.0  # ...each counter a little later than the one before
    break_s: float = 20 * 60.0

    @property
    def service_cv2(self) -> float:
        """The squared coefficient of variation of one visit's length (1 for exponential visits)."""
        return 1.0 if self.service_dist == "exponential" else self.service_cv ** 2

    def visit_length(self, mean_s: float, z: float) -> float:
        """A visit's length from its mean and the visitor's standard normal draw (the same draw under any
        plan: common random numbers)."""
        if self.service_dist == "exponential":  # z through the normal's upper tail to an exponential draw
            return -mean_s * math.log(max(0.5 * math.erfc(z / math.sqrt(2)), 1e-300))
        sigma = math.sqrt(math.log(1 + self.service_cv ** 2))
        return max(20.0, mean_s * math.exp(sigma * z - sigma * sigma / 2))

    def mean_service_s(self, hall: HallConfig, topic: str, counter: str) -> float:
        base = self.service_s.get(topic, hall.topics[topic].service_time_min * 60.0)
        tier = hall.counters[counter].tier_of(topic) or 0
        return base * self.speed.get(counter, 1.0) * (1.0 + self.later_tier_slowdown * tier)


def staff_speeds(hall: HallConfig, seed: int) -> dict[str, float]:
    """Counter staff are not all equally quick: a factor between 0.8 and 1.25 for each, fixed by the seed."""
    rng = random.Random(f"speed-{seed}")
    factors = [rng.uniform(0.8, 1.25) for _ in hall.counters]
    mean = sum(factors) / len(factors)  # the hall as a whole works at the pace its config says
    return {counter: round(f / mean, 2) for counter, f in zip(hall.counters, factors, strict=True)}


def default_mix(hall: HallConfig) -> dict[str, float]:
    """The share of visitors per topic a hall's own layout expects: counters that serve a topic first,
    divided by its visit length (a hall gives a topic the staff its visitors need)."""
    weights = {t.id: len([c for c in hall.counters.values() if c.tier_of(t.id) == 0]) / t.service_time_min
               for t in hall.topics.values()}
    weights = {t: w or 0.1 / hall.topics[t].service_time_min for t, w in weights.items()}
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


def capacity_per_hour(hall: HallConfig) -> float:
    """Visitors an hour the hall serves with every counter open, each on its first tier."""
    return sum(len([c for c in hall.counters.values() if c.tier_of(t.id) == 0]) * 60.0 / t.service_time_min
               for t in hall.topics.values())


def ticket_window(hall: HallConfig, day: date) -> tuple[float, float]:
    """Seconds after midnight between which tickets are drawn: opening to the last-ticket cutoff."""
    window = hall.hours.window(day)
    if window is None:
        raise ValueError(f"hall {hall.id} is closed on {day.isoformat()}")
    opens, closes = (t.hour * 3600 + t.minute * 60 for t in window)
    return float(opens), float(closes - hall.hours.cutoff_min * 60)


def weekday_profile(minute: float) -> float:
    """Relative arrival rate at a minute of the day: a morning peak about 10:00, a lull at lunch and an
    after-lunch peak about 13:30, over a steady floor."""
    def bump(centre_h: float, width_min: float) -> float:
        return math.exp(-0.5 * ((minute - centre_h * 60) / width_min) ** 2)
    return 0.35 + 1.0 * bump(10.0, 55) + 0.8 * bump(13.5, 45) - 0.15 * bump(12.0, 25)


def default_visitors(hall: HallConfig, day: date, peak_load: float = 0.85,
                     profile: Callable[[float], float] = weekday_profile) -> int:
    """A day's visitors such that the busiest hour asks `peak_load` of what every counter open can give."""
    opens, last = ticket_window(hall, day)
    minutes = [opens / 60 + i for i in range(int((last - opens) // 60))]
    weights = [profile(m) for m in minutes]
    peak_hour = max(sum(weights[i:i + 60]) for i in range(max(1, len(weights) - 59)))
    return int(capacity_per_hour(hall) * peak_load * sum(weights) / peak_hour / 1.1)  # 1.1: forwards add visits


def weekday_arrivals(hall: HallConfig, day: date, visitors: int, seed: int,
                     mix: Mapping[str, float] | None = None, profile: Callable[[float], float] = weekday_profile
                     ) -> list[tuple[float, str]]:
    """`visitors` arrival times (seconds after midnight) and topics over the day's ticket window."""
    rng = random.Random(f"arrivals-{seed}-{day.isoformat()}")
    opens, last = ticket_window(hall, day)
    minutes = [opens / 60 + i for i in range(int((last - opens) // 60))]
    weights = [profile(m) for m in minutes]
    mix = mix or default_mix(hall)
    topics, shares = list(mix), list(mix.values())
    arrivals = []
    for _ in range(visitors):
        minute = rng.choices(minutes, weights)[0]
        arrivals.append((minute * 60 + rng.random() * 60, rng.choices(topics, shares)[0]))
    return sorted(arrivals)


def make_visitors(hall: HallConfig, arrivals: Iterable[tuple[float, str] | tuple[float, str, bool]],
                  behaviour: Behaviour, seed: int) -> tuple[Visitor, ...]:
    """Visitors for arrivals (seconds after midnight, topic[, priority]), each with their draws made."""
    rng = random.Random(f"visitors-{seed}")
    mix = default_mix(hall)
    visitors = []
    for arrival in arrivals:
        at, topic = float(arrival[0]), str(arrival[1])
        priority = bool(arrival[2]) if len(arrival) > 2 else rng.random() < behaviour.priority_share
        share = behaviour.forward_share.get(topic, default_forward_share(hall, topic))
        forward = None
        if rng.random() < share:
            targets = forward_targets(hall, topic)
            forward = rng.choices(targets, [mix[t] for t in targets])[0] if targets else None
        languages = hall.languages
        lang = languages[0] if rng.random() < 0.7 or len(languages) == 1 else rng.choice(languages[1:])
        visitors.append(Visitor(at=at, topic=topic, priority=priority and hall.rules.priority_allowed, lang=lang,
                                service_z=(rng.gauss(0, 1), rng.gauss(0, 1)),
                                leaves=rng.random() < behaviour.leave_share, forward=forward,
                                to_counter=rng.random() < behaviour.forward_to_counter_share,
                                handed_on=rng.random() < behaviour.handed_on_share))
    return tuple(visitors)


def default_forward_share(hall: HallConfig, topic: str) -> float:
    """Desks that answer many topics forward more; a specialist seldom does."""
    shared = any(len(c.tiers) > 1 and c.tier_of(topic) == 0 and len(c.tiers[0]) == 1 and
                 sum(len(t) for t in c.tiers) > 2 for c in hall.counters.values())
    return 0.2 if shared else 0.04


def forward_targets(hall: HallConfig, topic: str) -> list[str]:
    home = {c.id for c in hall.home_counters(topic)}
    return [t for t in hall.topics if t != topic and not home & {c.id for c in hall.home_counters(t)}] \
        or [t for t in hall.topics if t != topic]


# ---------------------------------------------------------------- staffing plans

@dataclass(frozen=True)
class StaffPlan:
    """Which counters are staffed when: (from, to, counters) in seconds after midnight, in order."""

    slots: tuple[tuple[float, float, frozenset[str]], ...]

    def counters_at(self, at: float) -> frozenset[str]:
        for start, end, counters in self.slots:
            if start <= at < end:
                return counters
        return frozenset()

    def boundaries(self) -> list[float]:
        return sorted({t for start, end, _ in self.slots for t in (start, end)})

    def with_slot(self, start: float, end: float, counters: Iterable[str]) -> StaffPlan:
        kept = [s for s in self.slots if s[1] <= start or s[0] >= end]
        return StaffPlan(tuple(sorted([*kept, (start, end, frozenset(counters))], key=lambda s: s[0])))


def full_plan(hall: HallConfig, day: date) -> StaffPlan:
    """Every counter open from opening to closing: what the simulator assumes without --staff."""
    window = hall.hours.window(day)
    if window is None:
        raise ValueError(f"hall {hall.id} is closed on {day.isoformat()}")
    opens, closes = (float(t.hour * 3600 + t.minute * 60) for t in window)
    return StaffPlan(((opens, closes, frozenset(hall.counters)),))


_PLAN_LINE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*(.*)$")


def parse_plan(text: str, hall: HallConfig, source: str = "plan") -> StaffPlan:
    """Lines `HH:MM-HH:MM counter counter ...` (`#` starts a comment; `-` or nothing: no counter open).

    This is also how `format_plan` prints a plan, so a plan found by `vuoro simulate --target-wait`
    can be saved, edited and given back with `--staff`.
    """
    slots: list[tuple[float, float, frozenset[str]]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PLAN_LINE.match(line)
        if not match:
            raise ValueError(f"{source}:{number}: expected 'HH:MM-HH:MM counters...', got {raw.strip()!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups()[:4])
        start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if not (0 <= start < end <= DAY_S) or m1 > 59 or m2 > 59:
            raise ValueError(f"{source}:{number}: {raw.strip()!r} is not a time span of one day")
        counters = [c for c in re.split(r"[\s,]+", match.group(5)) if c and c != "-"]
        unknown = [c for c in counters if c not in hall.counters]
        if unknown:
            raise ValueError(f"{source}:{number}: counter {unknown[0]!r} is not in hall {hall.id} "
                             f"(known: {', '.join(hall.counters)})")
        for other in slots:
            if start < other[1] and other[0] < end:
                raise ValueError(f"{source}:{number}: {raw.strip()!r} overlaps an earlier line")
        slots.append((float(start), float(end), frozenset(counters)))
    if not slots:
        raise ValueError(f"{source}: no staffing lines")
    return StaffPlan(tuple(sorted(slots, key=lambda s: s[0])))


def format_plan(plan: StaffPlan, hall: HallConfig) -> str:
    order = list(hall.counters)
    lines = []
    for start, end, counters in plan.slots:
        names = " ".join(sorted(counters, key=order.index)) or "-"
        lines.append(f"{clock_text(start)}-{clock_text(end)}  {names}")
    return "\n".join(lines) + "\n"


def clock_text(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# ---------------------------------------------------------------- arrivals and behaviour from elsewhere

_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_arrivals(text: str, hall: HallConfig, source: str = "arrivals") -> list[tuple[float, str, bool]]:
    """CSV lines `time,topic[,priority]`: time HH:MM[:SS], topic its id or letter, priority 1/true/yes.

    A first line naming the columns is skipped. Lines need not be in order.
    """
    arrivals = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        cells = [c.strip() for c in line.split(",")]
        if number == 1 and cells[0].lower() in ("time", "at", "issued"):
            continue
        match = _TIME.match(cells[0])
        if not match or len(cells) < 2:
            raise ValueError(f"{source}:{number}: expected 'HH:MM,topic[,priority]', got {raw.strip()!r}")
        h, m, sec = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
        if h > 23 or m > 59 or sec > 59:
            raise ValueError(f"{source}:{number}: {cells[0]!r} is not a time of day")
        topic = cells[1] if cells[1] in hall.topics else getattr(hall.topic_by_letter(cells[1].upper()), "id", None)
        if topic is None:
            raise ValueError(f"{source}:{number}: {cells[1]!r} is not a topic of hall {hall.id} "
                             f"(known: {', '.join(hall.topics)})")
        priority = len(cells) > 2 and cells[2].lower() in ("1", "true", "yes", "y", "priority")
        arrivals.append((float(h * 3600 + m * 60 + sec), topic, priority))
    if not arrivals:
        raise ValueError(f"{source}: no arrivals")
    return sorted(arrivals)


def arrivals_from_log(events: Iterable[p.Event], hall: HallConfig) -> list[tuple[float, str, bool]]:
    """The tickets drawn in a stretch of a real log, as arrivals (topics no longer in the hall are left out)."""
    arrivals = []
    for event in events:
        if event.type == p.TICKET_ISSUED and event.data["ticket"]["topic"] in hall.topics:
            at = datetime.fromisoformat(event.at)
            arrivals.append((float(at.hour * 3600 + at.minute * 60 + at.second), event.data["ticket"]["topic"],
                             bool(event.data["ticket"].get("priority"))))
    return sorted(arrivals)


def behaviour_from_figures(by_topic: Mapping[str, Tally], base: Behaviour) -> Behaviour:
    """Visit lengths, forwards and no-shows per topic as a log measured them (`stats.group(t, "topic")`)."""
    service: dict[str, float] = {}
    forward: dict[str, float] = {}
    visits = noshows = 0
    for topic, tally in by_topic.items():
        if tally.service:
            service[topic] = sum(tally.service) / len(tally.service)
        ended = tally.served + tally.forwarded
        if ended:
            forward[topic] = tally.forwarded / ended
        visits += ended + tally.noshows
        noshows += tally.noshows
    return replace(base, service_s={**base.service_s, **service}, forward_share={**base.forward_share, **forward},
                   leave_share=noshows / visits if visits else base.leave_share)
