"""The counter panel, driven through the pure model against the real queue engine: every action and refusal.

A `Desk` is a CounterModel plus a hand-moved clock; the hall behind it is the real broker.engine.Engine,
whose retained state, events and replies are fed to the model exactly as the hall server would publish
them. So a test reads like the staff's and the server's moments in order, and no payload is made up.
"""

from __future__ import annotations

import gc
import itertools
import types
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import protocol as p
from broker.config import DEMO_HALL, HallConfig, load_hall
from broker.engine import Engine
from counter.keys import key_name
from counter.model import ORIGINS_KEPT, CounterModel
from counter.model_keys import MAIN_KEYS
from counter.model_types import (
    NO_SERVER,
    OFFLINE,
    ONLINE,
    Alert,
    Cancel,
    ChooseTarget,
    ConfirmClose,
    ConfirmForward,
    CounterSettings,
    DeviceMessage,
    Done,
    Effect,
    EventMessage,
    ForwardMode,
    Input,
    Key,
    Link,
    Msg,
    Next,
    Open,
    OpenClose,
    OpenForward,
    OpenPause,
    Panel,
    Pause,
    Recall,
    Reply,
    SendCommand,
    ServerWord,
    SetNote,
    StateMessage,
    Tick,
    TimedOut,
)
from counter.texts import clock, language_line, panel_lines

TZ = ZoneInfo("Europe/Helsinki")
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)


@pytest.fixture(scope="module")
def hall() -> HallConfig:
    return load_hall(DEMO_HALL)


class Hall:
    """The real engine, as the hall server runs it: commands in, events + replies + retained state out."""

    def __init__(self, hall: HallConfig) -> None:
        self.config = hall
        self.engine = Engine(hall, always_open=True)
        self.now = MONDAY_9
        self.ids = itertools.count(1)
        self.listeners: list[Desk] = []
        self.log: list[p.Event] = []
        self.replies: dict[tuple[str, str, str], dict[str, Any]] = {}

    def command(self, role: str, device: str, op: str, command_id: str | None = None, *, publish: bool = True,
                **args: Any) -> dict[str, Any]:
        """As the hall server: the events go out first, then the reply, then the retained state that changed."""
        command = p.Command(command_id or f"c{next(self.ids)}", role, device, op,
                            {k: v for k, v in args.items() if v is not None})
        key = (role, device, command.id)
        if key in self.replies:  # the same command twice: the same reply, nothing done again (as the store does)
            return self.replies[key]
        outcome = self.engine.handle(command, self.now)
        self.replies[key] = outcome.reply
        self.log += outcome.events
        for desk in self.listeners:
            for event in outcome.events:
                desk.feed(EventMessage(event.type, event.payload()))
        if publish:
            self.publish_state()
        return outcome.reply

    def publish_state(self) -> None:
        for desk in self.listeners:
            desk.feed_state()

    def issue(self, topic: str = "general", lang: str = "fi") -> str:
        return str(self.command("kiosk", "K1", "issue", topic=topic, lang=lang)["result"]["ticket"]["number"])

    def state_messages(self) -> list[StateMessage]:
        messages = self.engine.state_messages(self.engine.all_parts(), self.now)
        return [StateMessage(part, body) for part, body in messages.items()]


class Desk:
    """One counter panel on the hall: feeds the model, runs its commands through the engine."""

    def __init__(self, hall: Hall, counter_id: str, *, lang: str = "en", settings: CounterSettings | None = None,
                 connect: bool = True, auto_reply: bool = True) -> None:
        self.hall = hall
        ids = (f"{counter_id}-cmd-{n}" for n in itertools.count(1))
        self.model = CounterModel(hall.config, counter_id, hall.now, settings, lang=lang, new_id=lambda: next(ids))
        self.effects: list[Effect] = []
        self.auto_reply = auto_reply
        self.unanswered: list[SendCommand] = []
        hall.listeners.append(self)
        if connect:
            self.connect()

    def connect(self) -> None:
        self.feed(Link(True))
        self.feed(ServerWord(p.ONLINE))
        self.feed_state()

    def feed(self, event: Input) -> list[Effect]:
        effects = self.model.feed(event, self.hall.now)
        self.effects += effects
        for effect in effects:
            if isinstance(effect, SendCommand):
                if self.auto_reply:
                    self.answer(effect)
                else:
                    self.unanswered.append(effect)
        return effects

    def feed_state(self) -> None:
        for message in self.hall.state_messages():
            self.feed(message)

    def answer(self, effect: SendCommand) -> None:
        reply = self.hall.command("counter", self.model.counter_id, effect.op, effect.command_id, publish=False,
                                  **effect.kwargs())
        error = reply.get("error") or {}
        self.feed(Reply(effect.command_id, reply["ok"], reply.get("result") or {}, error.get("code", ""),
                        {k: v for k, v in error.items() if k not in ("code", "message")}))
        self.hall.publish_state()

    def press(self, *events: Input) -> list[SendCommand]:
        sent: list[SendCommand] = []
        for event in events:
            sent += [e for e in self.feed(event) if isinstance(e, SendCommand)]
        return sent

    def keys(self, *names: str) -> list[SendCommand]:
        return self.press(*(Key(name) for name in names))

    @property
    def panel(self) -> Panel:
        return self.model.panel()

    def text(self) -> str:
        return "\n".join(panel_lines(self.panel))

    def notice(self) -> str | None:
        notice = self.panel.notice
        return None if notice is None else notice.text.id

    def alerts(self) -> list[str]:
        return [a.id for a in self.panel.alerts]

    def current(self) -> str | None:
        current = self.panel.current
        return None if current is None else current.number

    def sent(self) -> list[SendCommand]:
        return [e for e in self.effects if isinstance(e, SendCommand)]


