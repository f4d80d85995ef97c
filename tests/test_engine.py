"""The queue engine, one operation and one refusal at a time, on the demo hall and a fake clock.

2026-11-30 is a Monday: the hall is open 08:00-17:00 and the last ticket is drawn at 16:45.
General questions (A) are served by counters 1 and 2 in their first tier and by counter 3 in its second.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from broker import protocol as p
from broker.config import HallConfig
from broker.engine import MAX_NUMBER, Engine, Outcome
from broker.hallstate import HallState, Ticket
from broker.waitmodel import HIGH_START
from tests.support.clock import FakeClock

TZ = ZoneInfo("Europe/Helsinki")
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
GENERAL_S = 300.0  # service_time_min = 5 in the demo hall


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def snapshot(state: HallState) -> dict[str, Any]:
    """Everything a refusal must leave alone."""
    return copy.deepcopy({
        "seq": state.seq, "day": state.day,
        "tickets": {n: {**t.public(), "order": t.order, "to_counter": t.to_counter} for n, t in state.tickets.items()},
        "waiting": state.waiting, "counters": {c: asdict(s) for c, s in state.counters.items()},
        "service": state.service_time_s, "next": state.next_number, "issued": state.issued_today,
        "calls": state.calls,
    })


class Desk:
    """One engine, one fake clock, and commands shaped as parse_command would shape them."""

    def __init__(self, hall: HallConfig, *, always_open: bool = False, start: datetime = MONDAY_9) -> None:
        self.hall = hall
        self.engine = Engine(hall, always_open=always_open)
        self.clock = FakeClock(start)
        self._ids = itertools.count(1)
        self.events: list[p.Event] = []
        # start the day now, so that the refusals under test have no day rollover to carry
        assert self.send("admin", "cli", "ping").events[0].type == p.DAY_STARTED

    @property
    def state(self) -> HallState:
        return self.engine.state

    def send(self, role: str, device: str, op: str, /, **args: Any) -> Outcome:
        command = p.Command(id=f"c{next(self._ids)}", role=role, device=device, op=op,
                            args={k: v for k, v in args.items() if v is not None})
        outcome = self.engine.handle(command, self.clock.now())
        assert outcome.reply["id"] == command.id
        self.events += outcome.events
        return outcome

    def ok(self, role: str, device: str, op: str, /, **args: Any) -> dict[str, Any]:
        outcome = self.send(role, device, op, **args)
        assert outcome.ok, outcome.reply
        return outcome.reply["result"]

    def issue(self, topic: str = "general", **args: Any) -> dict[str, Any]:
        ticket: dict[str, Any] = self.ok("kiosk", "K1", "issue", topic=topic, **args)["ticket"]
        return ticket

    def at(self, counter: str, op: str, /, **args: Any) -> Outcome:
        outcome = self.send("counter", counter, op, **args)
        assert outcome.ok, outcome.reply
        return outcome

    def call(self, counter: str, /, **args: Any) -> str:
        number: str = self.at(counter, "next", **args).reply["result"]["ticket"]["number"]
        return number

    def refuse(self, role: str, device: str, op: str, code: str, /, **args: Any) -> dict[str, Any]:
        """A refusal: the expected code, no events, and the state exactly as before."""
        before = snapshot(self.state)
        outcome = self.send(role, device, op, **args)
        assert not outcome.ok, outcome.reply
        error: dict[str, Any] = outcome.reply["error"]
        assert error["code"] == code, error
        assert error["message"]
        assert outcome.events == []
        assert snapshot(self.state) == before
        return error

    def ticket(self, number: str) -> Ticket:
        return self.state.tickets[number]

    def queue(self, topic: str) -> list[str]:
        return [t.number for t in self.state.waiting_in(topic)]


def types(outcome: Outcome) -> list[str]:
    return [e.type for e in outcome.events]


@pytest.fixture
def desk(hall: HallConfig) -> Desk:
    return Desk(hall)


def open_counters(desk: Desk, *counters: str) -> None:
    for counter in counters:
        desk.at(counter, "open")


# ---------------------------------------------------------------- issue


def test_first_tickets_are_letter_and_three_digits_numbered_per_topic(desk: Desk) -> None:
    numbers = [desk.issue(t)["number"] for t in ("general", "general", "permits", "parking", "general", "permits")]
    assert numbers == ["A001", "A002", "B001", "C001", "A003", "B002"]


def test_issued_ticket_carries_what_the_kiosk_prints(desk: Desk) -> None:
    """Nobody ahead and the permits counter free (assumed to open): called at once, within the learned range."""
    ticket = desk.issue("permits", lang="en")
    assert ticket == {"number": "B001", "topic": "permits", "lang": "en", "priority": False,
                      "issued_at": iso(MONDAY_9), "ahead": 0, "expected_wait_s": 1,
                      "expected_wait_range_s": [0, math.ceil(1 + HIGH_START * (1 + 14 * 60))],
                      "state": "waiting", "recalls": 0, "forwards": 0}


def test_issue_emits_one_ticket_issued_event_with_the_ticket_and_kiosk(desk: Desk) -> None:
    outcome = desk.send("kiosk", "K7", "issue", topic="general")
    assert types(outcome) == [p.TICKET_ISSUED]
    event = outcome.events[0]
    assert event.seq == 2 and event.at == iso(MONDAY_9)
    assert event.data["ticket"] == outcome.reply["result"]["ticket"]
    assert event.data["device"] == "K7"
    assert desk.state.seq == 2


def test_language_defaults_to_the_hall_main_language(desk: Desk) -> None:
    assert desk.issue()["lang"] == "sv"
    assert desk.issue(lang="fi")["lang"] == "fi"


def test_ahead_counts_everyone_waiting_in_the_topic_and_the_wait_grows(desk: Desk) -> None:
    """No counter open yet: the two first-tier counters of general questions are assumed to open. They take
    the first two at once (general before taxes, their second tier); the third waits for a visit to end."""
    desk.issue("taxes")
    tickets = [desk.issue() for _ in range(3)]
    assert [t["ahead"] for t in tickets] == [0, 1, 2]
    assert [t["expected_wait_s"] for t in tickets] == [1, 1, GENERAL_S]


def test_expected_wait_follows_the_open_counters_and_their_tiers(desk: Desk) -> None:
    desk.at("3", "open")  # parking first, general only in its second tier
    desk.issue("parking")
    assert desk.issue()["expected_wait_s"] == 6 * 60  # after the parking visit
    desk.at("1", "open")  # general first: it takes A001 at once; A002 waits for the first visit to end
    assert desk.issue()["expected_wait_s"] == GENERAL_S
    desk.at("1", "close")  # counter 3 alone: C001, then A001 and A002 at its pace, then A003
    assert desk.issue()["expected_wait_s"] == 6 * 60 + 2 * GENERAL_S
    desk.at("2", "open")  # counter 2 takes A001, 3 takes C001; then A002 at 2 (300 s), A003 at 3 (360 s), A004
    assert desk.issue()["expected_wait_s"] == 2 * GENERAL_S


def test_priority_ticket_counts_only_priority_tickets_ahead(desk: Desk) -> None:
    desk.issue()
    desk.issue()
    first = desk.issue(priority=True)
    second = desk.issue(priority=True)
    normal = desk.issue()
    assert (first["ahead"], second["ahead"], normal["ahead"]) == (0, 1, 4)
    assert first["priority"] is True and normal["priority"] is False
    assert first["expected_wait_s"] < normal["expected_wait_s"]


def test_issue_of_an_unknown_topic_is_refused(desk: Desk) -> None:
    error = desk.refuse("kiosk", "K1", "issue", p.Err.UNKNOWN_TOPIC, topic="dragons")
    assert "dragons" in error["message"]


def test_issue_in_a_language_the_hall_does_not_speak_is_refused(desk: Desk) -> None:
    desk.refuse("kiosk", "K1", "issue", p.Err.UNKNOWN_LANG, topic="general", lang="pl")  # no Polish here


def test_priority_ticket_is_refused_when_the_hall_does_not_allow_them(hall: HallConfig) -> None:
    desk = Desk(replace(hall, rules=replace(hall.rules, priority_allowed=False)))
    desk.refuse("kiosk", "K1", "issue", p.Err.PRIORITY_NOT_ALLOWED, topic="general", priority=True)
    assert desk.issue(priority=False)["number"] == "A001"


@pytest.mark.parametrize(
    ("now", "next_open"),
    [
        (datetime(2026, 11, 30, 7, 30, tzinfo=TZ), datetime(2026, 11, 30, 8, 0, tzinfo=TZ)),  # before opening
        (datetime(2026, 11, 30, 16, 45, tzinfo=TZ), datetime(2026, 12, 1, 8, 0, tzinfo=TZ)),  # the cutoff
        (datetime(2026, 11, 30, 20, 0, tzinfo=TZ), datetime(2026, 12, 1, 8, 0, tzinfo=TZ)),  # evening
        (datetime(2026, 12, 4, 16, 0, tzinfo=TZ), datetime(2026, 12, 7, 8, 0, tzinfo=TZ)),  # Friday close
        (datetime(2026, 12, 24, 10, 0, tzinfo=TZ), datetime(2026, 12, 28, 8, 0, tzinfo=TZ)),  # Christmas Eve
    ],
)
def test_issue_outside_hours_is_refused_saying_when_to_come_back(hall: HallConfig, now: datetime,
                                                                 next_open: datetime) -> None:
    desk = Desk(hall, start=now)
    error = desk.refuse("kiosk", "K1", "issue", p.Err.HALL_CLOSED, topic="general")
    assert error["next_open"] == iso(next_open)


def test_issue_a_second_before_the_cutoff_is_accepted(hall: HallConfig) -> None:
    desk = Desk(hall, start=datetime(2026, 11, 30, 16, 44, 59, tzinfo=TZ))
    assert desk.issue()["number"] == "A001"


def test_always_open_ignores_the_opening_hours(hall: HallConfig) -> None:
    desk = Desk(hall, always_open=True, start=datetime(2026, 12, 6, 3, 0, tzinfo=TZ))  # Sunday night
    assert desk.issue()["number"] == "A001"


def test_numbers_run_out_after_999_in_a_topic_but_not_in_others(hall: HallConfig) -> None:
    desk = Desk(hall)
    last = None
    for _ in range(MAX_NUMBER):
        last = desk.issue()
    assert last is not None and last["number"] == "A999"
    error = desk.refuse("kiosk", "K1", "issue", p.Err.NUMBERS_EXHAUSTED, topic="general")
    assert "general" in error["message"]
    assert desk.issue("parking")["number"] == "C001"


def numbered(hall: HallConfig, numbers: str) -> HallConfig:
    return replace(hall, rules=replace(hall.rules, numbers=numbers))


def test_wrapped_numbers_start_again_at_001_and_skip_those_still_in_use(hall: HallConfig) -> None:
    desk = Desk(numbered(hall, "wrap"))
    open_counters(desk, "1", "2")
    for _ in range(MAX_NUMBER):
        desk.issue()
    assert desk.call("1") == "A001"
    desk.at("1", "done", outcome="resolved")  # A001 is free again
    assert desk.call("1") == "A002"  # A002 stays at counter 1
    assert desk.call("2") == "A003"
    desk.at("2", "done", outcome="resolved")  # A003 is free again
    assert desk.issue()["number"] == "A001"
    assert desk.issue()["number"] == "A003"  # A002 is at a counter: skipped
    desk.refuse("kiosk", "K1", "issue", p.Err.NUMBERS_EXHAUSTED, topic="general")  # A002, A004-A999 in use
    assert desk.issue("parking")["number"] == "C001"
    replayed = HallState(desk.hall)
    for event in desk.events:  # a log with a number used twice in a day replays to the same state
        replayed.apply(event)
    assert snapshot(replayed) == snapshot(desk.state)


def test_wrapped_numbers_refuse_only_when_every_number_is_in_use(hall: HallConfig) -> None:
    desk = Desk(numbered(hall, "wrap"))
    for _ in range(MAX_NUMBER):
        desk.issue()
    error = desk.refuse("kiosk", "K1", "issue", p.Err.NUMBERS_EXHAUSTED, topic="general")
    assert "in use" in error["message"]


def test_four_digit_numbers_keep_their_width_all_day(hall: HallConfig) -> None:
    desk = Desk(numbered(hall, "four-digits"))
    numbers = [desk.issue()["number"] for _ in range(1000)]
    assert numbers[0] == "A0001" and numbers[998] == "A0999" and numbers[999] == "A1000"
    assert {len(n) for n in numbers} == {5}
    assert p.format_number("A", 9999, 4) == "A9999"
    with pytest.raises(ValueError, match="does not fit"):
        p.format_number("A", 1000)


# ---------------------------------------------------------------- next


def test_next_on_a_closed_counter_is_refused(desk: Desk) -> None:
    desk.issue()
    desk.refuse("counter", "1", "next", p.Err.COUNTER_CLOSED)


def test_next_with_nobody_waiting_is_queue_empty_without_events(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue("permits")  # waiting, but not for counter 1
    desk.refuse("counter", "1", "next", p.Err.QUEUE_EMPTY)


def test_command_from_a_counter_the_hall_does_not_have_is_refused(desk: Desk) -> None:
    desk.refuse("counter", "99", "open", p.Err.UNKNOWN_COUNTER)


def test_next_calls_the_ticket_and_reports_the_counter(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.clock.advance(minutes=3)
    outcome = desk.at("1", "next")
    assert types(outcome) == [p.TICKET_CALLED]
    assert outcome.events[0].data["counter"] == "1" and outcome.events[0].data["recall"] == 0
    result = outcome.reply["result"]
    assert result["ticket"]["number"] == "A001"
    assert result["ticket"]["state"] == p.CALLED
    assert result["ticket"]["counter"] == "1"
    assert result["ticket"]["called_at"] == iso(desk.clock.now())
    assert result["counter"]["ticket"]["number"] == "A001"
    assert result["counter"]["served_today"] == 1
    assert desk.queue("general") == []


def test_next_serves_the_first_tier_before_older_tickets_of_later_tiers(desk: Desk) -> None:
    open_counters(desk, "1")  # tiers: [general], [parking, taxes]
    desk.issue("parking")
    desk.clock.advance(minutes=1)
    desk.issue("taxes")
    desk.clock.advance(minutes=1)
    desk.issue("general")
    assert [desk.call("1") for _ in range(3)] == ["A001", "C001", "E001"]


def test_next_inside_a_tier_takes_the_longest_wait_not_the_listed_order(desk: Desk) -> None:
    open_counters(desk, "1")  # second tier lists parking before taxes
    desk.issue("taxes")
    desk.issue("parking")
    desk.issue("taxes")
    assert [desk.call("1") for _ in range(3)] == ["E001", "C001", "E002"]


def test_priority_goes_first_inside_its_topic(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.issue()
    desk.issue(priority=True)
    assert [desk.call("1") for _ in range(3)] == ["A003", "A001", "A002"]


def test_priority_does_not_jump_other_topics_of_the_tier(desk: Desk) -> None:
    open_counters(desk, "3")  # tiers: [parking, taxes], [general]
    desk.issue("taxes")
    desk.issue("parking", priority=True)
    assert [desk.call("3") for _ in range(2)] == ["E001", "C001"]


def test_a_late_priority_ticket_does_not_push_its_topic_back_in_the_tier(desk: Desk) -> None:
    """Topics in a tier are compared by their longest waiter: C001 came first, so parking leads,
    and inside parking the priority C002 goes first; taxes' E001 would have come first by heads."""
    open_counters(desk, "3")  # tiers: [parking, taxes], [general]
    desk.issue("parking")
    desk.issue("taxes")
    desk.issue("parking", priority=True)
    assert [desk.call("3") for _ in range(3)] == ["C002", "C001", "E001"]


