"""Handlers are chosen by `match`, never by building a method's name: an input nobody handles is an error.

The simulator's and the headless demo's own queues can only hold what mypy allows (a `Literal`), so a
kind queued by mistake stops them loudly; the statistics read logs that a newer version may have
written, so an event type they cannot file is counted and logged, and everything else is still filed.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from analytics import dayrunner
from analytics import simulate as sim
from broker import protocol as p
from broker import stats
from broker.config import HallConfig
from broker.engine import Engine
from counter import model_types as counter_types
from counter.model import CounterModel
from display import model as display_model
from kiosk import model_screen
from kiosk import model_types as kiosk_types
from kiosk.model import KioskModel
from tests.test_stats import DAY, the_morning
from vuoro.demo_headless import Script

MONDAY = date(2026, 11, 30)
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo("Europe/Helsinki"))


def test_statistics_count_and_log_an_event_type_they_cannot_file(hall: HallConfig,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    events = the_morning(hall)
    unknown = replace(events[3], type="ticket.teleported")
    known = stats.collect(events, hall)
    collector = stats.Collector(hall)
    with caplog.at_level(logging.WARNING, logger="broker.stats"):
        for event in [*events[:3], unknown, *events[3:], unknown]:
            collector.add(event)
        collector.finish()
    assert collector.unknown == {"ticket.teleported": 2}
    assert [r.getMessage() for r in caplog.records if "ticket.teleported" in r.getMessage()] == \
        [f"statistics skip events of unknown type 'ticket.teleported' (first on {DAY})"]  # once per type
    assert {k: t.to_json() for k, t in collector.tallies.items()} == {k: t.to_json() for k, t in known.items()}


def test_statistics_file_every_event_type_of_the_protocol(hall: HallConfig) -> None:
    collector = stats.Collector(hall)
    for event in the_morning(hall):
        collector.add(event)
    assert collector.unknown == {}
    assert set(p.EVENT_TYPES) - {p.DAY_STARTED} <= set(_filed_types())  # a new type needs its case (or a skip)


def _filed_types() -> list[str]:
    """The event types `Collector._file` has a case for, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(stats.Collector._file)))
    match_ = next(node for node in ast.walk(tree) if isinstance(node, ast.Match))
    return [getattr(p, case.pattern.value.attr) for case in match_.cases
            if isinstance(case.pattern, ast.MatchValue) and isinstance(case.pattern.value, ast.Attribute)]


def test_a_simulated_day_stops_loudly_on_a_kind_nobody_handles(hall: HallConfig) -> None:
    behaviour = sim.Behaviour()
    day = sim.DaySim(hall, MONDAY, sim.make_visitors(hall, sim.weekday_arrivals(hall, MONDAY, 20, 1), behaviour, 1),
                     sim.full_plan(hall, MONDAY), behaviour)
    mistake: Any = "teleport"
    day._push(0.0, mistake, None)
    with pytest.raises(AssertionError, match="teleport"):
        day.run_until(1.0)


def test_the_headless_demo_stops_loudly_on_an_action_nobody_handles() -> None:
    script = Script.__new__(Script)  # the dispatch looks at nothing else of the script
    mistake: Any = "dance"
    with pytest.raises(AssertionError, match="dance"):
        script._do(mistake, None, ())  # type: ignore[arg-type]


# ---------------------------------------------------------------- the engine

def test_the_engine_handles_every_op_the_protocol_lets_through(hall: HallConfig) -> None:
    """Each command op of every role reaches a handler: none is answered unknown_op (a handler gone missing)."""
    engine = Engine(hall, always_open=True)
    counter = next(iter(hall.counters))
    topic = next(iter(hall.topics))
    for role, ops in p.OPS.items():
        for op in ops:
            if op in p.READ_OPS:
                continue
            args: dict[str, Any] = {"kiosk": {"topic": topic}, "web": {"token": "t", "score": 3}}.get(role, {})
            if op == "done":
                args = {"outcome": "resolved"}
            device = counter if role == "counter" else "D1"
            reply = engine.handle(p.Command(f"{role}-{op}", role, device, op, args), MONDAY_9).reply
            assert reply["ok"] or reply["error"]["code"] not in (p.Err.UNKNOWN_OP, p.Err.INTERNAL), (role, op, reply)


@pytest.mark.parametrize(("role", "op"), [("counter", "teleport"), ("kiosk", "teleport"), ("admin", "teleport"),
                                          ("web", "teleport"), ("display", "next")])
def test_the_engine_refuses_an_op_nobody_handles(hall: HallConfig, role: str, op: str) -> None:
    """A command made by hand past parse_command is refused unknown_op (the service logs and counts
    refusals), never run as some other op nor dropped."""
    engine = Engine(hall, always_open=True)
    device = next(iter(hall.counters)) if role == "counter" else "D1"
    outcome = engine.handle(p.Command("c1", role, device, op, {}), MONDAY_9)
    assert outcome.reply["error"]["code"] == p.Err.UNKNOWN_OP and op in outcome.reply["error"]["message"]
    assert [e.type for e in outcome.events] == [p.DAY_STARTED]  # only the day's start: nothing else happened


