"""The hall server's clock, and what its thread carries through one batch of commands: the answers, the events
and the records to commit as one transaction, how far one message's handling got, and the server's counters.

Plain values, and the answer to a command the disk refused. May import protocol and store only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker import protocol as p
from broker.store import FAILED, FULL, CommandRecord, StorageFault


class Clock:
    """Wall time in the hall's zone; tests pass their own object with a `now()` method."""

    def __init__(self, tz: Any) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)


@dataclass
class Stats:
    commands: int = 0
    refused: int = 0
    duplicates: int = 0
    malformed: int = 0
    batches: int = 0
    events: int = 0
    internal: int = 0  # messages whose handling hit a bug of ours (answered `internal`)
    storage_refused: int = 0  # commands answered storage_full/storage_failed


@dataclass(frozen=True)
class Answer:
    """One reply of a batch. `key` names the engine-handled command whose reply stands only if the batch is
    kept; a refused batch answers those with its storage error instead."""

    topic: str
    reply: bytes
    key: tuple[str, str, str] | None = None
    command_id: str | None = None


@dataclass
class Batch:
    """What one batch of commands did, to be committed as one transaction."""

    events: list[p.Event] = field(default_factory=list)
    records: list[CommandRecord] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    pending: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # replies kept once committed
    reread: bool = False  # a bug left the engine holding changes that are not in `events`: read it from the log


@dataclass
class Handling:
    """How far the handling of one message got: what its answer needs if a bug of ours stops it midway."""

    seq_before: int
    reply_topic: str | None = None
    command: p.Command | None = None
    applied: bool = False  # the engine made events of it


def storage_code(fault: StorageFault) -> str:
    return p.Err.STORAGE_FULL if fault.kind == FULL else p.Err.STORAGE_FAILED


def storage_reply(command_id: str | None, fault: StorageFault | None) -> bytes:
    """The answer to a command that could not be kept: the disk is full, or the log cannot be written or read."""
    fault = fault or StorageFault(FAILED, "the hall log cannot be read")
    what = "the hall server's disk is full" if fault.kind == FULL else "the hall server cannot write its log"
    return p.encode(p.reply_error(command_id, storage_code(fault),
                                  f"{what}, so this command was not kept and nothing was done; try again "
                                  f"later ({fault.message})"))
