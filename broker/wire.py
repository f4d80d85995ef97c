"""The payload format under the protocol (broker/protocol.py): UTF-8 JSON objects with "v": 1, the limits
every payload is held to before anything reads it, and the error codes and error a refusal carries.

Every byte from the network is hostile: `decode_object` refuses what is too large, too deep, not UTF-8,
not JSON or not Unicode text, so whatever it accepts can be handled and encoded again. protocol.py
re-exports all of this; import it from there. Imports nothing of the project.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

VERSION = 1
COMMAND_ID_MAX = 64

# Limits of what decode_object accepts, besides the hall's byte limit. Our payloads are flat (a command is one
# level, state a few), so a deep nest or a number no hall ever counts to is an attack or a bug, and is refused
# before it costs anything: Python's own limits (recursion, 4,300-digit ints) would raise where no one catches.
JSON_DEPTH_MAX = 16
INT_DIGITS_MAX = 19  # a signed 64-bit integer
FLOAT_CHARS_MAX = 40  # repr() of any finite double fits in 24


class Err:
    """Error codes: short stable words that clients may switch on. Never rename one."""

    BAD_JSON = "bad_json"
    BAD_VERSION = "bad_version"
    BAD_REQUEST = "bad_request"
    BAD_FIELD = "bad_field"
    BAD_TOPIC = "bad_topic"
    TOO_LARGE = "too_large"
    UNKNOWN_OP = "unknown_op"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_COUNTER = "unknown_counter"
    UNKNOWN_LANG = "unknown_lang"
    WRONG_DEVICE = "wrong_device"
    WRONG_HALL = "wrong_hall"
    NOT_YOUR_TOPIC = "not_your_topic"
    COUNTER_CLOSED = "counter_closed"
    QUEUE_EMPTY = "queue_empty"
    NO_TICKET = "no_ticket"
    HALL_CLOSED = "hall_closed"
    PRIORITY_NOT_ALLOWED = "priority_not_allowed"
    NUMBERS_EXHAUSTED = "numbers_exhausted"
    TOO_FEW_RECALLS = "too_few_recalls"
    TIMEOUT = "timeout"
    INTERNAL = "internal"
    STORAGE_FULL = "storage_full"  # the command could not be kept: the server's disk is full; nothing was done
    STORAGE_FAILED = "storage_failed"  # the command could not be kept: the database is read-only or failing
    UNKNOWN_TOKEN = "unknown_token"  # feedback for a token that is no ticket of today's
    ALREADY_RATED = "already_rated"  # feedback is given once per ticket
    VISIT_NOT_DONE = "visit_not_done"  # feedback before the visit ended done (or for a no-show, an expiry)
    RATE_LIMITED = "rate_limited"  # asked too often (replay pages): try again after `retry_after_s`


class ProtocolError(Exception):
    """A message the server refuses; becomes an error reply when the reply topic is known."""

    def __init__(self, code: str, message: str, *, command_id: str | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.command_id = code, message, command_id
        self.details = dict(details or {})


# ---------------------------------------------------------------- payloads

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def encode(payload: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON. A lone surrogate cannot be UTF-8: decode_object refuses them, and should one come from
    elsewhere, the payload goes out as ASCII JSON (\\udXXX escapes) rather than fail where no one answers."""
    text = _ENCODER.encode(payload)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(payload).encode("ascii")


class _Refused(Exception):
    """Raised inside the JSON parser's hooks: the payload breaks a limit (message says which)."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > INT_DIGITS_MAX:
        raise _Refused(f"a number of {len(text.lstrip('-'))} digits; the limit is {INT_DIGITS_MAX}")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text) if len(text) <= FLOAT_CHARS_MAX else math.inf
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:FLOAT_CHARS_MAX]}{'...' if len(text) > FLOAT_CHARS_MAX else ''} "
                       "is too large or too long")
    return value


def _parse_constant(text: str) -> Any:
    raise _Refused(f"{text} is not a JSON number")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


def _clean_text(value: str) -> bool:
    return _SURROGATE_RE.search(value) is None


def _limit_problem(value: Any, depth: int) -> tuple[str, str] | None:
    """(error code, what is wrong) when a decoded value breaks a limit (depth, lone surrogates), else None.
    No recursion: the depth is what is being checked."""
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            if not _clean_text(item):
                return Err.BAD_FIELD, "holds a lone surrogate (\\ud800-\\udfff): not Unicode text"
        elif isinstance(item, (dict, list)):
            if level > JSON_DEPTH_MAX:
                return Err.BAD_JSON, f"is nested deeper than {JSON_DEPTH_MAX} levels"
            if isinstance(item, dict):
                for key, inner in item.items():
                    if not _clean_text(key):
                        return Err.BAD_FIELD, "has a key with a lone surrogate (\\ud800-\\udfff): not Unicode text"
                    stack.append((inner, level + 1))
            else:
                stack.extend((inner, level + 1) for inner in item)
    return None


def readable_id(data: Mapping[str, Any]) -> str | None:
    """The command id of a decoded payload when it can be echoed in a reply, else None."""
    command_id = data.get("id")
    if isinstance(command_id, str) and 0 < len(command_id) <= COMMAND_ID_MAX and _clean_text(command_id):
        return command_id
    return None


def decode_object(raw: bytes | bytearray, *, max_bytes: int) -> dict[str, Any]:
    """JSON object of version 1, or ProtocolError. The size check comes first: no parsing a flood.

    Every limit is checked here, so that whatever is accepted can be handled and encoded again: bad_json for
    what cannot be read at all (not UTF-8, not JSON, too deep, a number out of range), bad_field naming the
    field for a string that is not Unicode text (a lone surrogate), with the command id when it can be read.
    """
    if len(raw) > max_bytes:
        raise ProtocolError(Err.TOO_LARGE, f"payload of {len(raw)} bytes; the limit is {max_bytes}")
    try:
        data = _DECODER.decode(bytes(raw).decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError(Err.BAD_JSON, "payload is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(Err.BAD_JSON, f"payload is not JSON: {exc.msg} at {exc.pos}") from None
    except _Refused as exc:
        raise ProtocolError(Err.BAD_JSON, f"payload refused: {exc}") from None
    except RecursionError:  # a second line: the depth limit below is far lower than Python's
        raise ProtocolError(Err.BAD_JSON, f"payload is nested deeper than {JSON_DEPTH_MAX} levels") from None
    if not isinstance(data, dict):
        raise ProtocolError(Err.BAD_JSON, f"payload must be a JSON object, got {type(data).__name__}")
    command_id = readable_id(data)
    for key, value in data.items():
        if not _clean_text(key):
            name = key.encode("utf-8", "backslashreplace").decode("ascii")
            raise ProtocolError(Err.BAD_FIELD, f'"{name}" is a key that is not Unicode text (a lone surrogate)',
                                command_id=command_id)
        problem = _limit_problem(value, 2)  # the object itself is level 1
        if problem:
            raise ProtocolError(problem[0], f'"{key}" {problem[1]}', command_id=command_id)
    version = data.get("v")
    if type(version) is not int or version != VERSION:
        raise ProtocolError(Err.BAD_VERSION, f"protocol version {shown(version)} is not supported; this is v{VERSION}",
                            command_id=command_id)
    return data


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it: short, whatever a device sent."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