# ---------------------------------------------------------------- the devices' models

def _cases(method: Any) -> set[str]:
    """The class names a method's `match` has a case for, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    match_ = next(node for node in ast.walk(tree) if isinstance(node, ast.Match))
    return {case.pattern.cls.id for case in match_.cases
            if isinstance(case.pattern, ast.MatchClass) and isinstance(case.pattern.cls, ast.Name)}


def _inputs(module: Any, base: type) -> set[str]:
    return {name for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, base) and value is not base}


def test_the_kiosk_model_has_a_case_for_every_input() -> None:
    assert _inputs(kiosk_types, kiosk_types.Input) == _cases(KioskModel._handle)
    for name in _cases(KioskModel._handle):  # and each case calls the handler of its own type
        assert hasattr(KioskModel, "_on_" + name)


def test_the_counter_model_has_a_case_for_every_input() -> None:
    assert _inputs(counter_types, counter_types.Input) == _cases(CounterModel._handle)


def test_the_display_model_has_a_case_for_every_input() -> None:
    assert _inputs(display_model, display_model.Input) == _cases(display_model.DisplayModel.feed)


def _device(hall: HallConfig, device: str) -> tuple[Any, type, Callable[[], Any]]:
    """A device's model, the base class of its inputs, and what it draws now."""
    match device:
        case "kiosk":
            kiosk = KioskModel(hall, MONDAY_9)
            return kiosk, kiosk_types.Input, kiosk.screen
        case "counter":
            counter = CounterModel(hall, next(iter(hall.counters)), MONDAY_9)
            return counter, counter_types.Input, counter.panel
        case _:
            display = display_model.DisplayModel.for_display(hall, next(iter(hall.displays)))
            return display, display_model.Input, lambda: display.board(MONDAY_9)


@pytest.mark.parametrize(("device", "who"), [("kiosk", "the kiosk"), ("counter", "the counter panel"),
                                             ("display", "the display")])
def test_a_device_logs_once_and_counts_every_input_nobody_handles(hall: HallConfig, caplog: pytest.LogCaptureFixture,
                                                                  device: str, who: str) -> None:
    model, base, draw = _device(hall, device)
    teleport = type("Teleport", (base,), {})
    before = draw()
    with caplog.at_level(logging.ERROR, logger=f"{device}.model"):
        assert model.feed(teleport(), MONDAY_9) == []
        model.feed(teleport(), MONDAY_9)
    assert model.unknown == {"Teleport": 2}
    assert [r.getMessage() for r in caplog.records] == [f"{who} has no handler for input Teleport: ignored"]
    assert draw() == before  # ignored: nothing on the screen changed


def test_a_key_reaches_the_handler_of_its_action(hall: HallConfig) -> None:
    """The counter's keys go through the same dispatch: a key whose action is handled is never 'unknown'."""
    model = CounterModel(hall, next(iter(hall.counters)), MONDAY_9)
    for name in ("n", "r", "d", "h", "f", "p", "o", "c", "escape", "enter", "1", "x"):
        model.feed(counter_types.Key(name), MONDAY_9)
    assert model.unknown == {}


def test_every_kiosk_screen_has_its_builder() -> None:
    """The screen's builder is looked up in a table made from the screen names, never by a method's name."""
    assert set(kiosk_types.SCREENS) == set(model_screen.BUILDERS)


# ---------------------------------------------------------------- the staffing search's day workers

def test_every_request_to_a_day_bench_has_its_case() -> None:
    assert set(get_args(dayrunner.Method)) == {c.pattern.value.value for c in _match(dayrunner.call).cases
                                               if isinstance(c.pattern, ast.MatchValue)
                                               and isinstance(c.pattern.value, ast.Constant)}


def test_a_day_bench_refuses_a_request_nobody_handles() -> None:
    bench = dayrunner.DayBench.__new__(dayrunner.DayBench)  # the dispatch looks at nothing else of the bench
    mistake: Any = "teleport"
    with pytest.raises(AssertionError, match="teleport"):
        dayrunner.call(bench, mistake, ())


def _match(function: Any) -> ast.Match:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return next(node for node in ast.walk(tree) if isinstance(node, ast.Match))


def _literal_cases(function: Any) -> set[str]:
    return {c.pattern.value.value for c in _match(function).cases
            if isinstance(c.pattern, ast.MatchValue) and isinstance(c.pattern.value, ast.Constant)}


def test_every_kind_the_simulator_queues_and_every_action_of_the_demo_has_its_case() -> None:
    from vuoro import demo_headless

    assert set(get_args(sim.Kind)) == _literal_cases(sim.DaySim._happen)
    assert set(get_args(demo_headless.Action)) == _literal_cases(demo_headless.Script._do)
