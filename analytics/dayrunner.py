"""Many sampled days played under one staffing plan, in this process or in worker processes.

The staffing search (analytics/staffing.py) asks the same question of every day: with this plan, from this
moment, which visitors of each hour are called in time? Each worker holds its share of the days and, for
each day, the simulated hall at chosen moments (checkpoints), so a trial replays only the part of the
day it changes. Answers are small tallies (`DayTally`), so little crosses between processes.

A trial stops early when the days it has seen already fail an hour on more days than the target allows:
a worker's own failing days are a lower bound on all days', so it can stop without asking the others.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from multiprocessing.connection import Connection, wait
from typing import Any, Literal, assert_never

from analytics.scenario import Behaviour, StaffPlan, Visitor
from analytics.simulate import DaySim, TicketRecord
from broker.config import HallConfig

AT_START = -1  # the checkpoint "before the day begins"


@dataclass
class DayTally:
    """One day's answer: per hour slot (index from opening), visitors and how many were called in time;
    the same per (slot, topic)."""

    slots: dict[int, tuple[int, int]] = field(default_factory=dict)
    topics: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)

    def met(self, slot: int, share: float) -> bool:
        arrived, in_time = self.slots.get(slot, (0, 0))
        return in_time >= share * arrived - 1e-9


def tally(records: Sequence[TicketRecord], opens: float, target_s: float, first_slot: int = 0) -> DayTally:
    result = DayTally()
    for record in records:
        slot = int((record.issued - opens) // 3600)
        if slot < first_slot:
            continue
        ok = record.called is not None and record.called - record.issued <= target_s
        arrived, in_time = result.slots.get(slot, (0, 0))
        result.slots[slot] = (arrived + 1, in_time + ok)
        arrived, in_time = result.topics.get((slot, record.topic), (0, 0))
        result.topics[(slot, record.topic)] = (arrived + 1, in_time + ok)
    return result


@dataclass(frozen=True)
class Trial:
    """Play `plan` from checkpoint `start` (a moment, or AT_START) until `until`; tally the slots from
    `first_slot` on. Stop early once more than `allowed` days fail any slot in `must_meet`."""

    plan: StaffPlan
    start: float
    until: float
    first_slot: int
    must_meet: tuple[int, ...] = ()
    allowed: int = 1 << 30


Method = Literal["checkpoint", "begin", "advance", "rewind", "run"]
"""What a DayRunner asks of its DayBench (in this process or a worker's): `call` says which method does each."""


class DayBench:
    """Some of the sampled days, each with its checkpoints (the work of one worker)."""

    def __init__(self, hall: HallConfig, day: date, behaviour: Behaviour, days: Sequence[tuple[Visitor, ...]],
                 target_s: float, share: float) -> None:
        self.hall, self.day, self.behaviour, self.days = hall, day, behaviour, list(days)
        self.target_s, self.share = target_s, share
        window = hall.hours.window(day)
        if window is None:
            raise ValueError(f"hall {hall.id} is closed on {day.isoformat()}")
        self.opens = float(window[0].hour * 3600 + window[0].minute * 60)
        self.checkpoints: dict[float, list[DaySim]] = {}
        self.current: list[DaySim] = []
        self.moment = -math.inf  # where `current` stands

    def _new(self, visitors: tuple[Visitor, ...], plan: StaffPlan) -> DaySim:
        return DaySim(self.hall, self.day, visitors, plan, self.behaviour, keep_events=False, estimates=False)

    @staticmethod
    def _keep(sim: DaySim, moment: float) -> DaySim:
        """A checkpoint of `sim` at `moment`: a copy without what only the hours before need."""
        copy = sim.fork()
        copy.forget_before(moment)
        return copy

    def checkpoint(self, plan: StaffPlan, moments: Sequence[float]) -> None:
        """Play every day under `plan` and keep it just before each of `moments` (earlier ones dropped)."""
        self.checkpoints = {}
        for visitors in self.days:
            sim = self._new(visitors, plan)
            for moment in sorted(moments):
                sim.run_until(moment - 1e-6)
                self.checkpoints.setdefault(moment, []).append(self._keep(sim, moment))

    def begin(self, plan: StaffPlan) -> None:
        """Every day from its start under `plan`, to be moved on with `advance`."""
        self.current = [self._new(visitors, plan) for visitors in self.days]
        self.moment = -math.inf

    def advance(self, plan: StaffPlan, moment: float) -> None:
        """The days started by `begin` played on under `plan` to just before `moment`: the checkpoint there
        (the hour-by-hour search moves on so, and never replays a day from its start)."""
        before = [sim.fork() for sim in self.current]  # the last checkpoint stays, for `rewind`
        for sim in self.current:
            sim.set_plan(plan)
            sim.run_until(moment - 1e-6)
            sim.forget_before(moment)
        self.checkpoints = {self.moment: before, moment: self.current}
        self.moment = moment

    def rewind(self, plan: StaffPlan, earlier: float, moment: float) -> None:
        """Play the days again from the checkpoint at `earlier` under a changed plan, to just before `moment`."""
        self.current = [sim.fork() for sim in self.checkpoints[earlier]]
        for sim in self.current:
            sim.set_plan(plan)
            sim.run_until(moment - 1e-6)
            sim.forget_before(moment)
        self.checkpoints[moment] = self.current

    def run(self, trial: Trial) -> list[DayTally] | None:
        tallies = []
        failures = dict.fromkeys(trial.must_meet, 0)
        for index, visitors in enumerate(self.days):
            if trial.start == AT_START:
                sim = self._new(visitors, trial.plan)
            else:
                sim = self.checkpoints[trial.start][index].fork()
                sim.set_plan(trial.plan)
            sim.run_until(trial.until)
            day = tally(sim.records, self.opens, self.target_s, trial.first_slot)
            tallies.append(day)
            for slot in failures:
                failures[slot] += not day.met(slot, self.share)
                if failures[slot] > trial.allowed:
                    return None
        return tallies


# ---------------------------------------------------------------- in this process or in workers

class DayRunner:
    """The sampled days, spread over `workers` processes (1: all here). Use as a context manager."""

    def __init__(self, hall: HallConfig, day: date, behaviour: Behaviour, days: Sequence[tuple[Visitor, ...]],
                 target_s: float, share: float, workers: int = 1) -> None:
        self.count = len(days)
        self.workers = max(1, min(workers, len(days)))
        shares = [list(days[i::self.workers]) for i in range(self.workers)]  # day i to worker i mod n
        self._local: DayBench | None = None
        self._pipes: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        if self.workers == 1:
            self._local = DayBench(hall, day, behaviour, days, target_s, share)
            return
        # fork (quick, and no `if __name__ == "__main__"` needed in the caller's script) unless the caller
        # has threads, which a fork would copy in the middle of whatever they were doing
        methods = multiprocessing.get_all_start_methods()
        context: Any = multiprocessing.get_context("fork" if threading.active_count() == 1 and "fork" in methods
                                              else "spawn")
        for part in shares:
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, hall, day, behaviour, part, target_s, share),
                                      daemon=True)
            process.start()
            theirs.close()
            self._pipes.append(mine)
            self._processes.append(process)

    def __enter__(self) -> DayRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):  # a worker that died already
                pipe.send(None)
            pipe.close()
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        self._pipes, self._processes = [], []

    def checkpoint(self, plan: StaffPlan, moments: Sequence[float]) -> None:
        self._call("checkpoint", plan, list(moments))

    def begin(self, plan: StaffPlan) -> None:
        self._call("begin", plan)

    def advance(self, plan: StaffPlan, moment: float) -> None:
        self._call("advance", plan, moment)

    def rewind(self, plan: StaffPlan, earlier: float, moment: float) -> None:
        self._call("rewind", plan, earlier, moment)

    def run(self, trial: Trial) -> list[DayTally] | None:
        """Every day's tally, in no particular order; None when the trial stopped early."""
        answers = self._call("run", trial)
        if any(a is None for a in answers):
            return None
        return [t for answer in answers for t in answer]

    def _call(self, method: Method, *args: Any) -> list[Any]:
        if self._local is not None:
            return [call(self._local, method, args)]
        for pipe in self._pipes:
            pipe.send((method, args))
        answers = []
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            ready = wait([pipe, process.sentinel])
            if pipe not in ready:
                raise RuntimeError(f"a day worker ended with exit code {process.exitcode}")
            ok, answer = pipe.recv()
            if not ok:
                raise RuntimeError(f"a day worker failed: {answer}")
            answers.append(answer)
        return answers


