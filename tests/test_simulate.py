"""The simulator (analytics/simulate.py): the real engine on a simulated clock, closed-form cases, the staffing
search, plans and arrivals as text, and `vuoro simulate` itself."""

from __future__ import annotations

import re
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from analytics import erlang
from analytics import simulate as sim
from analytics.demand import demand_from_history, demand_from_profile, sample_days
from analytics.staffing import Target, plan_for_target
from broker import protocol as p
from broker import stats
from broker.config import HallConfig, load_hall
from broker.hallstate import HallState
from vuoro import cli

MONDAY = date(2026, 11, 30)
EIGHT = 8 * 3600.0
CLOCKWORK = sim.Behaviour(service_cv=0.0, leave_share=0.0, forward_share={"one": 0.0}, handed_on_share=0.0,
                          priority_share=0.0, break_after_s=1e9)


def tiny_hall_toml(counters: int = 1, service_min: float = 5, target_min: int = 10, hours: str = "08:00-17:00",
                   rules: str = "") -> str:
    """One topic, `counters` identical counters, open `hours` every weekday, tickets until closing;
    `rules`: lines for the [rules] table."""
    lines = ['[hall]', 'id = "tiny"', 'languages = ["en"]', 'name = { en = "Tiny hall" }',
             '[hours]', *[f'{d} = "{hours}"' for d in ("mon", "tue", "wed", "thu", "fri")],
             'last_ticket_before_close_min = 0',
             *(['[rules]', rules] if rules else []),
             '[[topics]]', 'id = "one"', 'letter = "A"', 'colour = "#1f6feb"', f'target_wait_min = {target_min}',
             f'service_time_min = {service_min}', 'name = { en = "One" }']
    for index in range(1, counters + 1):
        lines += ['[[counters]]', f'id = "{index}"', 'tiers = [["one"]]', f'name = {{ en = "Counter {index}" }}',
                  'location = { en = "Here" }', 'wayfinding = { en = "Here" }']
    lines += ['[[displays]]', 'id = "d"', 'name = { en = "Display" }',
              "directions = { " + ", ".join(f'"{i}" = "left"' for i in range(1, counters + 1)) + " }"]
    return "\n".join(lines) + "\n"


def tiny_hall(tmp_path: Path, **kw: Any) -> HallConfig:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_hall_toml(**kw))
    return load_hall(path)


def regular(every_s: float, count: int, start: float = EIGHT) -> list[tuple[float, str, bool]]:
    return [(start + k * every_s, "one", False) for k in range(count)]


def waits_from_log(result: sim.DayResult, hall: HallConfig) -> list[float]:
    """Each visitor's wait as the engine's own event log tells it, through the statistics."""
    tallies = stats.collect(result.events, hall)
    return sorted(stats.total(tallies.values()).waits)


# ---------------------------------------------------------------- closed form

@pytest.mark.parametrize(("every_s", "service_s"), [(240.0, 300.0), (300.0, 240.0), (180.0, 450.0)])
def test_one_counter_fixed_service_regular_arrivals_waits_as_the_formula_says(tmp_path: Path, every_s: float,
                                                                             service_s: float) -> None:
    """D/D/1: visitor k (from 0) arrives at k*a and is called at k*s when s > a: a wait of k*(s - a); never
    waits when s <= a. The counter serves n*s of the day and idles the rest."""
    hall = tiny_hall(tmp_path, service_min=service_s / 60)
    count = 20
    result = sim.simulate_day(hall, MONDAY, sim.make_visitors(hall, regular(every_s, count), CLOCKWORK, 1),
                              None, CLOCKWORK)
    expected = [k * max(0.0, service_s - every_s) for k in range(count)]
    waits = [r.called - r.issued for r in result.records if r.called is not None]
    assert len(waits) == count and waits == pytest.approx(expected)
    assert waits_from_log(result, hall) == pytest.approx(sorted(expected))
    day = stats.total(stats.collect(result.events, hall).values())
    assert day.service == pytest.approx([service_s] * count)
    assert (day.issued, day.served, day.noshows, day.forwarded) == (count, count, 0, 0)
    assert day.serving_s == pytest.approx(count * service_s)
    assert day.serving_s + day.idle_s == pytest.approx(9 * 3600)  # open 08:00-17:00, nothing left after