def test_pausing_a_paused_counter_again_changes_nothing(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.at("1", "pause", reason="lunch")
    assert desk.send("counter", "1", "pause", reason="lunch").events == []
    assert [e.type for e in desk.send("counter", "1", "pause", reason="meeting").events] == [p.COUNTER_PAUSED]


def test_ticket_forwarded_to_this_counter_goes_before_its_tiers(desk: Desk) -> None:
    open_counters(desk, "1", "4")
    desk.issue("permits")
    desk.issue("general")
    assert desk.call("1") == "A001"
    desk.at("1", "forward", counter="4")
    assert [desk.call("4"), desk.call("4")] == ["A001", "B001"]


def test_next_with_a_topic_takes_only_that_topic(desk: Desk) -> None:
    open_counters(desk, "3")
    desk.issue("parking")
    desk.issue("general")
    desk.issue("taxes")
    assert desk.call("3", topic="taxes") == "E001"
    assert desk.call("3", topic="general") == "A001"
    desk.refuse("counter", "3", "next", p.Err.QUEUE_EMPTY, topic="taxes")


def test_next_with_a_topic_the_counter_does_not_serve_is_refused(desk: Desk) -> None:
    open_counters(desk, "3")
    desk.issue("permits")
    error = desk.refuse("counter", "3", "next", p.Err.NOT_YOUR_TOPIC, topic="permits")
    assert "permits" in error["message"]
    desk.refuse("counter", "3", "next", p.Err.UNKNOWN_TOPIC, topic="dragons")


def test_next_on_a_paused_counter_resumes_it(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.at("1", "pause", reason="coffee")
    desk.issue()
    outcome = desk.at("1", "next")
    assert types(outcome) == [p.COUNTER_OPENED, p.TICKET_CALLED]
    assert outcome.events[0].data == {"counter": "1", "reason": "next"}
    assert outcome.reply["result"]["counter"]["status"] == p.OPEN
    assert desk.state.counters["1"].status == p.OPEN


def test_next_on_a_paused_counter_with_nobody_waiting_stays_paused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.at("1", "pause")
    desk.refuse("counter", "1", "next", p.Err.QUEUE_EMPTY)
    assert desk.state.counters["1"].status == p.PAUSED


def test_next_first_closes_the_open_visit_as_resolved(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.issue()
    desk.call("1")
    outcome = desk.at("1", "next")
    assert types(outcome) == [p.TICKET_DONE, p.TICKET_CALLED]
    done = outcome.events[0].data
    assert done["ticket"]["number"] == "A001" and done["ticket"]["state"] == p.DONE
    assert (done["outcome"], done["matters"], done["auto"], done["counter"]) == ("resolved", ["general"], True, "1")
    assert desk.ticket("A001").state == p.DONE
    assert desk.state.counters["1"].current == "A002"


def test_next_with_an_open_visit_and_nobody_waiting_keeps_the_visit(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    desk.refuse("counter", "1", "next", p.Err.QUEUE_EMPTY)
    assert desk.ticket("A001").state == p.CALLED


def test_two_counters_never_call_the_same_visitor(desk: Desk) -> None:
    open_counters(desk, "1", "2")
    desk.issue()
    desk.issue()
    assert {desk.call("1"), desk.call("2")} == {"A001", "A002"}
    desk.refuse("counter", "1", "next", p.Err.QUEUE_EMPTY)


# ---------------------------------------------------------------- recall and no-show


def test_recall_counts_up_and_keeps_the_first_call_time(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    first_call = iso(desk.clock.now())
    for expected in (1, 2, 3):
        desk.clock.advance(seconds=30)
        outcome = desk.at("1", "recall")
        assert types(outcome) == [p.TICKET_CALLED]
        assert outcome.events[0].data["recall"] == expected
        assert outcome.reply["result"]["ticket"]["recalls"] == expected
    assert desk.ticket("A001").called_at == first_call
    assert desk.state.calls[0]["recall"] == 3 and len(desk.state.calls) == 1
    assert desk.state.counters["1"].served == 1


def test_recall_without_a_called_visitor_is_refused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.refuse("counter", "1", "recall", p.Err.NO_TICKET)


def test_noshow_needs_the_configured_number_of_recalls(desk: Desk) -> None:
    assert desk.hall.rules.noshow_after_recalls == 2
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    error = desk.refuse("counter", "1", "noshow", p.Err.TOO_FEW_RECALLS)
    assert error["recalls"] == 0
    desk.at("1", "recall")
    assert desk.refuse("counter", "1", "noshow", p.Err.TOO_FEW_RECALLS)["recalls"] == 1
    desk.at("1", "recall")
    outcome = desk.at("1", "noshow")
    assert types(outcome) == [p.TICKET_NOSHOW]
    assert outcome.reply["result"]["ticket"]["state"] == p.NOSHOW
    assert desk.ticket("A001").state == p.NOSHOW
    assert desk.state.counters["1"].current is None


def test_noshow_with_zero_recalls_needed_is_allowed_at_once(hall: HallConfig) -> None:
    desk = Desk(replace(hall, rules=replace(hall.rules, noshow_after_recalls=0)))
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    assert types(desk.at("1", "noshow")) == [p.TICKET_NOSHOW]


def test_noshow_without_a_called_visitor_is_refused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.refuse("counter", "1", "noshow", p.Err.NO_TICKET)


# ---------------------------------------------------------------- done


def test_done_resolved_ends_the_visit(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    outcome = desk.at("1", "done", outcome="resolved")
    assert types(outcome) == [p.TICKET_DONE]
    data = outcome.events[0].data
    assert (data["outcome"], data["matters"], data["auto"]) == ("resolved", ["general"], False)
    assert outcome.reply["result"]["ticket"]["state"] == p.DONE
    assert outcome.reply["result"]["counter"]["ticket"] is None
    assert desk.state.counters["1"].current is None


def test_done_handed_on_records_the_matters_handled(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    outcome = desk.at("1", "done", outcome="handed_on", matters=["general", "taxes"])
    assert outcome.events[0].data["outcome"] == "handed_on"
    assert outcome.events[0].data["matters"] == ["general", "taxes"]


def test_done_naming_an_unknown_matter_is_refused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    error = desk.refuse("counter", "1", "done", p.Err.UNKNOWN_TOPIC, outcome="resolved", matters=["general", "dogs"])
    assert "dogs" in error["message"]
    assert desk.ticket("A001").state == p.CALLED


def test_done_without_a_called_visitor_is_refused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.refuse("counter", "1", "done", p.Err.NO_TICKET, outcome="resolved")


def test_service_time_average_moves_with_each_visit(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.issue()
    desk.issue()
    desk.call("1")
    desk.clock.advance(minutes=10)
    desk.at("1", "done", outcome="resolved")
    after_long = GENERAL_S + 0.2 * (600 - GENERAL_S)
    assert desk.state.service_time_s["general"] == pytest.approx(after_long)
    assert desk.engine.queue_state("general")["service_time_s"] == round(after_long, 1)
    desk.call("1")
    desk.clock.advance(seconds=5)  # a visit this short counts as 30 s
    desk.at("1", "done", outcome="resolved")
    after_short = after_long + 0.2 * (30 - after_long)
    assert desk.state.service_time_s["general"] == pytest.approx(after_short)
    # counter 1 alone and free: A003 first, then the new ticket, at counter 1's learned pace for the topic
    assert desk.issue()["expected_wait_s"] == math.ceil(desk.state.model.service_s("general", "1"))


def test_auto_closed_visit_also_counts_for_the_service_time(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.issue()
    desk.call("1")
    desk.clock.advance(minutes=15)
    desk.call("1")
    assert desk.state.service_time_s["general"] == pytest.approx(GENERAL_S + 0.2 * (900 - GENERAL_S))


# ---------------------------------------------------------------- forward


def test_forward_to_a_topic_keeps_the_number_and_issue_time(desk: Desk) -> None:
    open_counters(desk, "1")
    issued = desk.issue()
    desk.clock.advance(minutes=4)
    desk.call("1")
    desk.clock.advance(minutes=2)
    outcome = desk.at("1", "forward", topic="parking", note="resident permit")
    assert types(outcome) == [p.TICKET_FORWARDED]
    data = outcome.events[0].data
    assert (data["counter"], data["to_topic"], data["note"]) == ("1", "parking", "resident permit")
    ticket = outcome.reply["result"]["ticket"]
    assert ticket["number"] == "A001" and ticket["issued_at"] == issued["issued_at"]
    assert (ticket["topic"], ticket["origin_topic"], ticket["state"]) == ("parking", "general", p.WAITING)
    assert (ticket["forwards"], ticket["recalls"], ticket["note"]) == (1, 0, "resident permit")
    assert "called_at" not in ticket
    assert desk.state.counters["1"].current is None
    assert desk.queue("parking") == ["A001"]


def test_forwarded_ticket_is_sorted_by_its_original_issue_time(desk: Desk) -> None:
    open_counters(desk, "1", "3")
    desk.issue("parking")  # C001, 09:00
    desk.clock.advance(minutes=1)
    desk.issue("general")  # A001, 09:01
    desk.clock.advance(minutes=1)
    desk.issue("parking")  # C002, 09:02
    assert desk.call("1") == "A001"
    desk.clock.advance(minutes=5)
    desk.at("1", "forward", topic="parking")
    assert desk.queue("parking") == ["C001", "A001", "C002"]
    assert [desk.call("3") for _ in range(3)] == ["C001", "A001", "C002"]


def test_forward_to_an_unknown_topic_is_refused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    desk.refuse("counter", "1", "forward", p.Err.UNKNOWN_TOPIC, topic="dragons")


def test_forward_without_a_called_visitor_is_refused(desk: Desk) -> None:
    open_counters(desk, "1", "4")
    desk.refuse("counter", "1", "forward", p.Err.NO_TICKET, topic="permits")
    desk.refuse("counter", "1", "forward", p.Err.NO_TICKET, counter="4")


def test_forward_to_a_counter_waits_for_that_counter_and_is_served_first(desk: Desk) -> None:
    open_counters(desk, "1", "4")
    desk.issue("permits")
    desk.issue("general")
    desk.call("1")
    outcome = desk.at("1", "forward", counter="4", note="see the architect")
    assert outcome.events[0].data["to_counter"] == "4"
    ticket = desk.ticket("A001")
    assert (ticket.state, ticket.to_counter, ticket.topic) == (p.WAITING, "4", "general")
    assert desk.state.counters["4"].forwarded == ["A001"]
    assert desk.queue("general") == []
    forwarded = desk.engine.counter_state("4")["forwarded"]
    assert [t["number"] for t in forwarded] == ["A001"] and forwarded[0]["to_counter"] == "4"
    desk.refuse("counter", "2", "next", p.Err.COUNTER_CLOSED)
    open_counters(desk, "2")
    desk.refuse("counter", "2", "next", p.Err.QUEUE_EMPTY)  # nobody else may take it
    assert desk.call("4") == "A001"
    assert desk.state.counters["4"].forwarded == []
    assert desk.ticket("A001").to_counter is None
    assert desk.call("4") == "B001"


def test_tickets_forwarded_to_a_counter_are_served_first_come_first(desk: Desk) -> None:
    open_counters(desk, "1", "2", "4")
    desk.issue()
    desk.issue()
    assert desk.call("2") == "A001"
    assert desk.call("1") == "A002"
    desk.at("1", "forward", counter="4")
    desk.at("2", "forward", counter="4")
    assert [desk.call("4"), desk.call("4")] == ["A002", "A001"]


def test_next_with_a_topic_leaves_tickets_forwarded_to_the_counter(desk: Desk) -> None:
    open_counters(desk, "1", "4")
    desk.issue("permits")
    desk.issue("general")
    desk.call("1")
    desk.at("1", "forward", counter="4")
    assert desk.call("4", topic="permits") == "B001"
    assert desk.state.counters["4"].forwarded == ["A001"]


def test_forward_to_an_unknown_counter_is_refused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    desk.refuse("counter", "1", "forward", p.Err.UNKNOWN_COUNTER, counter="99")


def test_forward_to_the_same_counter_is_refused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    desk.refuse("counter", "1", "forward", p.Err.BAD_FIELD, counter="1")


def test_forward_to_a_closed_counter_is_refused(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    error = desk.refuse("counter", "1", "forward", p.Err.COUNTER_CLOSED, counter="4")
    assert "4" in error["message"]


def test_forward_to_a_paused_counter_is_allowed(desk: Desk) -> None:
    open_counters(desk, "1", "4")
    desk.at("4", "pause")
    desk.issue()
    desk.call("1")
    desk.at("1", "forward", counter="4")
    assert desk.call("4") == "A001"


def test_closing_a_counter_sends_its_forwarded_tickets_back_to_their_topic(desk: Desk) -> None:
    open_counters(desk, "1", "4")
    desk.issue()  # A001 09:00
    desk.clock.advance(minutes=1)
    desk.issue()  # A002 09:01
    desk.call("1")
    desk.at("1", "forward", counter="4", note="drawings")
    outcome = desk.at("4", "close")
    assert types(outcome) == [p.TICKET_FORWARDED, p.COUNTER_CLOSED]
    rerouted = outcome.events[0].data
    assert (rerouted["to_topic"], rerouted["reason"], rerouted["note"]) == ("general", "counter_closed", "drawings")
    ticket = desk.ticket("A001")
    assert (ticket.state, ticket.to_counter, ticket.topic, ticket.forwards) == (p.WAITING, None, "general", 2)
    assert desk.queue("general") == ["A001", "A002"]  # back in its place by issue time
    assert desk.state.counters["4"].forwarded == []
    assert desk.call("1") == "A001"


# ---------------------------------------------------------------- pause, open, close


def test_open_pause_close_statuses(desk: Desk) -> None:
    desk.clock.advance(minutes=1)
    outcome = desk.at("1", "open")
    assert types(outcome) == [p.COUNTER_OPENED]
    assert outcome.reply["result"]["counter"]["status"] == p.OPEN
    assert outcome.reply["result"]["counter"]["since"] == iso(desk.clock.now())
    outcome = desk.at("1", "pause", reason="lunch")
    assert types(outcome) == [p.COUNTER_PAUSED]
    assert (desk.state.counters["1"].status, desk.state.counters["1"].reason) == (p.PAUSED, "lunch")
    outcome = desk.at("1", "open")
    assert types(outcome) == [p.COUNTER_OPENED]
    assert (desk.state.counters["1"].status, desk.state.counters["1"].reason) == (p.OPEN, None)
    outcome = desk.at("1", "close")
    assert types(outcome) == [p.COUNTER_CLOSED]
    assert outcome.reply["result"]["counter"]["status"] == p.CLOSED


def test_open_and_close_are_idempotent(desk: Desk) -> None:
    desk.at("1", "open")
    seq = desk.state.seq
    again = desk.at("1", "open")
    assert again.events == [] and again.reply["result"]["counter"]["status"] == p.OPEN
    assert desk.state.seq == seq
    desk.at("1", "close")
    seq = desk.state.seq
    again = desk.at("1", "close")
    assert again.events == [] and again.reply["result"]["counter"]["status"] == p.CLOSED
    assert desk.state.seq == seq
    assert types(desk.at("2", "close")) == []  # closed from the start


def test_pause_of_a_closed_counter_is_refused(desk: Desk) -> None:
    desk.refuse("counter", "1", "pause", p.Err.COUNTER_CLOSED, reason="lunch")


def test_pause_closes_the_open_visit_first(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    outcome = desk.at("1", "pause")
    assert types(outcome) == [p.TICKET_DONE, p.COUNTER_PAUSED]
    assert outcome.events[0].data["auto"] is True
    assert desk.state.counters["1"].current is None and desk.state.counters["1"].reason is None


def test_close_closes_the_open_visit_first(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    outcome = desk.at("1", "close")
    assert types(outcome) == [p.TICKET_DONE, p.COUNTER_CLOSED]
    assert desk.ticket("A001").state == p.DONE


# ---------------------------------------------------------------- the day


def test_next_day_restarts_numbers_and_ends_what_was_left(desk: Desk) -> None:
    open_counters(desk, "1", "2")
    desk.at("2", "pause")
    desk.issue()
    desk.issue()
    desk.issue("permits")
    desk.call("1")
    desk.clock.set(datetime(2026, 12, 1, 8, 30, tzinfo=TZ))
    outcome = desk.send("kiosk", "K1", "issue", topic="general")
    assert types(outcome) == [p.TICKET_EXPIRED] * 3 + [p.COUNTER_CLOSED] * 2 + [p.DAY_STARTED, p.TICKET_ISSUED]
    expired = outcome.events[:3]
    assert [e.data["ticket"]["number"] for e in expired] == ["A001", "A002", "B001"]
    assert all(e.data["reason"] == "day_end" and e.data["ticket"]["state"] == p.EXPIRED for e in expired)
    assert [(e.data["counter"], e.data["reason"]) for e in outcome.events[3:5]] == [("1", "day_end"),
                                                                                     ("2", "day_end")]
    assert outcome.events[5].data["day"] == "2026-12-01"
    assert outcome.events[5].data["service_time_s"]["general"] == GENERAL_S
    assert outcome.reply["result"]["ticket"]["number"] == "A001"
    assert desk.issue("permits")["number"] == "B001"
    assert desk.state.day == "2026-12-01"
    assert set(desk.state.tickets) == {"A001", "B001"}
    assert all(c.status == p.CLOSED and c.current is None and c.served == 0 for c in desk.state.counters.values())
    assert desk.state.calls == []


def test_seq_runs_on_across_days(desk: Desk) -> None:
    desk.issue()
    seq = desk.state.seq
    desk.clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=TZ))
    outcome = desk.send("admin", "cli", "ping")
    assert [e.seq for e in outcome.events] == [seq + 1, seq + 2]
    assert outcome.reply["result"] == {"pong": True, "seq": seq + 2}


def test_service_times_carry_over_to_the_next_day(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    desk.clock.advance(minutes=10)
    desk.at("1", "done", outcome="resolved")
    desk.clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=TZ))
    desk.issue()
    assert desk.state.service_time_s["general"] == pytest.approx(360.0)


def test_clock_stepping_back_over_midnight_does_not_restart_numbers(desk: Desk) -> None:
    desk.clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=TZ))
    assert desk.issue()["number"] == "A001"
    desk.clock.set(datetime(2026, 11, 30, 16, 0, tzinfo=TZ))  # NTP steps the clock back a day
    outcome = desk.send("kiosk", "K1", "issue", topic="general")
    assert types(outcome) == [p.TICKET_ISSUED]
    assert outcome.reply["result"]["ticket"]["number"] == "A002"
    assert desk.state.day == "2026-12-01"


def test_refusal_on_a_new_day_still_carries_the_rollover(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=TZ))
    outcome = desk.send("counter", "1", "next")
    assert outcome.reply["error"]["code"] == p.Err.COUNTER_CLOSED  # the night closed it
    assert types(outcome) == [p.COUNTER_CLOSED, p.DAY_STARTED]


# ---------------------------------------------------------------- tick


def test_tick_expires_waiting_tickets_once_after_closing(desk: Desk) -> None:
    open_counters(desk, "1", "4")
    desk.issue()  # A001
    desk.issue()  # A002
    desk.issue()  # A003
    desk.call("1")
    desk.at("1", "forward", counter="4")  # A001 now waits for counter 4
    desk.call("1")  # A002 is being served
    grace = desk.hall.rules.expire_after_close_min
    closing = datetime(2026, 11, 30, 17, 0, tzinfo=TZ)
    assert desk.engine.tick(closing + timedelta(minutes=grace, seconds=-1)) == []
    events = desk.engine.tick(closing + timedelta(minutes=grace))
    assert [(e.type, e.data["ticket"]["number"], e.data["reason"]) for e in events] == [
        (p.TICKET_EXPIRED, "A001", "after_close"), (p.TICKET_EXPIRED, "A003", "after_close")]
    assert desk.ticket("A002").state == p.CALLED  # staff are still with this visitor
    assert desk.state.counters["4"].forwarded == [] and desk.queue("general") == []
    assert desk.engine.tick(closing + timedelta(minutes=grace + 30)) == []


def test_tick_expires_nothing_in_always_open_mode(hall: HallConfig) -> None:
    desk = Desk(hall, always_open=True)
    desk.issue()
    assert desk.engine.tick(datetime(2026, 11, 30, 23, 0, tzinfo=TZ)) == []
    assert desk.queue("general") == ["A001"]


def test_tick_rolls_the_day_over_at_midnight(desk: Desk) -> None:
    desk.issue()
    events = desk.engine.tick(datetime(2026, 12, 1, 0, 0, 1, tzinfo=TZ))
    assert [e.type for e in events] == [p.TICKET_EXPIRED, p.DAY_STARTED]
    assert events[0].data["reason"] == "day_end"
    assert desk.engine.tick(datetime(2026, 12, 1, 0, 1, tzinfo=TZ)) == []


def test_tick_on_a_closed_day_expires_nothing(hall: HallConfig) -> None:
    desk = Desk(hall, start=datetime(2026, 12, 5, 10, 0, tzinfo=TZ))  # Saturday
    assert desk.engine.tick(datetime(2026, 12, 5, 23, 0, tzinfo=TZ)) == []


# ---------------------------------------------------------------- admin


def test_admin_ping_answers_with_the_seq(desk: Desk) -> None:
    desk.issue()
    outcome = desk.send("admin", "cli", "ping")
    assert outcome.events == []
    assert outcome.reply == {"v": 1, "id": outcome.reply["id"], "ok": True, "result": {"pong": True, "seq": 2}}


def test_admin_state_is_a_snapshot_of_every_part(desk: Desk, hall: HallConfig) -> None:
    desk.issue()
    outcome = desk.send("admin", "cli", "state")
    assert outcome.events == []
    result = outcome.reply["result"]
    expected = {"seq", "hall", "calls"} | {f"queue/{t}" for t in hall.topics} | {f"counter/{c}" for c in hall.counters}
    assert set(result) == expected
    assert result["seq"] == 2
    assert result["queue/general"]["waiting"] == 1
    assert all(body["v"] == 1 and body["seq"] == 2 for key, body in result.items() if key != "seq")


# ---------------------------------------------------------------- state payloads


def test_state_messages_build_only_known_parts(desk: Desk) -> None:
    messages = desk.engine.state_messages({"hall", "calls", "queue/general", "counter/1", "queue/dragons",
                                           "counter/99", "bogus"}, desk.clock.now())
    assert set(messages) == {"hall", "calls", "queue/general", "counter/1"}
    assert messages["queue/general"]["topic"] == "general"
    assert messages["counter/1"]["counter"] == "1"
    assert all(m["v"] == 1 and m["seq"] == desk.state.seq for m in messages.values())


def test_queue_state_shape(desk: Desk) -> None:
    first = desk.issue()
    desk.clock.advance(minutes=1)
    desk.issue(priority=True)
    body = desk.engine.queue_state("general")
    assert set(body) == {"topic", "waiting", "priority", "oldest_issued_at", "expected_wait_s",
                         "expected_wait_range_s", "service_time_s", "tickets"}
    assert (body["topic"], body["waiting"], body["priority"]) == ("general", 2, 1)
    assert body["oldest_issued_at"] == first["issued_at"]  # the priority ticket is ahead but came later
    assert [t["number"] for t in body["tickets"]] == ["A002", "A001"]
    assert body["expected_wait_s"] == GENERAL_S  # counters 1 and 2 take the two waiting; a new one waits a visit
    assert body["service_time_s"] == GENERAL_S
    empty = desk.engine.queue_state("taxes")
    assert (empty["waiting"], empty["oldest_issued_at"], empty["tickets"]) == (0, None, [])


def test_queue_state_previews_at_most_twenty_tickets(desk: Desk) -> None:
    for _ in range(25):
        desk.issue()
    body = desk.engine.queue_state("general")
    assert body["waiting"] == 25 and len(body["tickets"]) == 20


def test_counter_state_shape(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue()
    desk.call("1")
    body = desk.engine.counter_state("1")
    assert set(body) == {"counter", "status", "since", "reason", "ticket", "forwarded", "served_today"}
    assert (body["counter"], body["status"], body["since"], body["reason"]) == ("1", p.OPEN, iso(MONDAY_9), None)
    assert body["ticket"]["number"] == "A001" and body["ticket"]["state"] == p.CALLED
    assert (body["forwarded"], body["served_today"]) == ([], 1)
    closed = desk.engine.counter_state("5")
    assert (closed["status"], closed["since"], closed["ticket"]) == (p.CLOSED, None, None)


def test_hall_state_shape_while_open(desk: Desk) -> None:
    open_counters(desk, "1", "4")
    desk.issue()
    desk.issue()
    desk.call("1")
    desk.at("1", "forward", counter="4")
    body = desk.engine.hall_state(desk.clock.now())
    assert body == {"hall": "kvarnby", "day": "2026-11-30", "accepting": True, "always_open": False,
                    "next_open": None, "issued_today": 2, "waiting": 2,
                    "counters": {"1": p.OPEN, "2": p.CLOSED, "3": p.CLOSED, "4": p.OPEN, "5": p.CLOSED,
                                 "6": p.CLOSED}}


def test_hall_state_after_the_cutoff_says_when_it_opens(desk: Desk) -> None:
    body = desk.engine.hall_state(datetime(2026, 11, 30, 16, 50, tzinfo=TZ))
    assert (body["accepting"], body["next_open"]) == (False, iso(datetime(2026, 12, 1, 8, 0, tzinfo=TZ)))


def test_calls_state_lists_the_latest_calls_newest_first(desk: Desk) -> None:
    open_counters(desk, "1", "2")
    for _ in range(12):
        desk.issue()
    called = [desk.call("1" if i % 2 else "2") for i in range(12)]
    calls = desk.engine.calls_state()["calls"]
    assert [c["number"] for c in calls] == list(reversed(called))[:10]
    assert set(calls[0]) == {"number", "topic", "lang", "counter", "at", "recall", "seq"}
    desk.at("2", "recall")  # a recall moves the call to the top, once
    calls = desk.engine.calls_state()["calls"]
    assert calls[0]["number"] == called[-2] and calls[0]["recall"] == 1
    assert [c["number"] for c in calls].count(called[-2]) == 1


# ---------------------------------------------------------------- restart


def test_engine_on_a_replayed_state_carries_on_where_it_stopped(desk: Desk, hall: HallConfig) -> None:
    """What the store does at start: replay the log, then take commands as if nothing happened."""
    open_counters(desk, "1")
    desk.issue()
    desk.issue(priority=True)
    desk.call("1")
    state = HallState(hall)
    for event in desk.events:
        state.apply(p.Event.from_payload(p.Event(event.seq, event.at, event.type, event.data).payload()))
    restarted = Engine(hall, state=state)
    outcome = restarted.handle(p.Command("r1", "kiosk", "K1", "issue", {"topic": "general"}), desk.clock.now())
    assert [e.seq for e in outcome.events] == [desk.state.seq + 1]
    assert outcome.reply["result"]["ticket"]["number"] == "A003"
    assert restarted.state.counters["1"].current == "A002"  # the priority ticket went first
    called = restarted.handle(p.Command("r2", "counter", "1", "next", {}), desk.clock.now())
    assert called.reply["result"]["ticket"]["number"] == "A001"


def test_replay_refuses_a_gap_in_the_log(hall: HallConfig) -> None:
    state = HallState(hall)
    with pytest.raises(ValueError, match="gap"):
        state.apply(p.Event(seq=2, at=iso(MONDAY_9), type=p.DAY_STARTED, data={"day": "2026-11-30"}))
