"""The headless demo's script on any day and seed: it never raises, and in a hall nobody else touches it is
never refused anything but an empty queue.

The script runs against the real engine in this process, through the same command and reply payloads the
hall server would send (protocol encode -> parse_command -> Engine.handle -> reply), on a clock that jumps
to each scripted moment: a whole morning in a fraction of a second. The real `vuoro demo --headless`
command is run too, on a few days and seeds, by tests/test_demo.py style subprocesses below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from broker import protocol as p
from broker import stats
from broker.client import CommandError
from broker.config import HallConfig, OpeningHours
from broker.engine import Engine
from tests.support.brokers import free_port
from vuoro.demo_headless import (
    LOOK_AHEAD_DAYS,
    OPEN_STAGGER_S,
    Desk,
    Script,
    plan_morning,
    summary,
)


class JumpingClock:
    """The script's clock for a test: a wait for a moment is over at once, the hall's time jumps to it."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def wait_until(self, moment: datetime) -> bool:
        self._now = max(self._now, moment)
        return True


class EngineLink:
    """A device's commands, as bytes the hall server would parse, handed to the engine; replies as a device
    decodes them. What the MQTT round trip adds (retries, ids remembered) is tested elsewhere."""

    def __init__(self, engine: Engine, clock: JumpingClock, role: str, device: str, log: list[p.Event]) -> None:
        self.engine, self.clock, self.role, self.device, self.log = engine, clock, role, device, log

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        hall = self.engine.hall
        raw = p.encode(p.command_payload(op, None, **fields))
        command = p.parse_command(raw, self.role, self.device, hall=hall.id, max_bytes=hall.rules.max_payload_bytes)
        outcome = self.engine.handle(command, self.clock.now())
        self.log.extend(outcome.events)
        reply = json.loads(p.encode(outcome.reply))
        if reply["ok"]:
            return dict(reply["result"])
        error = dict(reply["error"])
        raise CommandError(error.pop("code"), error.pop("message"), error)


def play(hall: HallConfig, today: date, visitors: int, seed: int) -> tuple[list[str], list[p.Event]] | None:
    """The headless demo's morning from `today`, as run_headless plays it, minus the network and the wall."""
    morning = plan_morning(hall, today, visitors, seed)
    if morning is None:
        return None
    clock = JumpingClock(morning.opens - timedelta(seconds=30))
    engine = Engine(hall, always_open=True)  # as the demo's server runs
    events: list[p.Event] = []
    lines: list[str] = []
    kiosk = EngineLink(engine, clock, "kiosk", "K1", events)
    desks = {c: Desk(c, EngineLink(engine, clock, "counter", c, events)) for c in hall.counters}
    script = Script(hall, morning, clock, kiosk, desks, lines.append)
    script.run()
    script.close()
    summary(hall, stats.collect(events, hall), 1.0)  # the figures at the end must not raise either
    return lines, events


def assert_a_clean_morning(hall: HallConfig, today: date, visitors: int, seed: int) -> None:
    played = play(hall, today, visitors, seed)
    if played is None:
        assert all(hall.hours.window(today + timedelta(days=n)) is None for n in range(LOOK_AHEAD_DAYS))
        return
    lines, events = played
    refused = [line for line in lines if " refused: " in line]
    assert not refused, refused[:5]  # nobody else touches this hall: no step of the script is out of turn
    issued = [e for e in events if e.type == p.TICKET_ISSUED]
    morning = plan_morning(hall, today, visitors, seed)
    assert morning is not None and len(issued) == len(morning.visitors)
    opened = {e.data["counter"] for e in events if e.type == p.COUNTER_OPENED}
    assert opened == set(hall.counters)
    assert sum(" opens" in line for line in lines) == len(hall.counters)


days = st.dates(min_value=date(2026, 1, 1), max_value=date(2029, 12, 31))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(today=days, seed=st.integers(min_value=0, max_value=10**6), visitors=st.integers(min_value=0, max_value=240))
@example(today=date(2026, 12, 7), seed=1, visitors=200)  # the default that crashed: a Monday, seed 1
@example(today=date(2026, 12, 24), seed=1, visitors=200)  # a public holiday: the demo plays the 28th
@example(today=date(2026, 12, 5), seed=3, visitors=200)  # a Saturday
def test_the_demo_halls_morning_runs_clean_on_any_day_and_seed(hall: HallConfig, today: date, seed: int,
                                                               visitors: int) -> None:
    assert_a_clean_morning(hall, today, visitors, seed)


def hours_of(week: dict[int, tuple[time, time]], cutoff_min: int, closed: frozenset[date]) -> OpeningHours:
    return OpeningHours(week=week, cutoff_min=cutoff_min, closed_dates=closed)