def test_the_simulator_drives_the_engine_and_its_log_replays_to_the_same_state(hall: HallConfig) -> None:
    behaviour = sim.Behaviour(speed=sim.staff_speeds(hall, 2))
    people = sim.make_visitors(hall, sim.weekday_arrivals(hall, MONDAY, 150, 2), behaviour, 2)
    engine = sim.Engine(hall)
    result = sim.simulate_day(hall, MONDAY, people, None, behaviour, engine=engine)
    types = {e.type for e in result.events}
    assert {p.TICKET_ISSUED, p.TICKET_CALLED, p.TICKET_DONE, p.TICKET_FORWARDED, p.TICKET_NOSHOW,
            p.COUNTER_OPENED, p.COUNTER_PAUSED, p.COUNTER_CLOSED} <= types
    replayed = HallState(hall)
    for event in result.events:
        replayed.apply(event)
    assert {n: t.public() for n, t in replayed.tickets.items()} == \
        {n: t.public() for n, t in engine.state.tickets.items()}
    assert all(t.state in (p.DONE, p.NOSHOW) for t in engine.state.tickets.values())  # everyone seen to
    assert all(c.status == p.CLOSED for c in engine.state.counters.values())  # everyone went home
    again = sim.simulate_day(hall, MONDAY, people, None, behaviour)
    assert [e.payload() for e in again.events] == [e.payload() for e in result.events]  # the same day, exactly


def test_a_day_has_its_morning_and_after_lunch_peaks(hall: HallConfig) -> None:
    arrivals = sim.weekday_arrivals(hall, MONDAY, 2000, 1)
    per_hour = [sum(1 for at, _ in arrivals if h * 3600 <= at < (h + 1) * 3600) for h in range(8, 17)]
    assert len(arrivals) == 2000
    assert max(per_hour) in per_hour[1:3]  # 9-11
    assert per_hour[5] > per_hour[4] and per_hour[5] > per_hour[6]  # 13-14 above lunch and the afternoon
    assert all(8 * 3600 <= at < 16 * 3600 + 45 * 60 for at, _ in arrivals)  # until the last-ticket time


# ---------------------------------------------------------------- the staffing search (more in test_staffing.py)

def test_the_plan_opens_what_a_burst_needs_above_the_erlang_floor(tmp_path: Path) -> None:
    """Twelve visitors at the top of each hour, visits of exactly 5 minutes, 90 % to be called within 15:
    a counter calls four of them in time (after 0, 5, 10 and 15 minutes), so 3 counters call all twelve and
    2 only eight. Erlang C, which assumes random arrivals, asks for 2: the day itself asks for more."""
    hall = tiny_hall(tmp_path, counters=4, service_min=5)
    burst = [(8 * 3600.0 + h * 3600 + k, "one", False) for h in range(9) for k in range(12)]
    demand = demand_from_history(hall, MONDAY, [burst])
    people = sim.make_visitors(hall, burst, CLOCKWORK, 1)
    search = plan_for_target(hall, MONDAY, [people] * 3, CLOCKWORK, demand, Target(900))
    assert all(h.erlang <= 2 for h in search.hours) and search.hours[1].erlang == 2  # (the log is smoothed)
    assert [len(h.counters) for h in search.hours] == [3] * 9
    assert search.met and search.days_all_met == 3
    assert sim.format_plan(search.plan, hall).splitlines()[0] == "08:00-09:00  1 2 3"