def ops(sent: Iterable[SendCommand]) -> list[str]:
    return [s.op for s in sent]


@pytest.fixture
def world(hall: HallConfig) -> Hall:
    return Hall(hall)


# ---------------------------------------------------------------- before the hall server speaks


def test_before_any_connection_every_action_is_refused_and_nothing_is_sent(world: Hall) -> None:
    desk = Desk(world, "1", connect=False)
    assert desk.panel.header.link == "connecting" and not desk.model.synced
    for name, action in MAIN_KEYS.items():
        if isinstance(action, Cancel):
            continue
        assert desk.keys(name) == [], name
        assert desk.notice() == "counter.refused.offline"
    assert not any(a.enabled for a in desk.panel.actions)


def test_connected_but_the_hall_server_silent_is_not_online(world: Hall) -> None:
    desk = Desk(world, "1", connect=False)
    desk.feed(Link(True))
    desk.feed_state()
    assert desk.panel.header.link == NO_SERVER and "link" in desk.alerts()
    assert desk.press(Open()) == [] and desk.notice() == "counter.refused.offline"
    desk.feed(ServerWord(p.ONLINE))
    assert desk.panel.header.link == ONLINE and desk.model.synced and "link" not in desk.alerts()


def test_an_unknown_counter_is_refused_at_once(hall: HallConfig) -> None:
    with pytest.raises(ValueError, match="counter '99' is not in hall"):
        CounterModel(hall, "99", MONDAY_9)


# ---------------------------------------------------------------- open, next, recall, no-show, done


def test_a_closed_counter_must_be_opened_before_calling(world: Hall) -> None:
    world.issue()
    desk = Desk(world, "1")
    assert desk.panel.header.status == p.CLOSED
    assert desk.keys("enter") == [] and desk.notice() == "counter.refused.counter_closed"
    assert ops(desk.keys("8")) == ["open"]
    assert desk.panel.header.status == p.OPEN and desk.notice() == "counter.ok.open"
    assert desk.keys("8") == [] and desk.notice() == "counter.refused.already_open"


