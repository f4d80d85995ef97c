"""The counter panel model's vocabulary: what it is fed, what it asks for, and the Panel it shows.

Kept apart from the state machine (counter/model.py) so that the UI author and the tests read the
whole contract on one page. Everything is a frozen dataclass of plain values: a Panel can be compared
section by section (the window redraws only the sections that changed), logged, or checked in a test
without a window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker import protocol as p
from ui.messages import Msg as Msg  # the one message type of every pure model (ui/messages.py)
from ui.messages import Text as Text
from ui.messages import msg as msg

# ---------------------------------------------------------------- texts

# The languages each counter.po names in its own words ("Talar finska"): the visitor's language on the panel comes
# from the staff's catalogue, not from Babel's CLDR data (~5 MiB more in every panel for six words).
LANGUAGES_NAMED = ("en", "sv", "fi", "se", "de", "ar")
# Every message id of counter.po: the i18n tests check each catalogue against it.
MESSAGE_IDS = frozenset({
    *(f"counter.link.{x}" for x in ("online", "offline", "no_server", "connecting")),
    *(f"counter.status.{x}" for x in ("open", "paused", "closed")),
    "counter.served_today",
    *(f"counter.current.{x}" for x in ("title", "none", "lang", "priority", "recalls", "forwarded_from", "forwards",
                                       "origin", "note", "stale", "serving")),
    *(f"counter.queue.{x}" for x in ("title", "forwarded", "waiting", "waited", "longest", "priority", "call", "none")),
    *(f"counter.action.{x}" for x in ("next", "recall", "noshow", "done", "handed_on", "forward", "pause", "open",
                                      "close")),
    "counter.sending",
    *(f"counter.ok.{x}" for x in ("next", "recall", "noshow", "done", "handed_on", "forward_counter",
                                  "forward_topic", "pause", "open", "close")),
    *(f"counter.refused.{x}" for x in ("offline", "busy", "not_synced", "already_open", "already_closed",
                                       "choose_target", "visitor_changed", "counter_closed", "target_closed",
                                       "queue_empty", "no_ticket", "too_few_recalls", "not_your_topic", "other")),
    *(f"counter.alert.{x}" for x in ("offline", "no_server", "unconfirmed", "forwarded", "forwarded_note",
                                     "kiosk_offline", "kiosk_stopped", "display_offline", "display_stopped",
                                     "printer_paper_out", "printer_paper_near_end", "printer_offline")),
    *(f"counter.forward.{x}" for x in ("title", "to_counter", "to_topic", "note_hint", "confirm")),
    "counter.pause.title", "counter.pause.body",
    *(f"counter.reason.{x}" for x in ("break", "lunch", "backoffice")),
    *(f"counter.close.{x}" for x in ("title", "visit", "forwarded", "confirm")),
    "counter.dialog.cancel",
    *(f"counter.language.{x}" for x in LANGUAGES_NAMED),
})

# ---------------------------------------------------------------- words

# Link states, as the header shows them.
CONNECTING = "connecting"  # never connected yet
ONLINE = "online"  # broker connected and the hall server says online
NO_SERVER = "no_server"  # broker connected, the hall server offline or stopped
OFFLINE = "offline"  # no broker connection

# Refusal codes the panel gives itself before anything is sent (server codes are protocol.Err).
REFUSE_OFFLINE = "offline"
REFUSE_BUSY = "busy"
REFUSE_NOT_SYNCED = "not_synced"
REFUSE_ALREADY_OPEN = "already_open"
REFUSE_ALREADY_CLOSED = "already_closed"
REFUSE_CHOOSE_TARGET = "choose_target"
REFUSE_VISITOR_CHANGED = "visitor_changed"

FORWARD_TO_COUNTER = "counter"
FORWARD_TO_TOPIC = "topic"
PAUSE_REASONS = ("break", "lunch", "backoffice")  # stored in the event as these words, shown translated

# ---------------------------------------------------------------- inputs


class Input:
    """Base of everything fed to CounterModel.feed."""


@dataclass(frozen=True)
class Tick(Input):
    """Time passes (feed about once a second): the serving timer, notices that expire, retries."""


@dataclass(frozen=True)
class Link(Input):
    """The broker connection came up (True) or went down (False)."""

    connected: bool


@dataclass(frozen=True)
class ServerWord(Input):
    """The hall server's retained presence: online, offline (its will), stopped; None when cleared."""

    status: str | None


@dataclass(frozen=True)
class StateMessage(Input):
    """A retained state message: part is protocol.HALL_PART, queue_part(t), counter_part(c)..."""

    part: str
    data: Mapping[str, Any] = field(compare=False)


@dataclass(frozen=True)
class EventMessage(Input):
    """An event from the server's log as it grows (event/<type>)."""

    type: str
    data: Mapping[str, Any] = field(compare=False)


@dataclass(frozen=True)
class DeviceMessage(Input):
    """A device's retained presence (device/<role>/<id>); empty data when it was cleared."""

    role: str
    device: str
    data: Mapping[str, Any] = field(compare=False)


@dataclass(frozen=True)
class Reply(Input):
    """The server's answer to a SendCommand: result on success, else the error code and its details."""

    command_id: str
    ok: bool
    result: Mapping[str, Any] = field(default_factory=dict, compare=False)
    code: str = ""
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TimedOut(Input):
    """No reply to a SendCommand within its time (the client re-sent it with the same id meanwhile)."""

    command_id: str


# Staff actions: each button carries one; keys map to them (counter/model.py KEYMAP).


@dataclass(frozen=True)
class Next(Input):
    topic: str | None = None  # only this topic (a queue row's own call button)


@dataclass(frozen=True)
class Recall(Input):
    pass