def test_regular_arrivals_still_get_the_erlang_floor(tmp_path: Path) -> None:
    """A visitor every 200 s with 300 s visits keeps up with 2 counters when the arrivals are as regular
    as that; the plan still staffs what Erlang C asks for random arrivals of the same load (3)."""
    hall = tiny_hall(tmp_path, counters=4, service_min=5)
    arrivals = regular(200.0, 9 * 3600 // 200)
    demand = demand_from_history(hall, MONDAY, [arrivals])
    search = plan_for_target(hall, MONDAY, [sim.make_visitors(hall, arrivals, CLOCKWORK, 1)], CLOCKWORK, demand,
                             Target(300))
    floor = erlang.counters_needed(1.5, 300, 300, 0.9, service_cv2=0.0)
    assert floor == 3
    assert all(h.erlang == floor and len(h.counters) == floor for h in search.hours[1:-1])
    assert search.met


def test_an_hour_that_cannot_be_met_gets_every_counter_that_helps(hall: HallConfig) -> None:
    behaviour = sim.Behaviour()
    demand = demand_from_profile(hall, MONDAY, 400)
    days = sample_days(hall, demand, behaviour, 3)
    search = plan_for_target(hall, MONDAY, days, behaviour, demand, Target(60))
    peak = next(h for h in search.hours if h.start == 10 * 3600)
    assert not peak.met  # a minute is out of reach at the morning peak...
    assert len(peak.counters) >= len(hall.counters) - 1  # ...but every counter that shortens the waits is there
    assert len(search.plan.counters_at(16.5 * 3600)) < len(peak.counters)


# ---------------------------------------------------------------- plans and arrivals as text

def test_a_plan_reads_back_what_it_prints(hall: HallConfig) -> None:
    text = "# morning\n08:00-10:00  1 2 4\n10:00-12:30 1,2,3,4,5,6  # all hands\n12:30-17:00 -\n"
    plan = sim.parse_plan(text, hall)
    assert plan.counters_at(9 * 3600) == {"1", "2", "4"} and plan.counters_at(12 * 3600) == set(hall.counters)
    assert plan.counters_at(13 * 3600) == frozenset() and plan.counters_at(7 * 3600) == frozenset()
    assert sim.parse_plan(sim.format_plan(plan, hall), hall) == plan


@pytest.mark.parametrize(("text", "problem"), [
    ("8-9 1", "expected 'HH:MM-HH:MM"), ("09:00-08:00 1", "not a time span"), ("08:00-09:00 7", "'7' is not"),
    ("08:00-10:00 1\n09:00-11:00 2", "overlaps"), ("# nothing", "no staffing lines"),
])
def test_a_bad_plan_is_refused_with_its_line(hall: HallConfig, text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sim.parse_plan(text, hall, "plan.txt")


def test_arrivals_read_from_csv_by_topic_id_or_letter(hall: HallConfig) -> None:
    arrivals = sim.parse_arrivals("time,topic,priority\n09:05,B\n08:00:30,general,1\n", hall)
    assert arrivals == [(8 * 3600 + 30.0, "general", True), (9 * 3600 + 300.0, "permits", False)]
    with pytest.raises(ValueError, match="arrivals:2: 'dragons' is not a topic"):
        sim.parse_arrivals("09:00,general\n09:01,dragons\n", hall)
    with pytest.raises(ValueError, match="not a time of day"):
        sim.parse_arrivals("25:00,general\n", hall)


# ---------------------------------------------------------------- the command

def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_vuoro_simulate_prints_a_plan_that_staff_reads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    (tmp_path / "tiny.toml").write_text(tiny_hall_toml(counters=3))
    (tmp_path / "arrivals.csv").write_text("time,topic\n" + "".join(
        f"{8 + k * 200 // 3600:02d}:{k * 200 % 3600 // 60:02d}:{k * 200 % 60:02d},one\n" for k in range(162)))
    hall = ["--hall", str(tmp_path / "tiny.toml"), "--day", "2026-11-30", "--arrivals", str(tmp_path / "arrivals.csv")]
    code, out, _ = run_cli(["simulate", *hall, "--target-wait", "5", "--save-plan", str(tmp_path / "plan.txt")],
                           capsys)
    assert code == 0
    plan_lines = [line for line in out.splitlines() if re.match(r"\d\d:\d\d-\d\d:\d\d ", line)]
    assert plan_lines[0].startswith("08:00-09:00  ") and len(plan_lines) == 9
    assert (tmp_path / "plan.txt").read_text().splitlines() == plan_lines
    code, staffed, _ = run_cli(["simulate", *hall, "--staff", str(tmp_path / "plan.txt")], capsys)
    assert code == 0
    day_line = next(line for line in staffed.splitlines() if line.startswith("day"))
    assert day_line.split()[1] == "162"


def test_vuoro_simulate_writes_a_log_that_from_db_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          hall: HallConfig) -> None:
    db = tmp_path / "sim.sqlite"
    code, out, _ = run_cli(["simulate", "--day", "2026-11-30", "--days", "2", "--visitors", "120", "--db", str(db)],
                           capsys)
    assert code == 0 and "2026-12-01 (Tuesday)" in out
    with sqlite3.connect(db) as conn:
        issued = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'ticket.issued'").fetchone()[0]
    assert issued == 240
    code, out, _ = run_cli(["simulate", "--from-db", str(db), "--day", "2026-12-01"], capsys)
    assert code == 0 and out.startswith("2026-12-01 (Tuesday): 120 visitors")
    code, _, err = run_cli(["simulate", "--from-db", str(tmp_path / "nothing.sqlite")], capsys)
    assert code == 2 and "no such event log" in err


# ---------------------------------------------------------------- days that do not fit the assumptions

def test_a_day_that_runs_past_midnight_ends_as_the_server_ends_it(tmp_path: Path) -> None:
    """Sixty visitors of ten minutes each for two counters open 20:00-23:30: the queue lasts past midnight,
    when the server's rollover expires every open ticket and closes the counters; so does the simulated
    day (it used to end in a KeyError: the second visit ending after midnight had lost its ticket)."""
    hall = tiny_hall(tmp_path, counters=2, service_min=10, hours="20:00-23:30")
    people = sim.make_visitors(hall, regular(30.0, 60, start=20 * 3600.0), CLOCKWORK, 1)
    result = sim.simulate_day(hall, MONDAY, people, None, CLOCKWORK)
    called = [r.called for r in result.records if r.called is not None]
    assert len(called) == 48  # at 20:00 and 20:00:30, ten minutes later, ... 23:50 and 23:50:30
    assert max(called) == pytest.approx(23 * 3600 + 50 * 60 + 30)
    assert result.expired_at_midnight == 14  # the two at the counters and twelve still waiting
    expired = [e for e in result.events if e.type == p.TICKET_EXPIRED]
    assert {e.data["reason"] for e in expired} == {"day_end"} and len(expired) == 14
    assert result.events[-1].type == p.DAY_STARTED and result.events[-1].data["day"] == "2026-12-01"


def test_refusals_are_labelled_by_their_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1,000 visitors of one topic and one after the last-ticket time: the 1,000th finds no number left."""
    (tmp_path / "tiny.toml").write_text(tiny_hall_toml(counters=3, service_min=0.5))
    times = [8 * 3600 + k * 32 for k in range(1000)] + [17 * 3600 + 60]
    (tmp_path / "arrivals.csv").write_text("".join(f"{t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d},one\n"
                                                   for t in times))
    args = ["simulate", "--hall", str(tmp_path / "tiny.toml"), "--day", "2026-11-30", "--arrivals",
            str(tmp_path / "arrivals.csv")]
    code, out, _ = run_cli(args, capsys)
    assert code == 0
    assert "2026-11-30 (Monday): 999 visitors, 2 refused (1 after the last-ticket time, 1 numbers ran out)" in out
    for numbers, last in (("wrap", "A001"), ("four-digits", "A1000")):
        (tmp_path / "tiny.toml").write_text(tiny_hall_toml(counters=3, service_min=0.5,
                                                           rules=f'numbers = "{numbers}"'))
        hall = load_hall(tmp_path / "tiny.toml")
        people = sim.make_visitors(hall, [(float(t), "one") for t in times], CLOCKWORK, 1)
        result = sim.simulate_day(hall, MONDAY, people, None, CLOCKWORK, keep_events=False)
        assert len(result.records) == 1000 and result.refusals == {p.Err.HALL_CLOSED: 1}
        assert result.records[-1].number == last
        code, out, _ = run_cli(args, capsys)
        assert "1000 visitors, 1 refused (1 after the last-ticket time)" in out