@st.composite
def opening_hours(draw: st.DrawFn) -> OpeningHours:
    """Any week a hall might keep: mornings, evenings only, short days, closed days, holidays."""
    week: dict[int, tuple[time, time]] = {}
    for weekday in range(7):
        if draw(st.booleans()):
            opens = draw(st.integers(min_value=5 * 60, max_value=21 * 60))
            length = draw(st.integers(min_value=1, max_value=min(10 * 60, 24 * 60 - 1 - opens)))
            week[weekday] = (time(opens // 60, opens % 60), time((opens + length) // 60, (opens + length) % 60))
    closed = frozenset(draw(st.lists(days, max_size=8)))
    return hours_of(week, draw(st.integers(min_value=0, max_value=60)), closed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hours=opening_hours(), today=days, seed=st.integers(min_value=0, max_value=10**6),
       visitors=st.integers(min_value=0, max_value=120), priority=st.booleans(), recalls=st.integers(0, 3))
@example(hours=hours_of({0: (time(16), time(20))}, 15, frozenset()), today=date(2026, 12, 7), seed=1,
         visitors=100, priority=True, recalls=2)  # opens after noon: the morning is its first four hours
@example(hours=hours_of({0: (time(8), time(8, 10))}, 15, frozenset()), today=date(2026, 12, 7), seed=1,
         visitors=100, priority=True, recalls=2)  # closes before its own last-ticket cutoff
@example(hours=hours_of({}, 15, frozenset()), today=date(2026, 12, 7), seed=1, visitors=10, priority=True,
         recalls=2)  # never open
@example(hours=hours_of({0: (time(21), time(23, 59))}, 0, frozenset()), today=date(2026, 12, 7), seed=1,
         visitors=120, priority=True, recalls=2)  # open till midnight: the script must not run into the next day
def test_any_halls_morning_runs_clean(hall: HallConfig, hours: OpeningHours, today: date, seed: int,
                                      visitors: int, priority: bool, recalls: int) -> None:
    other = replace(hall, hours=hours, rules=replace(hall.rules, priority_allowed=priority,
                                                     noshow_after_recalls=recalls))
    assert_a_clean_morning(other, today, visitors, seed)


def test_a_counter_that_has_not_opened_is_not_called_by_an_early_visitor(hall: HallConfig) -> None:
    """The bug the outside test found: a visitor in the first minute and a half woke counters still closed."""
    morning = plan_morning(hall, date(2026, 12, 7), 200, 1)
    assert morning is not None
    last_opens = morning.opens + timedelta(seconds=OPEN_STAGGER_S * (len(hall.counters) - 1))
    midnight = datetime.combine(morning.day, time(), hall.tz)
    assert midnight + timedelta(seconds=morning.visitors[0].at) < last_opens  # the case that crashed
    played = play(hall, date(2026, 12, 7), 200, 1)
    assert played is not None
    lines, _ = played
    assert not [line for line in lines if "refused" in line]


def test_a_refusal_from_outside_is_a_line_and_the_counter_carries_on(hall: HallConfig) -> None:
    """Someone at a second terminal closes the visit the script's counter is in: the script says so."""
    morning = plan_morning(hall, date(2026, 12, 7), 30, 2)
    assert morning is not None
    clock = JumpingClock(morning.opens - timedelta(seconds=30))
    engine = Engine(hall, always_open=True)
    events: list[p.Event] = []
    lines: list[str] = []
    kiosk = EngineLink(engine, clock, "kiosk", "K1", events)
    desks = {c: Desk(c, EngineLink(engine, clock, "counter", c, events)) for c in hall.counters}
    meddler = EngineLink(engine, clock, "counter", "1", events)

    class Meddling(Script):
        def _finish(self, now: datetime, desk: Desk, number: str) -> None:
            if desk.id == "1":
                meddler.request("done", outcome="resolved")  # pressed at the other terminal first
            super()._finish(now, desk, number)

    script = Meddling(hall, morning, clock, kiosk, desks, lines.append)
    script.run()
    script.close()
    refused = [line for line in lines if "counter 1: " in line and " refused: " in line]
    assert refused, lines[-20:]
    served = {e.data["ticket"]["number"] for e in events if e.type == p.TICKET_DONE}
    assert len(served) >= len(morning.visitors) // 2  # the morning went on


# ---------------------------------------------------------------- the real command

def demo_env(tmp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER", "DISPLAY")}
    env.update(KIVY_HOME=tempfile.mkdtemp(prefix="vuoro-kivy-"), XDG_RUNTIME_DIR=tmp)
    return env


@pytest.mark.slow
@pytest.mark.parametrize(("day", "seed"), [("2026-12-07", 1), ("2026-12-24", 4), ("2027-03-13", 17)])
def test_the_headless_demo_command_ends_cleanly(tmp_path: Any, day: str, seed: int) -> None:
    result = subprocess.run([sys.executable, "-m", "vuoro.cli", "demo", "--headless", "--visitors", "60",
                             "--speed", "4000", "--date", day, "--seed", str(seed), "--db", str(tmp_path / "d.sqlite"),
                             "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=demo_env(str(tmp_path)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert "60 tickets drawn" in result.stdout
    assert "from 08:00" in result.stdout  # the demo hall opens at 08:00 on every open day