@dataclass(frozen=True)
class NoShow(Input):
    pass


@dataclass(frozen=True)
class Done(Input):
    outcome: str  # protocol.OUTCOMES: resolved, handed_on


@dataclass(frozen=True)
class OpenForward(Input):
    """Open the forward dialog for the visitor being served."""


@dataclass(frozen=True)
class ForwardMode(Input):
    mode: str | None = None  # FORWARD_TO_COUNTER or FORWARD_TO_TOPIC; None switches to the other


@dataclass(frozen=True)
class ChooseTarget(Input):
    """In the forward dialog: a counter (kind FORWARD_TO_COUNTER) or a topic (FORWARD_TO_TOPIC) by its id."""

    kind: str
    id: str


@dataclass(frozen=True)
class SetNote(Input):
    text: str


@dataclass(frozen=True)
class ConfirmForward(Input):
    pass


@dataclass(frozen=True)
class OpenPause(Input):
    pass


@dataclass(frozen=True)
class Pause(Input):
    reason: str


@dataclass(frozen=True)
class Open(Input):
    pass


@dataclass(frozen=True)
class OpenClose(Input):
    """Ask before closing: closing sends the tickets forwarded here back to their topics."""


@dataclass(frozen=True)
class ConfirmClose(Input):
    pass


@dataclass(frozen=True)
class Cancel(Input):
    """Close the open dialog without doing anything."""


@dataclass(frozen=True)
class Key(Input):
    """A key by name: '0'-'9', 'enter', '+', '-', '*', '/', '.', 'escape', 'backspace', 'tab' or a letter."""

    name: str


# ---------------------------------------------------------------- effects


class Effect:
    """Base of everything CounterModel.feed asks the app to do."""


@dataclass(frozen=True)
class SendCommand(Effect):
    """Send {"op": op, **fields} with this id; a re-send carries the same id, so it never acts twice."""

    command_id: str
    op: str
    fields: tuple[tuple[str, Any], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        return dict(self.fields)


@dataclass(frozen=True)
class Alert(Effect):
    """Something to log (and a cue to sound): forwarded_to_you, server_offline, kiosk paper_out, ..."""

    level: str  # info, warning, error
    code: str
    detail: str = ""


# ---------------------------------------------------------------- the panel


@dataclass(frozen=True)
class Header:
    counter: str  # the counter's name in the staff's language
    status: str  # open, paused, closed, or "" before the first state arrives
    reason: Text | None  # why paused
    link: str  # CONNECTING, ONLINE, NO_SERVER, OFFLINE
    served_today: int


@dataclass(frozen=True)
class Current:
    """The visitor being served: what staff need to greet them and serve them."""

    number: str
    topic: str  # topic name in the staff's language
    colour: str
    lang: str  # the visitor's language code (the app names it in itself and in the staff's language)
    priority: bool
    recalls: int
    forwards: int
    note: str
    origin: str  # the topic they first drew a ticket for, when forwarded from another one
    from_counter: str  # the counter that forwarded them here (name), when forwarded
    stale: bool  # the connection is down: shown as last known


@dataclass(frozen=True)
class ActionView:
    id: str  # next, recall, noshow, done, handed_on, forward, pause, open, close
    label: Msg
    key: str  # the key's label on the button face ("Enter", "+", "1")
    action: Input
    enabled: bool
    busy: bool = False  # this action's command is on its way


@dataclass(frozen=True)
class QueueRow:
    topic: str
    letter: str
    name: str
    colour: str
    tier: int  # 0: this counter's own topics; higher: served when those are empty
    waiting: int
    priority: int
    longest_wait_min: int | None  # whole minutes, so that a row changes at most once a minute
    expected_wait_min: int | None
    can_call: bool  # its own call button (next from this topic only) would be sent now


@dataclass(frozen=True)
class ForwardedRow:
    number: str
    topic: str
    lang: str
    from_counter: str
    note: str
    waited_min: int | None


@dataclass(frozen=True)
class AlertView:
    id: str  # stable: "forward:B003", "kiosk:K1", "display:entrance", "link"
    level: str  # info, warning, error
    text: Msg


@dataclass(frozen=True)
class DialogItem:
    key: str  # the digit that chooses it
    kind: str
    id: str
    label: Text
    detail: Text | None
    colour: str | None
    enabled: bool
    selected: bool
    action: Input


@dataclass(frozen=True)
class Dialog:
    name: str  # forward, pause, close
    title: Msg
    body: tuple[Text, ...]
    items: tuple[DialogItem, ...]
    mode: str | None = None  # forward: FORWARD_TO_COUNTER or FORWARD_TO_TOPIC
    note: str | None = None  # forward: the note typed so far
    confirm: ActionView | None = None
    cancel: ActionView | None = None
    switch: ActionView | None = None  # forward: to counters / to topics


@dataclass(frozen=True)
class Panel:
    lang: str  # the staff's language
    header: Header
    current: Current | None
    serving_s: int | None  # seconds since the visitor was first called (the timer; apart so it alone ticks)
    actions: tuple[ActionView, ...]
    queues: tuple[QueueRow, ...]
    forwarded: tuple[ForwardedRow, ...]
    alerts: tuple[AlertView, ...]  # forwarded to you first, then the hall's devices
    notice: AlertView | None  # the outcome of the last action, or why it was not sent
    dialog: Dialog | None


@dataclass(frozen=True)
class CounterSettings:
    command_timeout_s: float = 6.0  # the client re-sends within this; then the command is unconfirmed
    retry_s: float = 10.0  # an unconfirmed command is sent again (same id) this often while online
    notice_s: float = 8.0  # how long the outcome of an action stays on the panel
    note_max: int = p.NOTE_MAX


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with offset from the server; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