def _serve(pipe: Connection, hall: HallConfig, day: date, behaviour: Behaviour, days: list[tuple[Visitor, ...]],
           target_s: float, share: float) -> None:
    bench = DayBench(hall, day, behaviour, days, target_s, share)
    while True:
        try:
            message = pipe.recv()
        except EOFError:
            return
        if message is None:
            return
        method, args = message
        try:
            pipe.send((True, call(bench, method, args)))
        except Exception as exc:  # the search must hear of it rather than wait for ever
            pipe.send((False, f"{type(exc).__name__}: {exc}"))


def call(bench: DayBench, method: Method, args: tuple[Any, ...]) -> Any:
    """One request to a bench; a method name nobody handles (a bug) fails the search loudly."""
    match method:
        case "checkpoint":
            return bench.checkpoint(*args)
        case "begin":
            return bench.begin(*args)
        case "advance":
            return bench.advance(*args)
        case "rewind":
            return bench.rewind(*args)
        case "run":
            return bench.run(*args)
        case _:  # mypy proves this unreachable; at run time the worker answers the failure, and the search raises
            assert_never(method)


MARGIN_Z = 1.645  # the margin for the days not sampled: 95 % sure (one-sided)


def allowed_failures(days: int, confidence: float) -> int:
    """Days an hour may miss the share while the sampled days still show, 95 % sure, that it meets the
    share on at least `confidence` of all such days (the Wilson score lower bound of the share of days met
    is at least `confidence`). 30 days at 90 %: none may miss; 60 days: 2; 100 days: 5. Without a margin
    the search, which keeps the fewest counters that pass, keeps plans that passed by luck: one that met
    27 of 30 sampled days misses on 30 fresh days about every other time. With too few days for the
    margin, every day must meet the share."""
    allowed = 0
    for failing in range(days + 1):
        if wilson_lower(days - failing, days, MARGIN_Z) < confidence:
            break
        allowed = failing
    return allowed


def wilson_lower(successes: int, trials: int, z: float) -> float:
    if trials == 0:
        return 0.0
    share = successes / trials
    centre = share + z * z / (2 * trials)
    spread = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    return (centre - spread) / (1 + z * z / trials)
