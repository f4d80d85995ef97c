"""The engine's part of the visitor's web page: a ticket's token, and feedback once its visit is done."""

from __future__ import annotations

import pytest

from broker import protocol as p
from broker.config import HallConfig
from broker.engine import Engine
from broker.hallstate import HallState
from tests.test_engine import Desk, open_counters

TOKEN = "tok-" + "x" * 18


@pytest.fixture
def desk(hall: HallConfig) -> Desk:
    return Desk(hall)


def _served(desk: Desk, token: str = TOKEN, outcome: str = "resolved") -> str:
    open_counters(desk, "1")
    number = desk.issue("general", token=token)["number"]
    assert desk.call("1") == number
    desk.at("1", "done", outcome=outcome)
    return number


def test_the_token_travels_in_the_issue_event_and_reply_but_in_no_other_message(desk: Desk) -> None:
    ticket = desk.issue("general", token=TOKEN)
    assert ticket["token"] == TOKEN
    issued = [e for e in desk.events if e.type == p.TICKET_ISSUED][-1]
    assert issued.data["ticket"]["token"] == TOKEN
    open_counters(desk, "1")
    called = desk.at("1", "next")
    assert "token" not in called.reply["result"]["ticket"]
    assert all("token" not in str(e.payload()) for e in called.events)
    assert TOKEN not in str(desk.engine.snapshot(desk.clock.now()))  # retained state: displays read it


def test_a_replayed_log_knows_the_tokens(desk: Desk, hall: HallConfig) -> None:
    number = _served(desk)
    again = HallState(hall)
    for event in desk.events:
        again.apply(event)
    assert again.tokens == {TOKEN: number}
    engine = Engine(hall, state=again)
    outcome = engine.handle(p.Command("f1", "web", "w1", "feedback", {"token": TOKEN, "score": 4}),
                            desk.clock.now())
    assert outcome.ok, outcome.reply


def test_feedback_after_the_visit_is_an_event_with_topic_counter_score_and_comment(desk: Desk) -> None:
    number = _served(desk)
    outcome = desk.send("web", "w1", "feedback", token=TOKEN, score=5, comment="  Quick and kind  ")
    assert outcome.ok, outcome.reply
    (event,) = outcome.events
    assert event.type == p.TICKET_FEEDBACK
    assert event.data["ticket"]["number"] == number and event.data["ticket"]["rated"] is True
    assert (event.data["topic"], event.data["counter"], event.data["score"], event.data["comment"]) == \
        ("general", "1", 5, "Quick and kind")


def test_feedback_is_refused_before_the_visit_is_done_twice_and_for_unknown_tokens(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue("general", token=TOKEN)
    assert desk.refuse("web", "w1", "feedback", p.Err.VISIT_NOT_DONE, token=TOKEN, score=3)["state"] == p.WAITING
    desk.call("1")
    desk.refuse("web", "w1", "feedback", p.Err.VISIT_NOT_DONE, token=TOKEN, score=3)
    desk.at("1", "done", outcome="resolved")
    desk.refuse("web", "w1", "feedback", p.Err.UNKNOWN_TOKEN, token="not-a-token", score=3)
    assert desk.send("web", "w1", "feedback", token=TOKEN, score=1).ok
    desk.refuse("web", "w1", "feedback", p.Err.ALREADY_RATED, token=TOKEN, score=5)


def test_a_no_show_cannot_be_rated(desk: Desk) -> None:
    open_counters(desk, "1")
    desk.issue("general", token=TOKEN)
    desk.call("1")
    for _ in range(desk.hall.rules.noshow_after_recalls):
        desk.at("1", "recall")
    desk.at("1", "noshow")
    desk.refuse("web", "w1", "feedback", p.Err.VISIT_NOT_DONE, token=TOKEN, score=2)


def test_yesterdays_token_is_unknown_today(desk: Desk) -> None:
    _served(desk)
    desk.clock.advance(days=1)
    outcome = desk.send("web", "w1", "feedback", token=TOKEN, score=4)
    assert outcome.reply["error"]["code"] == p.Err.UNKNOWN_TOKEN


def test_replay_is_not_the_engines_to_answer(desk: Desk) -> None:
    outcome = desk.send("web", "w1", "replay", since=0)
    assert outcome.reply["error"]["code"] == p.Err.UNKNOWN_OP


@pytest.mark.parametrize(("fields", "code"), [
    ({"token": TOKEN, "score": 6}, p.Err.BAD_FIELD),
    ({"token": TOKEN, "score": 0}, p.Err.BAD_FIELD),
    ({"token": TOKEN, "score": True}, p.Err.BAD_FIELD),
    ({"token": TOKEN, "score": 4.5}, p.Err.BAD_FIELD),
    ({"token": TOKEN, "score": 4, "comment": "x" * (p.COMMENT_MAX + 1)}, p.Err.BAD_FIELD),
    ({"token": "t" * (p.TOKEN_MAX + 1), "score": 4}, p.Err.BAD_FIELD),
    ({"score": 4}, p.Err.BAD_FIELD),
])
def test_feedback_fields_are_checked_at_decode(fields: dict, code: str) -> None:
    raw = p.encode(p.command_payload("feedback", **fields))
    with pytest.raises(p.ProtocolError) as caught:
        p.parse_command(raw, "web", "w1", hall="demo", max_bytes=65536)
    assert caught.value.code == code


def test_a_lone_surrogate_in_a_comment_is_refused_at_decode() -> None:
    raw = b'{"v":1,"id":"a","op":"feedback","token":"t","score":3,"comment":"\\ud800"}'
    with pytest.raises(p.ProtocolError) as caught:
        p.parse_command(raw, "web", "w1", hall="demo", max_bytes=65536)
    assert caught.value.code == p.Err.BAD_FIELD


def test_the_web_may_not_issue_or_call() -> None:
    for op in ("issue", "next"):
        with pytest.raises(p.ProtocolError) as caught:
            p.parse_command(p.encode(p.command_payload(op, topic="general")), "web", "w1", hall="demo",
                            max_bytes=65536)
        assert caught.value.code == p.Err.UNKNOWN_OP