def test_next_with_nobody_waiting_is_refused_without_a_round_trip(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    assert desk.keys("enter") == [] and desk.notice() == "counter.refused.queue_empty"
    next_button = next(a for a in desk.panel.actions if a.id == "next")
    assert not next_button.enabled


def test_next_calls_the_servers_ticket_and_shows_language_and_timer(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    number = world.issue("general", "fi")
    sent = desk.keys("enter")
    assert ops(sent) == ["next"] and sent[0].kwargs() == {}
    assert desk.current() == number and world.engine.state.counters["1"].current == number
    current = desk.panel.current
    assert current is not None and current.lang == "fi" and current.topic == "General questions"
    assert desk.notice() == "counter.ok.next"
    assert "Speaks Suomi (Finnish)" in desk.text()
    assert desk.panel.serving_s == 0
    world.now += timedelta(minutes=3, seconds=12)
    desk.feed(Tick())
    assert desk.panel.serving_s == 192 and "Serving for 03:12" in desk.text()


def test_a_double_press_never_calls_two_visitors(world: Hall) -> None:
    desk = Desk(world, "1", auto_reply=False)
    desk.feed(Link(True))
    desk.feed(ServerWord(p.ONLINE))
    desk.feed_state()
    desk.press(Open())
    desk.answer(desk.unanswered.pop())
    world.issue()
    world.issue()
    first = desk.keys("enter")
    assert desk.keys("enter") == [] and desk.notice() == "counter.refused.busy"
    assert desk.press(Recall(), Done("resolved"), OpenForward(), OpenPause(), OpenClose()) == []
    assert ops(first) == ["next"]
    desk.answer(desk.unanswered.pop())
    assert desk.current() == "A001" and len(world.engine.state.waiting["general"]) == 1


def test_recall_counts_and_no_show_waits_for_the_configured_recalls(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    world.issue()
    desk.keys("enter")
    assert desk.keys("-") == [] and desk.notice() == "counter.refused.too_few_recalls"
    needed = world.config.rules.noshow_after_recalls
    assert f"after {needed} recalls (so far 0)" in desk.text()
    for n in range(1, needed + 1):
        assert ops(desk.keys("+")) == ["recall"]
        assert desk.panel.current is not None and desk.panel.current.recalls == n
    assert ops(desk.keys("-")) == ["noshow"] and desk.current() is None
    assert world.engine.state.tickets["A001"].state == p.NOSHOW and desk.notice() == "counter.ok.noshow"


def test_without_a_visitor_recall_done_forward_and_no_show_are_refused(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    for key in ("+", "-", "1", "2", "3"):
        assert desk.keys(key) == [] and desk.notice() == "counter.refused.no_ticket", key
    assert desk.panel.dialog is None


@pytest.mark.parametrize(("key", "outcome"), [("1", "resolved"), ("2", "handed_on")])
def test_done_ends_the_visit_resolved_or_handed_on(world: Hall, key: str, outcome: str) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    world.issue()
    desk.keys("enter")
    sent = desk.keys(key)
    assert ops(sent) == ["done"] and sent[0].kwargs() == {"outcome": outcome}
    assert desk.current() is None and world.log[-1].data["outcome"] == outcome
    assert desk.notice() == ("counter.ok.done" if outcome == "resolved" else "counter.ok.handed_on")


def test_next_from_one_topic_only(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    world.issue("general")
    world.issue("taxes")
    rows = {row.topic: row for row in desk.panel.queues}
    assert rows["taxes"].can_call and rows["taxes"].waiting == 1 and rows["taxes"].tier == 1
    assert not rows["parking"].can_call
    sent = desk.press(Next("taxes"))
    assert sent[0].kwargs() == {"topic": "taxes"} and desk.current() == "E001"
    assert desk.press(Next("permits")) == [] and desk.notice() == "counter.refused.not_your_topic"
    assert desk.press(Next("parking")) == [] and desk.notice() == "counter.refused.queue_empty"


# ---------------------------------------------------------------- forward


def test_forward_to_the_specialist_by_touch_with_a_note(world: Hall) -> None:
    front, specialist = Desk(world, "1"), Desk(world, "4")
    front.press(Open())
    world.issue("general", "fi")
    front.keys("enter")
    front.press(OpenForward())
    dialog = front.panel.dialog
    assert dialog is not None and dialog.name == "forward" and dialog.mode == "counter"
    assert [item.id for item in dialog.items] == ["2", "3", "4", "5", "6"]  # every counter but this one
    assert not any(item.enabled for item in dialog.items)  # all closed
    front.press(ChooseTarget("counter", "4"))
    assert front.notice() == "counter.refused.target_closed" and "Counter 4 is closed" in front.text()
    assert front.press(ConfirmForward()) == [] and front.notice() == "counter.refused.choose_target"
    specialist.press(Open())
    assert next(i for i in front.panel.dialog.items if i.id == "4").enabled  # type: ignore[union-attr]
    front.press(ChooseTarget("counter", "4"), SetNote("extension permit"))
    sent = front.press(ConfirmForward())
    assert sent[0].kwargs() == {"counter": "4", "note": "extension permit"}
    assert front.current() is None and front.panel.dialog is None
    assert front.notice() == "counter.ok.forward_counter" and "A001 forwarded to Counter 4" in front.text()
    # the specialist is told at once, and the visitor waits in its own row
    assert any(isinstance(e, Alert) and e.code == "forwarded_to_you" for e in specialist.effects)
    assert "forward:A001" in specialist.alerts()
    assert "A001 was forwarded to you by Counter 1: “extension permit”" in specialist.text()
    assert [row.number for row in specialist.panel.forwarded] == ["A001"]
    # its own topics are empty, and yet Next is there: forwarded tickets come first
    assert ops(specialist.keys("enter")) == ["next"] and specialist.current() == "A001"
    assert "forward:A001" not in specialist.alerts() and specialist.panel.forwarded == ()
    current = specialist.panel.current
    assert current is not None and current.from_counter == "Counter 1" and current.note == "extension permit"
    assert current.lang == "fi"


def test_forward_to_a_topic_with_the_number_pad(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    world.issue("general", "sv")
    desk.keys("enter")
    desk.keys("3")
    assert desk.panel.dialog is not None and desk.panel.dialog.mode == "counter"
    desk.keys("/")
    dialog = desk.panel.dialog
    assert dialog is not None and dialog.mode == "topic" and [i.key for i in dialog.items] == list("123456")
    desk.keys("2")  # the second topic: permits
    assert desk.panel.dialog is not None and desk.panel.dialog.items[1].selected
    sent = desk.keys("enter")
    assert sent[0].kwargs() == {"topic": "permits"}
    ticket = world.engine.state.tickets["A001"]
    assert ticket.topic == "permits" and ticket.state == p.WAITING and ticket.forwards == 1
    assert "A001 sent to the queue for Building permits" in desk.text()


def test_forward_is_refused_when_another_visitor_is_served_by_then(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    world.issue()
    world.issue()
    desk.keys("enter")
    desk.press(OpenForward(), ForwardMode("topic"), ChooseTarget("topic", "permits"))
    world.command("counter", "1", "next")  # someone at the same counter, from the command line
    assert desk.current() == "A002"
    assert desk.press(ConfirmForward()) == [] and desk.notice() == "counter.refused.visitor_changed"
    assert desk.panel.dialog is None and world.engine.state.tickets["A002"].forwards == 0


def test_a_note_is_cut_to_the_protocols_limit(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    world.issue()
    desk.keys("enter", "3")
    desk.press(SetNote("x" * 500))
    assert desk.panel.dialog is not None and len(desk.panel.dialog.note or "") == p.NOTE_MAX


def test_escape_cancels_a_dialog_and_keys_behind_it_do_nothing(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    world.issue()
    desk.keys("enter", "3")
    assert desk.keys("1", "8", "+") == []  # 1 chooses counter 2 (closed: refused), 8 and + mean nothing here
    assert desk.panel.dialog is not None
    desk.keys("escape")
    assert desk.panel.dialog is None and desk.current() == "A001"
    desk.keys("7")
    assert desk.panel.dialog is not None and desk.panel.dialog.name == "pause"
    desk.keys(".")
    assert desk.panel.dialog is None


def test_a_forwarded_ticket_leaves_the_alert_when_it_goes_elsewhere(world: Hall) -> None:
    front, specialist = Desk(world, "1"), Desk(world, "4")
    front.press(Open())
    specialist.press(Open())
    world.issue()
    front.keys("enter")
    front.press(OpenForward(), ChooseTarget("counter", "4"), ConfirmForward())
    assert "forward:A001" in specialist.alerts()
    # the specialist closes: its forwarded tickets go back to their topic, and the alert with them
    assert ops(specialist.keys("9", "enter")) == ["close"]
    assert "forward:A001" not in specialist.alerts() and specialist.panel.forwarded == ()
    assert world.engine.state.tickets["A001"].state == p.WAITING and front.panel.queues[0].waiting == 1


def test_a_ticket_forwarded_while_the_panel_was_away_alerts_from_the_retained_state(world: Hall) -> None:
    front = Desk(world, "1")
    front.press(Open())
    world.command("counter", "4", "open")
    world.issue()
    front.keys("enter")
    front.press(OpenForward(), ChooseTarget("counter", "4"), SetNote("drawings"), ConfirmForward())
    specialist = Desk(world, "4")  # starts now: only the retained state tells it
    assert "forward:A001" in specialist.alerts()
    assert any(isinstance(e, Alert) and e.code == "forwarded_to_you" for e in specialist.effects)
    assert "by Counter 1: “drawings”" in specialist.text()


def test_a_newer_forward_event_is_not_undone_by_older_retained_state(world: Hall) -> None:
    specialist = Desk(world, "4")
    specialist.press(Open())
    old_state = world.state_messages()
    world.command("counter", "1", "open")
    world.issue()
    world.command("counter", "1", "next")
    world.command("counter", "1", "forward", counter="4")
    assert "forward:A001" in specialist.alerts()
    for message in old_state:  # a late copy of what the broker held before the forward
        specialist.feed(message)
    assert "forward:A001" in specialist.alerts()


# ---------------------------------------------------------------- pause, open, close


def test_pause_with_a_reason_and_open_again(world: Hall) -> None:
    desk = Desk(world, "1")
    assert desk.keys("7") == [] and desk.notice() == "counter.refused.counter_closed"
    desk.press(Open())
    desk.keys("7")
    dialog = desk.panel.dialog
    assert dialog is not None and [i.id for i in dialog.items] == ["break", "lunch", "backoffice"]
    sent = desk.keys("2")
    assert sent[0].kwargs() == {"reason": "lunch"}
    header = desk.panel.header
    assert header.status == p.PAUSED and header.reason == Msg("counter.reason.lunch")
    assert "Paused" in desk.text() and "Lunch" in desk.text()
    assert ops(desk.keys("8")) == ["open"] and desk.panel.header.status == p.OPEN


def test_close_asks_first_and_says_what_will_happen(world: Hall) -> None:
    desk = Desk(world, "4")
    assert desk.keys("9") == [] and desk.notice() == "counter.refused.already_closed"
    desk.press(Open())
    world.command("counter", "1", "open")
    world.issue("general")
    world.command("counter", "1", "next")
    world.command("counter", "1", "forward", counter="4")
    world.issue("permits")
    desk.keys("enter")  # the forwarded one first
    assert desk.current() == "A001"
    world.issue("general")
    world.command("counter", "1", "next")
    world.command("counter", "1", "forward", counter="4")
    assert desk.press(OpenClose()) == []
    dialog = desk.panel.dialog
    assert dialog is not None and dialog.name == "close"
    assert "The visit of A001 ends as done." in desk.text()
    assert "Visitors forwarded here go back to their topic's queue: 1" in desk.text()
    assert ops(desk.press(ConfirmClose())) == ["close"]
    assert desk.panel.header.status == p.CLOSED and desk.current() is None
    assert world.engine.state.tickets["A002"].to_counter is None


# ---------------------------------------------------------------- the connection


def test_connection_lost_keeps_the_visitor_and_refuses_actions_clearly(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.press(Open())
    world.issue()
    desk.keys("enter")
    effects = desk.feed(Link(False))
    assert any(isinstance(e, Alert) and e.code == "connection_lost" for e in effects)
    panel = desk.panel
    assert panel.header.link == OFFLINE and panel.current is not None and panel.current.number == "A001"
    assert panel.current.stale and "Last known: the connection is down" in desk.text()
    assert "No connection to the hall server. Nothing is sent; the visitor stays on screen." in desk.text()
    for key in ("enter", "+", "1", "2", "3", "7", "9"):
        assert desk.keys(key) == [] and desk.notice() == "counter.refused.offline", key
    assert desk.panel.dialog is None
    world.command("counter", "1", "done", outcome="resolved")  # meanwhile, from the command line
    desk.feed(Link(True))
    assert desk.panel.header.link == NO_SERVER  # the server's word is awaited again
    desk.feed(ServerWord(p.ONLINE))
    desk.feed_state()
    assert desk.current() is None and desk.panel.header.link == ONLINE


def test_an_unconfirmed_command_is_settled_with_the_same_id_when_the_connection_returns(world: Hall) -> None:
    desk = Desk(world, "1", auto_reply=False)
    desk.connect()
    desk.press(Open())
    desk.answer(desk.unanswered.pop())
    world.issue()
    sent = desk.keys("enter")
    desk.feed(Link(False))
    desk.feed(TimedOut(sent[0].command_id))
    assert "unconfirmed" in desk.alerts() and "Next was sent but not confirmed yet" in desk.text()
    assert desk.keys("enter") == [] and desk.notice() == "counter.refused.offline"
    desk.feed(Link(True))
    assert desk.unanswered == [sent[0]]  # nothing new until the hall server is there
    resent = desk.press(ServerWord(p.ONLINE))
    assert [s.command_id for s in resent] == [sent[0].command_id]
    desk.unanswered.clear()
    desk.answer(resent[0])
    desk.answer(sent[0])  # the first copy arrives too, late: the same reply, ignored
    assert desk.current() == "A001" and "unconfirmed" not in desk.alerts()
    assert world.engine.state.tickets["A001"].recalls == 0 and world.engine.state.counters["1"].served == 1


def test_an_unconfirmed_command_is_retried_while_online_and_never_doubled(world: Hall) -> None:
    settings = CounterSettings(retry_s=10.0)
    desk = Desk(world, "1", settings=settings, auto_reply=False)
    desk.connect()
    desk.press(Open())
    desk.answer(desk.unanswered.pop())
    world.issue()
    world.issue()
    sent = desk.keys("enter")
    desk.feed(TimedOut(sent[0].command_id))
    world.now += timedelta(seconds=9)
    assert desk.press(Tick()) == []
    world.now += timedelta(seconds=1)
    again = desk.press(Tick())
    assert [s.command_id for s in again] == [sent[0].command_id]
    desk.answer(sent[0])
    desk.answer(again[0])
    assert world.engine.state.counters["1"].served == 1 and desk.current() == "A001"


def test_a_command_the_client_never_answers_becomes_unconfirmed(world: Hall) -> None:
    desk = Desk(world, "1", settings=CounterSettings(command_timeout_s=5.0), auto_reply=False)
    desk.connect()
    sent = desk.press(Open())
    world.now += timedelta(seconds=11)
    effects = desk.feed(Tick())
    assert any(isinstance(e, Alert) and e.code == "command_unconfirmed" for e in effects)
    assert desk.model.pending is not None and desk.model.pending.command_id == sent[0].command_id


def test_the_servers_refusal_is_shown_and_the_next_action_can_go(world: Hall) -> None:
    desk = Desk(world, "1", auto_reply=False)
    desk.connect()
    desk.press(Open())
    desk.answer(desk.unanswered.pop())
    world.issue()
    sent = desk.keys("enter")
    world.command("counter", "2", "open")
    world.command("counter", "2", "next")  # counter 2 was quicker
    desk.answer(sent[0])
    assert desk.notice() == "counter.refused.queue_empty" and desk.model.pending is None
    desk.feed(Reply("no-such-id", True, {"ticket": {"number": "Z999"}}))  # a stray reply changes nothing
    assert desk.current() is None


def test_an_unknown_server_error_is_shown_with_its_code(world: Hall) -> None:
    desk = Desk(world, "1", auto_reply=False)
    desk.connect()
    sent = desk.press(Open())
    desk.feed(Reply(sent[0].command_id, False, code="wrong_device"))
    assert desk.notice() == "counter.refused.other" and "The hall server refused it (wrong_device)." in desk.text()


def test_older_retained_state_is_ignored_until_a_reconnect(world: Hall) -> None:
    desk = Desk(world, "1")
    old = [m for m in world.state_messages() if m.part == "counter/1"]
    desk.press(Open())
    world.issue()
    desk.keys("enter")
    desk.feed(old[0])
    assert desk.current() == "A001"
    desk.feed(Link(False))
    desk.feed(Link(True))
    desk.feed(ServerWord(p.ONLINE))
    fresh = Hall(world.config)  # a hall server started on a new, empty log: lower seq
    desk.feed(fresh.state_messages()[0] if fresh.state_messages()[0].part == "counter/1" else
              next(m for m in fresh.state_messages() if m.part == "counter/1"))
    assert desk.current() is None and desk.panel.header.status == p.CLOSED


def test_the_server_going_offline_is_said_and_its_return_too(world: Hall) -> None:
    desk = Desk(world, "1")
    effects = desk.feed(ServerWord(p.OFFLINE))
    assert any(isinstance(e, Alert) and e.code == "server_offline" for e in effects)
    assert "The hall server is not answering." in desk.text()
    effects = desk.feed(ServerWord(p.ONLINE))
    assert any(isinstance(e, Alert) and e.code == "server_online" for e in effects)


# ---------------------------------------------------------------- hall alerts from the devices


@pytest.mark.parametrize(("role", "device", "data", "level", "words"), [
    ("kiosk", "K1", {"status": "online", "printer": {"state": "paper_out"}}, "error",
     "Kiosk “Kiosk at the entrance” is out of paper: change the roll"),
    ("kiosk", "K1", {"status": "online", "printer": {"state": "paper_near_end"}}, "warning",
     "Kiosk “Kiosk at the entrance” is running out of paper: change the roll soon"),
    ("kiosk", "K1", {"status": "online", "printer": {"state": "offline"}}, "error",
     "Kiosk “Kiosk at the entrance”: the printer is not working"),
    ("kiosk", "K9", {"status": "offline"}, "error", "Kiosk “K9” is offline"),
    ("display", "entrance", {"status": "offline"}, "error", "Display “Entrance hall” is offline"),
    ("display", "upstairs", {"status": "stopped"}, "info",
     "Display “Waiting room, 2nd floor” is switched off"),
])
def test_device_status_becomes_a_hall_alert(world: Hall, role: str, device: str, data: dict[str, Any],
                                            level: str, words: str) -> None:
    desk = Desk(world, "1")
    effects = desk.feed(DeviceMessage(role, device, {"v": 1, **data}))
    assert [e.level for e in effects if isinstance(e, Alert)] == [level]
    alert = next(a for a in desk.panel.alerts if a.id == f"{role}:{device}")
    assert alert.level == level and words in desk.text()
    assert desk.feed(DeviceMessage(role, device, {"v": 1, **data})) == []  # said once, not on every repeat
    desk.feed(DeviceMessage(role, device, {"v": 1, "status": "online", "printer": {"state": "online"}}))
    assert f"{role}:{device}" not in desk.alerts()
    desk.feed(DeviceMessage(role, device, {"v": 1, **data}))
    desk.feed(DeviceMessage(role, device, {}))  # the retained status cleared
    assert f"{role}:{device}" not in desk.alerts()


def test_devices_well_and_other_roles_raise_nothing(world: Hall) -> None:
    desk = Desk(world, "1")
    for role, device, data in [("kiosk", "K1", {"status": "online", "printer": {"state": "online"}}),
                               ("kiosk", "K2", {"status": "online", "printer": {"state": "unknown"}}),
                               ("counter", "2", {"status": "offline"}), ("admin", "x", {"status": "offline"})]:
        assert desk.feed(DeviceMessage(role, device, {"v": 1, **data})) == []
    assert desk.alerts() == []


def test_alerts_are_ordered_link_forward_then_devices_by_severity(world: Hall) -> None:
    desk = Desk(world, "4")
    desk.press(Open())
    desk.feed(DeviceMessage("display", "entrance", {"v": 1, "status": "stopped"}))
    desk.feed(DeviceMessage("kiosk", "K1", {"v": 1, "status": "online", "printer": {"state": "paper_out"}}))
    world.command("counter", "1", "open")
    world.issue()
    world.command("counter", "1", "next")
    world.command("counter", "1", "forward", counter="4")
    desk.feed(ServerWord(p.OFFLINE))
    assert desk.alerts() == ["link", "forward:A001", "kiosk:K1", "display:entrance"]


def test_a_reconnect_forgets_devices_until_they_speak_again(world: Hall) -> None:
    desk = Desk(world, "1")
    desk.feed(DeviceMessage("kiosk", "K1", {"v": 1, "status": "offline"}))
    desk.feed(Link(False))
    assert "kiosk:K1" in desk.alerts()
    desk.feed(Link(True))
    assert "kiosk:K1" not in desk.alerts()


def test_a_new_day_clears_forward_alerts(world: Hall) -> None:
    desk = Desk(world, "4")
    desk.press(Open())
    world.command("counter", "1", "open")
    world.issue()
    world.command("counter", "1", "next")
    world.command("counter", "1", "forward", counter="4")
    assert desk.alerts() == ["forward:A001"]
    world.now += timedelta(days=1)
    world.issue()
    assert desk.alerts() == []


# ---------------------------------------------------------------- keys and texts


def test_every_main_key_has_a_button_and_the_buttons_show_their_keys(world: Hall) -> None:
    desk = Desk(world, "1")
    actions = {a.id: a for a in desk.panel.actions}
    assert list(actions) == ["next", "recall", "noshow", "done", "handed_on", "forward", "pause", "open", "close"]
    for action in actions.values():
        key = {"Enter": "enter", "−": "-"}.get(action.key, action.key)
        assert MAIN_KEYS[key] == action.action, action.id


@pytest.mark.parametrize(("key", "codepoint", "modifiers", "name"), [
    (271, None, [], "enter"), (13, "\r", [], "enter"), (257, None, [], "1"), (256, None, [], "0"),
    (265, None, ["numlock"], "9"), (270, None, [], "+"), (269, None, [], "-"), (267, None, [], "/"),
    (266, None, [], "."), (268, None, [], "*"), (27, None, [], "escape"), (8, None, [], "backspace"),
    (49, "1", [], "1"), (110, "n", ["shift"], "n"), (43, "+", [], "+"), (9, None, [], "tab"),
    (110, "n", ["ctrl"], None), (32, " ", [], None), (282, None, [], None),
])
def test_key_codes_from_the_number_pad_and_the_keyboard(key: int, codepoint: str | None, modifiers: list[str],
                                                       name: str | None) -> None:
    assert key_name(key, codepoint, modifiers) == name


@pytest.mark.parametrize("lang", ["sv", "fi", "en", "se"])
def test_every_panel_state_reads_in_each_language(world: Hall, lang: str) -> None:
    front, specialist = Desk(world, "1", lang=lang), Desk(world, "4", lang=lang)
    front.press(Open())
    specialist.press(Open())
    world.issue("general", "se")
    front.keys("enter", "+", "-", "3")
    front.press(ChooseTarget("counter", "4"), SetNote("x"), ConfirmForward())
    front.keys("7")
    front.feed(DeviceMessage("kiosk", "K1", {"v": 1, "status": "online", "printer": {"state": "paper_out"}}))
    texts = front.text() + specialist.text()
    assert "counter." not in texts and "{" not in texts  # no raw ids, no unfilled placeholders
    specialist.keys("9")
    specialist.feed(Link(False))
    assert "counter." not in specialist.text()


def test_language_lines_and_the_timer() -> None:
    assert language_line("fi", "sv") == "Suomi (finska)"
    assert language_line("se", "fi") == "Davvisámegiella (pohjoissaame)"
    assert language_line("en", "en") == "English"
    assert clock(0) == "00:00" and clock(192) == "03:12" and clock(3723) == "1:02:03"


# ---------------------------------------------------------------- whatever happens in whatever order

ACTION_INPUTS = [Key(name) for name in ("enter", "+", "-", "1", "2", "3", "7", "8", "9", "escape", "/", "4")] + [
    Next("taxes"), ChooseTarget("counter", "4"), ChooseTarget("topic", "permits"), ConfirmForward(),
    Pause("break"), ConfirmClose(), SetNote("n")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.sampled_from(ACTION_INPUTS).map(lambda a: ("press", a)),
    st.sampled_from(["answer", "timeout", "drop", "reconnect", "issue", "tick", "other_counter"]).map(
        lambda w: (w, None))), max_size=60))
def test_one_command_at_a_time_and_nothing_sent_offline(hall: HallConfig, steps: list[tuple[str, Any]]) -> None:
    world = Hall(hall)
    world.command("counter", "4", "open")
    desk = Desk(world, "1", auto_reply=False)
    desk.connect()
    outstanding: set[str] = set()
    answered: set[str] = set()
    for what, action in steps:
        before = len(desk.sent())
        if what == "press":
            online = desk.model.online
            desk.press(action)
            new = desk.sent()[before:]
            assert online or not new, "sent while offline"
        elif what == "answer" and desk.unanswered:
            job = desk.unanswered.pop(0)
            desk.answer(job)
            answered.add(job.command_id)
        elif what == "timeout" and desk.unanswered:
            desk.feed(TimedOut(desk.unanswered.pop(0).command_id))
        elif what == "drop":
            desk.feed(Link(False))
        elif what == "reconnect":
            desk.connect()
        elif what == "issue":
            world.issue(["general", "taxes"][len(world.log) % 2])
        elif what == "tick":
            world.now += timedelta(seconds=11)
            desk.feed(Tick())
        elif what == "other_counter":
            world.command("counter", "2", "open")
            world.command("counter", "2", "next")
        for effect in desk.sent()[before:]:
            # a new id only when the previous one was answered; a re-send reuses the outstanding one
            if effect.command_id not in outstanding:
                assert not (outstanding - answered), "a second command while one is unanswered"
                outstanding.add(effect.command_id)
        served = [t for t in world.engine.state.tickets.values() if t.state == p.CALLED and t.counter == "1"]
        assert len(served) <= 1
        panel = desk.panel
        assert panel.header.counter == "Counter 1"
        assert all("counter." not in line for line in panel_lines(panel))


def test_a_visitor_forwarded_before_the_panel_started_says_so(world: Hall) -> None:
    world.command("counter", "1", "open")
    world.command("counter", "4", "open")
    world.issue()
    world.command("counter", "1", "next")
    world.command("counter", "1", "forward", counter="4", note="drawings")
    world.command("counter", "4", "next")
    desk = Desk(world, "4")  # who forwarded them is not in the ticket; that it was forwarded is
    current = desk.panel.current
    assert current is not None and current.forwards == 1 and current.from_counter == ""
    assert "Forwarded before: 1" in desk.text() and "Note: drawings" in desk.text()


# ---------------------------------------------------------------- a panel that runs for months


def reachable(root: object) -> int:
    """How many objects the root holds, directly or not: its data, not the code it calls (functions lead to their
    module's globals, and from there to everything). The hall config it shares counts too, but stays."""
    seen = {id(root)}
    todo = [root]
    while todo:
        item = todo.pop()
        children = [*gc.get_referents(item), *(item if isinstance(item, dict) else ())]  # str keys are not traversed
        for child in children:
            if id(child) not in seen and not isinstance(child, (type, types.ModuleType, types.FunctionType)):
                seen.add(id(child))
                todo.append(child)
    return len(seen)


def test_panels_that_run_for_months_keep_what_they_remember_bounded(world: Hall) -> None:
    """Forward, call, done, visit after visit: what the models hold stays flat; who forwarded whom stays bounded.

    All in one day (a new day clears what a panel remembers of the day before, which would hide a leak)."""
    front, specialist = Desk(world, "1"), Desk(world, "4")
    front.press(Open())
    specialist.press(Open())

    def visits(count: int) -> None:
        for _ in range(count):
            world.now += timedelta(seconds=20)
            number = world.issue("general", "fi")
            assert ops(front.keys("enter")) == ["next"] and front.current() == number
            assert ops(front.press(OpenForward(), ChooseTarget("counter", "4"), ConfirmForward())) == ["forward"]
            assert ops(specialist.keys("enter")) == ["next"] and specialist.current() == number
            current = specialist.panel.current
            assert current is not None and current.from_counter == "Counter 1"
            assert ops(specialist.keys("1")) == ["done"] and specialist.current() is None
            front.effects.clear()
            specialist.effects.clear()

    visits(100)  # warm up
    held = [reachable(front.model), reachable(specialist.model)]
    visits(800)
    assert len(specialist.model.origins) == ORIGINS_KEPT and not specialist.model.incoming
    grown = [reachable(front.model) - held[0], reachable(specialist.model) - held[1]]
    assert max(grown) < 100, f"the panels' models hold {grown} more objects after 800 more visits"  # a leak: 800+
