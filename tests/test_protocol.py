"""Protocol v1: topic names, command validation and error codes, without a broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from broker import protocol as p
from broker.protocol import Err, ParsedTopic, ProtocolError, Topics

HALL = "kvarnby"
LIMIT = 65536
T = Topics(HALL)


def raw(payload: Any) -> bytes:
    return json.dumps(payload).encode("utf-8")


def parse(payload: Any, role: str = "counter", device: str = "1", *, max_bytes: int = LIMIT) -> p.Command:
    data = payload if isinstance(payload, bytes | bytearray) else raw(payload)
    return p.parse_command(data, role, device, hall=HALL, max_bytes=max_bytes)


def refused(payload: Any, role: str = "counter", device: str = "1", *, max_bytes: int = LIMIT) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(payload, role, device, max_bytes=max_bytes)
    return info.value


def cmd(op: str, command_id: str = "c1", **fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": command_id, "op": op, **fields}


# ---------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (T.cmd("kiosk", "K1"), ParsedTopic("cmd", role="kiosk", device="K1")),
        (T.cmd("counter", "1"), ParsedTopic("cmd", role="counter", device="1")),
        (T.cmd("admin", "cli-01.x_y"), ParsedTopic("cmd", role="admin", device="cli-01.x_y")),
        (T.reply("counter", "6"), ParsedTopic("reply", role="counter", device="6")),
        (T.event(p.TICKET_CALLED), ParsedTopic("event", name="ticket.called")),
        (T.event(p.DAY_STARTED), ParsedTopic("event", name="day.started")),
        (T.state_hall(), ParsedTopic("state", name="hall")),
        (T.state_calls(), ParsedTopic("state", name="calls")),
        (T.state_queue("general"), ParsedTopic("state", name="queue/general")),
        (T.state_counter("3"), ParsedTopic("state", name="counter/3")),
        (T.device("display", "entrance"), ParsedTopic("device", role="display", device="entrance")),
        (T.server(), ParsedTopic("server")),
    ],
)
def test_built_topic_parses_back_to_its_parts(topic: str, expected: ParsedTopic) -> None:
    assert topic.startswith("vuoro/kvarnby/")
    assert T.parse(topic) == expected


def test_topic_strings_follow_the_design() -> None:
    assert T.cmd("kiosk", "K1") == "vuoro/kvarnby/cmd/kiosk/K1"
    assert T.reply("counter", "2") == "vuoro/kvarnby/reply/counter/2"
    assert T.event("ticket.issued") == "vuoro/kvarnby/event/ticket.issued"
    assert T.state_queue("taxes") == "vuoro/kvarnby/state/queue/taxes"
    assert T.device("kiosk", "K1") == "vuoro/kvarnby/device/kiosk/K1"
    assert T.server() == "vuoro/kvarnby/server"
    assert T.all_commands() == "vuoro/kvarnby/cmd/#"
    assert T.all_events() == "vuoro/kvarnby/event/#"
    assert T.all_state() == "vuoro/kvarnby/state/#"
    assert T.all_devices() == "vuoro/kvarnby/device/#"


@pytest.mark.parametrize(
    ("topic", "words"),
    [
        ("vuoro/otherhall/cmd/kiosk/K1", "not under"),
        ("vuoro/kvarnbyx/cmd/kiosk/K1", "not under"),
        ("elsewhere/kvarnby/cmd/kiosk/K1", "not under"),
        ("vuoro/kvarnby/cmd/display/D1", "unknown role"),
        ("vuoro/kvarnby/cmd/hacker/1", "unknown role"),
        ("vuoro/kvarnby/reply/printer/1", "unknown role"),
        ("vuoro/kvarnby/cmd/kiosk/bad device", "invalid device id"),
        ("vuoro/kvarnby/cmd/kiosk/-K1", "invalid device id"),
        ("vuoro/kvarnby/cmd/kiosk/" + "k" * 65, "invalid device id"),
        ("vuoro/kvarnby/cmd/kiosk/", "invalid device id"),
        ("vuoro/kvarnby/cmd/kiosk/K1/extra", "not part of protocol"),
        ("vuoro/kvarnby/cmd/kiosk", "not part of protocol"),
        ("vuoro/kvarnby/event/ticket.exploded", "not part of protocol"),
        ("vuoro/kvarnby/event/ticket.called/x", "not part of protocol"),
        ("vuoro/kvarnby/state/queue/general/x", "not part of protocol"),
        ("vuoro/kvarnby/device/counter/1/x", "not part of protocol"),
        ("vuoro/kvarnby/device/printer/1", "not part of protocol"),
        ("vuoro/kvarnby/server/x", "not part of protocol"),
        ("vuoro/kvarnby/", "not part of protocol"),
    ],
)
def test_foreign_or_malformed_topic_is_refused_as_bad_topic(topic: str, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        T.parse(topic)
    assert info.value.code == Err.BAD_TOPIC
    assert words in info.value.message


@pytest.mark.parametrize(
    ("role", "device"),
    [("display", "D1"), ("nobody", "1"), ("kiosk", "bad/device"), ("kiosk", "+"), ("counter", "")],
)
def test_building_a_command_topic_refuses_bad_role_or_device(role: str, device: str) -> None:
    with pytest.raises(ValueError):
        T.cmd(role, device)
    with pytest.raises(ValueError):
        T.reply(role, device)


def test_building_a_device_topic_refuses_bad_role_or_device() -> None:
    with pytest.raises(ValueError):
        T.device("printer", "P1")
    with pytest.raises(ValueError):
        T.device("kiosk", "K 1")


@pytest.mark.parametrize("hall", ["", "Kvarnby", "a/b", "a+", "x" * 33, "-x"])
def test_invalid_hall_id_is_refused(hall: str) -> None:
    with pytest.raises(ValueError):
        Topics(hall)


# ---------------------------------------------------------------- valid commands


def test_valid_issue_is_parsed_with_its_fields() -> None:
    command = parse(cmd("issue", "abc", topic="general", lang="fi", priority=True, extra="ignored"), "kiosk", "K1")
    assert command == p.Command(id="abc", role="kiosk", device="K1", op="issue",
                                args={"topic": "general", "lang": "fi", "priority": True})


def test_null_optional_fields_are_left_out() -> None:
    command = parse(cmd("issue", topic="general", lang=None, priority=None), "kiosk", "K1")
    assert command.args == {"topic": "general"}


@pytest.mark.parametrize(
    ("op", "fields", "args"),
    [
        ("next", {}, {}),
        ("next", {"topic": "taxes"}, {"topic": "taxes"}),
        ("recall", {}, {}),
        ("noshow", {}, {}),
        ("done", {"outcome": "resolved"}, {"outcome": "resolved"}),
        ("done", {"outcome": "handed_on", "matters": ["general", "taxes"]},
         {"outcome": "handed_on", "matters": ["general", "taxes"]}),
        ("forward", {"topic": "permits", "note": "drawings"}, {"topic": "permits", "note": "drawings"}),
        ("forward", {"counter": "4"}, {"counter": "4"}),
        ("pause", {"reason": "lunch"}, {"reason": "lunch"}),
        ("open", {}, {}),
        ("close", {}, {}),
        ("open", {"counter": "1"}, {}),  # naming itself is fine
    ],
)
def test_every_counter_op_is_accepted(op: str, fields: dict[str, Any], args: dict[str, Any]) -> None:
    command = parse(cmd(op, **fields))
    assert (command.op, command.role, command.device, dict(command.args)) == (op, "counter", "1", args)


@pytest.mark.parametrize("op", ["ping", "state"])
def test_admin_ops_are_accepted(op: str) -> None:
    assert parse(cmd(op), "admin", "cli").op == op


def test_same_hall_in_payload_is_accepted() -> None:
    assert parse(cmd("issue", topic="general", hall=HALL), "kiosk", "K1").op == "issue"


def test_command_payload_round_trips_through_parse() -> None:
    payload = p.command_payload("forward", "id-7", topic="taxes", counter=None, note="n")
    assert payload == {"v": 1, "id": "id-7", "op": "forward", "topic": "taxes", "note": "n"}
    assert parse(p.encode(payload)).args == {"topic": "taxes", "note": "n"}


def test_new_command_ids_are_unique_and_fit_the_limit() -> None:
    ids = {p.new_command_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(0 < len(i) <= p.COMMAND_ID_MAX for i in ids)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b'{"v":1,"id":"a1","op":"issue",', "not JSON"),
        (b"", "not JSON"),
        (b"hello", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1,2,3]", "JSON object, got list"),
        (b'"issue"', "JSON object, got str"),
        (b"null", "JSON object, got NoneType"),
    ],
)
def test_unreadable_payload_is_bad_json_without_a_command_id(payload: bytes, words: str) -> None:
    error = refused(payload, "kiosk", "K1")
    assert error.code == Err.BAD_JSON
    assert words in error.message
    assert error.command_id is None


@pytest.mark.parametrize(
    ("payload", "command_id"),
    [
        ({"id": "a3", "op": "issue", "topic": "general"}, "a3"),
        ({"v": 2, "id": "a2", "op": "issue", "topic": "general"}, "a2"),
        ({"v": True, "id": "a4", "op": "issue", "topic": "general"}, "a4"),
        ({"v": "1", "id": "a5", "op": "issue", "topic": "general"}, "a5"),
        ({"v": 0, "id": 17, "op": "issue", "topic": "general"}, None),
    ],
)
def test_wrong_or_missing_version_is_bad_version_carrying_the_id(payload: dict[str, Any],
                                                                 command_id: str | None) -> None:
    error = refused(payload, "kiosk", "K1")
    assert error.code == Err.BAD_VERSION
    assert error.command_id == command_id
    assert "v1" in error.message


@pytest.mark.parametrize(
    "payload",
    [
        {"v": 1, "op": "issue", "topic": "general"},
        {"v": 1, "id": "", "op": "issue", "topic": "general"},
        {"v": 1, "id": 42, "op": "issue", "topic": "general"},
        {"v": 1, "id": "x" * (p.COMMAND_ID_MAX + 1), "op": "issue", "topic": "general"},
    ],
)
def test_missing_or_unusable_command_id_is_bad_request(payload: dict[str, Any]) -> None:
    error = refused(payload, "kiosk", "K1")
    assert error.code == Err.BAD_REQUEST
    assert error.command_id is None


def test_command_id_of_the_maximum_length_is_accepted() -> None:
    assert parse(cmd("next", "x" * p.COMMAND_ID_MAX)).id == "x" * p.COMMAND_ID_MAX


@pytest.mark.parametrize(
    ("role", "op"),
    [
        ("kiosk", "next"),
        ("kiosk", "explode"),
        ("kiosk", None),
        ("kiosk", 3),
        ("counter", "issue"),
        ("counter", "ping"),
        ("admin", "issue"),
        ("admin", "next"),
        ("display", "issue"),  # displays send no commands at all
    ],
)
def test_op_outside_the_role_is_unknown_op(role: str, op: Any) -> None:
    error = refused(cmd(op, "u1"), role, "dev")
    assert error.code == Err.UNKNOWN_OP
    assert error.command_id == "u1"


def test_unknown_op_lists_the_ops_of_the_role() -> None:
    error = refused(cmd("issue", "u2"), "counter", "1")
    assert "next" in error.message and "forward" in error.message


@pytest.mark.parametrize("op", ["next", "done", "recall", "pause", "open", "close"])
def test_counter_payload_naming_another_counter_is_wrong_device(op: str) -> None:
    error = refused(cmd(op, "w1", counter="2", outcome="resolved"), "counter", "1")
    assert error.code == Err.WRONG_DEVICE
    assert error.command_id == "w1"


def test_forward_may_name_another_counter() -> None:
    assert parse(cmd("forward", counter="2"), "counter", "1").args == {"counter": "2"}


def test_payload_of_another_hall_is_wrong_hall() -> None:
    error = refused(cmd("issue", "h1", topic="general", hall="otherhall"), "kiosk", "K1")
    assert error.code == Err.WRONG_HALL
    assert error.command_id == "h1"
    assert "otherhall" in error.message


@pytest.mark.parametrize(
    ("role", "payload", "name"),
    [
        ("kiosk", cmd("issue", topic=7), "topic"),
        ("kiosk", cmd("issue", topic="t" * 33), "topic"),
        ("kiosk", cmd("issue", topic="general", priority="yes"), "priority"),
        ("kiosk", cmd("issue", topic="general", priority=1), "priority"),
        ("kiosk", cmd("issue", topic="general", lang=["sv"]), "lang"),
        ("kiosk", cmd("issue"), "topic"),
        ("counter", cmd("next", topic=5), "topic"),
        ("counter", cmd("done"), "outcome"),
        ("counter", cmd("done", outcome="bogus"), "outcome"),
        ("counter", cmd("done", outcome=True), "outcome"),
        ("counter", cmd("done", outcome="resolved", matters="general"), "matters"),
        ("counter", cmd("done", outcome="resolved", matters=[1, 2]), "matters"),
        ("counter", cmd("done", outcome="resolved", matters=["general"] * 21), "matters"),
        ("counter", cmd("forward", topic="taxes", counter="2"), "exactly one"),
        ("counter", cmd("forward"), "exactly one"),
        ("counter", cmd("forward", note="x"), "exactly one"),
        ("counter", cmd("forward", topic="taxes", note="n" * (p.NOTE_MAX + 1)), "note"),
        ("counter", cmd("forward", counter=2), "counter"),
        ("counter", cmd("pause", reason=12), "reason"),
        ("counter", cmd("pause", reason="r" * (p.REASON_MAX + 1)), "reason"),
    ],
)
def test_field_of_the_wrong_kind_is_bad_field_naming_it(role: str, payload: dict[str, Any], name: str) -> None:
    error = refused(payload, role, "1")
    assert error.code == Err.BAD_FIELD
    assert error.command_id == "c1"
    assert name in error.message


@pytest.mark.parametrize(
    ("role", "payload", "name"),
    [
        ("kiosk", cmd("issue", topic=None), "topic"),
        ("counter", cmd("done", outcome=None), "outcome"),
    ],
)
def test_required_field_given_as_null_is_bad_field(role: str, payload: dict[str, Any], name: str) -> None:
    """A null required field must not pass: the engine reads it unconditionally and would crash mid-batch."""
    error = refused(payload, role, "1")
    assert error.code == Err.BAD_FIELD
    assert name in error.message


def test_note_of_the_maximum_length_is_accepted() -> None:
    assert len(parse(cmd("forward", topic="taxes", note="n" * p.NOTE_MAX)).args["note"]) == p.NOTE_MAX


def test_payload_over_the_limit_is_too_large_before_any_parsing() -> None:
    """1 MB of garbage says too_large, not bad_json: the size is checked first so a flood costs nothing."""
    error = refused(b"\xff" * (1 << 20), "kiosk", "K1")
    assert error.code == Err.TOO_LARGE
    assert str(1 << 20) in error.message and str(LIMIT) in error.message


def test_valid_command_padded_past_the_limit_is_too_large() -> None:
    payload = raw(cmd("issue", topic="general", pad="x" * LIMIT))
    assert refused(payload, "kiosk", "K1").code == Err.TOO_LARGE


def test_payload_exactly_at_the_limit_is_accepted() -> None:
    base = raw(cmd("issue", topic="general", pad=""))
    payload = raw(cmd("issue", topic="general", pad="x" * (1024 - len(base))))
    assert len(payload) == 1024
    assert parse(payload, "kiosk", "K1", max_bytes=1024).op == "issue"


# ---------------------------------------------------------------- replies, events, numbers


def test_reply_shapes() -> None:
    assert p.reply_ok("i1", {"x": 1}) == {"v": 1, "id": "i1", "ok": True, "result": {"x": 1}}
    assert p.reply_error("i2", Err.HALL_CLOSED, "closed", {"next_open": "t"}) == {
        "v": 1, "id": "i2", "ok": False, "error": {"code": "hall_closed", "message": "closed", "next_open": "t"}}
    assert p.reply_error(None, Err.BAD_JSON, "x")["error"] == {"code": "bad_json", "message": "x"}


def test_event_payload_round_trip() -> None:
    event = p.Event(seq=5, at="2026-11-30T09:00:00.000+02:00", type=p.TICKET_CALLED,
                    data={"ticket": {"number": "A001"}, "counter": "1", "recall": 0})
    payload = json.loads(p.encode(event.payload()))
    assert payload["v"] == 1 and payload["seq"] == 5 and payload["type"] == "ticket.called"
    assert p.Event.from_payload(payload) == event


def test_encode_keeps_non_ascii_readable() -> None:
    assert p.encode({"name": "Kvarnby stad · Kundtjänst"}) == '{"name":"Kvarnby stad · Kundtjänst"}'.encode()


@pytest.mark.parametrize(("letter", "n", "number"), [("A", 1, "A001"), ("B", 42, "B042"), ("F", 999, "F999"),
                                                     ("C", 100, "C100")])
def test_format_number_is_letter_and_three_digits(letter: str, n: int, number: str) -> None:
    assert p.format_number(letter, n) == number


def test_spoken_number_spells_digit_by_digit() -> None:
    assert p.spoken_number("B042") == "B 0 4 2"


def test_error_codes_are_distinct_short_words() -> None:
    codes = [v for k, v in vars(Err).items() if k.isupper()]
    assert len(codes) == len(set(codes))
    assert all(c.replace("_", "").isalpha() and c.islower() for c in codes)


# ---------------------------------------------------------------- the decoder's limits, at their edges

def _ping(extra: str) -> bytes:
    return ('{"v":1,"id":"e1","op":"ping","x":' + extra + "}").encode()


def _decode(raw: bytes) -> dict[str, Any]:
    return p.decode_object(raw, max_bytes=65536)


def test_nesting_is_allowed_to_the_limit_and_refused_past_it() -> None:
    inner = p.JSON_DEPTH_MAX - 1  # the object itself is the first level
    assert _decode(_ping("[" * inner + "]" * inner))["id"] == "e1"
    with pytest.raises(ProtocolError, match=f"nested deeper than {p.JSON_DEPTH_MAX}") as deep:
        _decode(_ping("[" * (inner + 1) + "]" * (inner + 1)))
    assert deep.value.code == Err.BAD_JSON and deep.value.command_id == "e1"


def test_numbers_are_allowed_to_their_limits_and_refused_past_them() -> None:
    most = "9" * p.INT_DIGITS_MAX
    assert _decode(_ping("-" + most))["x"] == -int(most)
    assert _decode(_ping(repr(1.7976931348623157e308)))["x"] == 1.7976931348623157e308
    for refused in (most + "9", "1e309", "-1e309", "NaN", "Infinity", "-Infinity", "0." + "1" * p.FLOAT_CHARS_MAX):
        with pytest.raises(ProtocolError) as exc:
            _decode(_ping(refused))
        assert exc.value.code == Err.BAD_JSON, refused


def test_a_lone_surrogate_is_refused_but_an_escaped_pair_is_text() -> None:
    assert _decode(_ping('"\\ud83d\\ude00"'))["x"] == "\U0001F600"
    with pytest.raises(ProtocolError) as lone:
        _decode(_ping('"\\ud83d"'))
    assert lone.value.code == Err.BAD_FIELD and '"x"' in lone.value.message and lone.value.command_id == "e1"


def test_storage_error_codes_exist_and_are_words() -> None:
    assert (Err.STORAGE_FULL, Err.STORAGE_FAILED, Err.INTERNAL) == ("storage_full", "storage_failed", "internal")


def test_refusals_quote_what_was_sent_briefly() -> None:
    with pytest.raises(ProtocolError) as refused:
        p.parse_command(('{"v":1,"id":"q","op":"' + "z" * 5000 + '"}').encode(), "kiosk", "K1", hall="kvarnby",
                        max_bytes=65536)
    assert refused.value.code == Err.UNKNOWN_OP and len(refused.value.message) < 300
