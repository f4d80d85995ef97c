"""The counter panel as a pure state machine: the Kivy window only renders it and feeds it.

Why pure: every action, every refusal and every way the network can fail under a member of staff
is tested here in milliseconds, without a window, a broker or a clock. The model reads no clock
(each input comes with `now`), does no I/O and draws no random numbers (command ids come from an
injected factory).

Use:  effects = model.feed(SomeInput(...), now);  perform the effects;  draw model.panel().

Rules it keeps, whatever arrives in whatever order:
- one command at a time: while one is on its way (or unconfirmed) every other action is refused,
  so a double press can never call two visitors; a re-send carries the same command id, which the
  hall server answers idempotently;
- nothing is queued while offline: an action pressed without a connection to the hall server is
  refused at once and says so; a command already sent when the connection dropped stays on the
  panel as unconfirmed and is settled (same id) when the connection returns;
- the visitor being served stays on the panel through a connection loss, marked as last known,
  until the hall server's retained state says otherwise;
- the panel's state comes from the hall server (retained state, events, replies), never from a guess:
  a retained message older than one already applied (by its event seq) is ignored.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from broker import protocol as p
from broker.config import HallConfig
from counter.model_hall import ORIGINS_KEPT as ORIGINS_KEPT  # re-exported: the model's own figure
from counter.model_hall import HallListener
from counter.model_keys import key_action
from counter.model_panel import build_panel, refusal_text, success_text
from counter.model_state import (
    CounterInfo,
    ForwardDialog,
    Incoming,
    Notice,
    Pending,
    SimpleDialog,
    World,
    as_int,
)
from counter.model_types import (
    CONNECTING,
    FORWARD_TO_COUNTER,
    FORWARD_TO_TOPIC,
    NO_SERVER,
    OFFLINE,
    ONLINE,
    PAUSE_REASONS,
    REFUSE_ALREADY_CLOSED,
    REFUSE_ALREADY_OPEN,
    REFUSE_BUSY,
    REFUSE_CHOOSE_TARGET,
    REFUSE_NOT_SYNCED,
    REFUSE_OFFLINE,
    REFUSE_VISITOR_CHANGED,
    Alert,
    AlertView,
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
    NoShow,
    Open,
    OpenClose,
    OpenForward,
    OpenPause,
    Panel,
    Pause,
    Recall,
    Reply,
    ServerWord,
    SetNote,
    StateMessage,
    Tick,
    TimedOut,
    parse_time,
)
from ui.device_model import DeviceModel
from ui.unknown_input import ignore_unknown

log = logging.getLogger(__name__)

class CounterModel(HallListener, DeviceModel[Input, Effect]):
    """The staff panel of one counter. Not thread-safe: feed it from the UI thread only."""

    def __init__(self, hall: HallConfig, counter_id: str, now: datetime, settings: CounterSettings | None = None,
                 *, lang: str | None = None, new_id: Callable[[], str] = p.new_command_id) -> None:
        if counter_id not in hall.counters:
            raise ValueError(f"counter {counter_id!r} is not in hall {hall.id!r} (known: {', '.join(hall.counters)})")
        self.hall = hall
        self.counter_id = counter_id
        self.config = hall.counters[counter_id]
        self.lang = hall.language(lang)
        self.settings = settings or CounterSettings()
        self.new_id = new_id
        self.now = now
        self.link: bool | None = None  # None until the first connection
        self.server: str | None = None  # the hall server's own word: online, offline, stopped
        self.world = World()
        self.incoming: OrderedDict[str, Incoming] = OrderedDict()
        self.origins: OrderedDict[str, str] = OrderedDict()  # ticket number -> the counter that forwarded it here
        self.pending: Pending | None = None
        self.notice: Notice | None = None
        self.dialog: ForwardDialog | SimpleDialog | None = None
        self.topics = tuple(t for tier in self.config.tiers for t in tier)  # the topics this counter serves
        self.unknown: Counter[str] = Counter()  # inputs of a type nobody handles, by type name

    # ------------------------------------------------------------ input

    def _handle(self, event: Input, effects: list[Effect]) -> None:
        match event:
            case Tick():
                pass  # the timers run after every input
            case Key():
                action = self.key_action(event.name)
                if action is not None:
                    self._handle(action, effects)
            case Link():
                self._on_Link(event, effects)
            case ServerWord():
                self._on_ServerWord(event, effects)
            case StateMessage():
                self._on_StateMessage(event, effects)
            case EventMessage():
                self._on_EventMessage(event, effects)
            case DeviceMessage():
                self._on_DeviceMessage(event, effects)
            case Next():
                self._on_Next(event, effects)
            case Recall():
                self._on_Recall(event, effects)
            case NoShow():
                self._on_NoShow(event, effects)
            case Done():
                self._on_Done(event, effects)
            case Open():
                self._on_Open(event, effects)
            case OpenForward():
                self._on_OpenForward(event, effects)
            case ForwardMode():
                self._on_ForwardMode(event, effects)
            case ChooseTarget():
                self._on_ChooseTarget(event, effects)
            case SetNote():
                self._on_SetNote(event, effects)
            case ConfirmForward():
                self._on_ConfirmForward(event, effects)
            case OpenPause():
                self._on_OpenPause(event, effects)
            case Pause():
                self._on_Pause(event, effects)
            case OpenClose():
                self._on_OpenClose(event, effects)
            case ConfirmClose():
                self._on_ConfirmClose(event, effects)
            case Cancel():
                self._on_Cancel(event, effects)
            case Reply():
                self._on_Reply(event, effects)
            case TimedOut():
                self._on_TimedOut(event, effects)
            case _:  # an input type added without its case here: said once, counted every time
                ignore_unknown(self.unknown, event, log, "the counter panel")

    def key_action(self, name: str) -> Input | None:
        """What a key does now: the main panel's keys, or the open dialog's."""
        return key_action(name, self.dialog, self.forward_targets)

    # ------------------------------------------------------------ the connection and the server's word

    def _on_Link(self, event: Link, effects: list[Effect]) -> None:
        was, self.link = self.link, event.connected
        if was is event.connected:
            return
        if not event.connected:
            self.server = None  # unknown until its retained word arrives again
            effects.append(Alert("warning", "connection_lost"))
            return
        if was is False:
            # Everything retained arrives again now: accept it whatever its seq (the server may have
            # started on a new log), and forget devices that may have died while the broker was away.
            world = self.world
            world.counter_seq, world.queue_seq, world.devices = -1, {}, {}
            for incoming in self.incoming.values():
                incoming.seq = -1
            effects.append(Alert("info", "connection_back"))

    def _on_ServerWord(self, event: ServerWord, effects: list[Effect]) -> None:
        was_online = self.online
        self.server = event.status
        if was_online and not self.online:
            effects.append(Alert("error", "server_offline", str(event.status)))
        elif self.online and not was_online:
            effects.append(Alert("info", "server_online"))
        if self.online and not was_online and self.pending is not None and self.pending.unconfirmed:
            self._resend(effects)

    @property
    def online(self) -> bool:
        return self.link is True and self.server == p.ONLINE

    @property
    def synced(self) -> bool:
        """Online and this counter's state has arrived: what a snapshot waits for."""
        return self.online and self.world.counter is not None

    def link_state(self) -> str:
        if self.link is None:
            return CONNECTING
        if not self.link:
            return OFFLINE
        return ONLINE if self.server == p.ONLINE else NO_SERVER

    # ------------------------------------------------------------ staff actions

    def refusal(self, action: str, topic: str | None = None) -> str | None:
        """Why an action cannot be sent now (a code the panel words), or None when it can.

        The hall server decides in the end (and says why when it refuses); these checks only keep
        staff from pressing what cannot work, and say so at once instead of after a round trip.
        """
        if not self.online:
            return REFUSE_OFFLINE
        if self.pending is not None:
            return REFUSE_BUSY
        counter = self.world.counter
        if counter is None:
            return REFUSE_NOT_SYNCED
        ticket = counter.ticket
        if action == "next":
            if counter.status == p.CLOSED:
                return p.Err.COUNTER_CLOSED
            if topic is not None and topic not in self.topics:
                return p.Err.NOT_YOUR_TOPIC
            return None if self._anyone_waiting(topic) else p.Err.QUEUE_EMPTY
        if action in ("recall", "done", "handed_on", "forward", "noshow"):
            if ticket is None:
                return p.Err.NO_TICKET
            if action == "noshow" and (as_int(ticket.get("recalls")) or 0) < self.hall.rules.noshow_after_recalls:
                return p.Err.TOO_FEW_RECALLS
            return None
        if action == "pause":
            return p.Err.COUNTER_CLOSED if counter.status == p.CLOSED else None
        if action == "open":
            return REFUSE_ALREADY_OPEN if counter.status == p.OPEN else None
        if action == "close":
            return REFUSE_ALREADY_CLOSED if counter.status == p.CLOSED else None
        raise ValueError(f"unknown action {action!r}")

    def _anyone_waiting(self, topic: str | None) -> bool:
        """From the retained queues; a queue not heard of yet counts as maybe (the server will say)."""
        if topic is None and self.incoming:
            return True
        queues = self.world.queues
        return any(t not in queues or queues[t].waiting > 0 for t in (self.topics if topic is None else (topic,)))

    def _act(self, action: str, op: str, effects: list[Effect], only_topic: str | None = None, **fields: Any) -> bool:
        refused = self.refusal(action, only_topic)
        if refused is not None:
            self._refused(refused, action, effects)
            return False
        self.dialog = None
        self.notice = None
        items = tuple((k, v) for k, v in fields.items() if v is not None)
        self.pending = Pending(self.new_id(), op, items, action, self.now)
        effects.append(self.pending.effect())
        return True

    def _refused(self, code: str, action: str, effects: list[Effect], details: Mapping[str, Any] | None = None,
                 server: bool = False) -> None:
        self._say("error" if code == REFUSE_OFFLINE else "warning", refusal_text(code, action, self, details or {}))
        effects.append(Alert("info", "refused_by_server" if server else "refused", f"{action}: {code}"))

    def _say(self, level: str, text: Msg) -> None:
        self.notice = Notice(AlertView("notice", level, text), self.now + timedelta(seconds=self.settings.notice_s))

    def _on_Next(self, event: Next, effects: list[Effect]) -> None:
        self._act("next", "next", effects, only_topic=event.topic, topic=event.topic)

    def _on_Recall(self, event: Recall, effects: list[Effect]) -> None:
        self._act("recall", "recall", effects)

    def _on_NoShow(self, event: NoShow, effects: list[Effect]) -> None:
        self._act("noshow", "noshow", effects)

    def _on_Done(self, event: Done, effects: list[Effect]) -> None:
        if event.outcome not in p.OUTCOMES:
            return
        self._act("done" if event.outcome == "resolved" else "handed_on", "done", effects, outcome=event.outcome)

    def _on_Open(self, event: Open, effects: list[Effect]) -> None:
        self._act("open", "open", effects)

    def _on_OpenForward(self, event: OpenForward, effects: list[Effect]) -> None:
        refused = self.refusal("forward")
        if refused is not None:
            self._refused(refused, "forward", effects)
            return
        counter = self.world.counter
        assert counter is not None and counter.ticket is not None
        self.dialog = ForwardDialog(str(counter.ticket.get("number")))
        self.notice = None

    def _on_ForwardMode(self, event: ForwardMode, effects: list[Effect]) -> None:
        dialog = self.dialog
        if not isinstance(dialog, ForwardDialog):
            return
        if event.mode in (FORWARD_TO_COUNTER, FORWARD_TO_TOPIC):
            dialog.mode = event.mode
        else:
            dialog.mode = FORWARD_TO_TOPIC if dialog.mode == FORWARD_TO_COUNTER else FORWARD_TO_COUNTER

    def forward_targets(self, mode: str) -> tuple[str, ...]:
        """The dialog's choices in order: the other counters, or every topic of the hall."""
        if mode == FORWARD_TO_COUNTER:
            return tuple(c for c in self.hall.counters if c != self.counter_id)
        return tuple(self.hall.topics)

    def target_refusal(self, kind: str, target: str) -> str | None:
        if kind == FORWARD_TO_COUNTER:
            if target not in self.hall.counters or target == self.counter_id:
                return p.Err.UNKNOWN_COUNTER
            return p.Err.COUNTER_CLOSED if self.world.counters.get(target, p.CLOSED) == p.CLOSED else None
        return None if target in self.hall.topics else p.Err.UNKNOWN_TOPIC

    def _on_ChooseTarget(self, event: ChooseTarget, effects: list[Effect]) -> None:
        dialog = self.dialog
        if not isinstance(dialog, ForwardDialog) or event.kind not in (FORWARD_TO_COUNTER, FORWARD_TO_TOPIC):
            return
        refused = self.target_refusal(event.kind, event.id)
        if refused is not None:
            self._say("warning", refusal_text(refused, "forward", self, {"target": event.id}))
            return
        dialog.mode, dialog.target = event.kind, (event.kind, event.id)
        self.notice = None

    def _on_SetNote(self, event: SetNote, effects: list[Effect]) -> None:
        if isinstance(self.dialog, ForwardDialog):
            self.dialog.note = event.text[: self.settings.note_max]

    def _on_ConfirmForward(self, event: ConfirmForward, effects: list[Effect]) -> None:
        dialog = self.dialog
        if not isinstance(dialog, ForwardDialog):
            return
        counter = self.world.counter
        current = None if counter is None or counter.ticket is None else str(counter.ticket.get("number"))
        if current is not None and current != dialog.number:
            self.dialog = None
            self._refused(REFUSE_VISITOR_CHANGED, "forward", effects)
            return
        if dialog.target is None:
            self._refused(REFUSE_CHOOSE_TARGET, "forward", effects)
            return
        kind, target = dialog.target
        refused = self.target_refusal(kind, target)
        if refused is not None:
            self._refused(refused, "forward", effects, {"target": target})
            return
        self._act("forward", "forward", effects, note=dialog.note.strip() or None, **{kind: target})

    def _on_OpenPause(self, event: OpenPause, effects: list[Effect]) -> None:
        refused = self.refusal("pause")
        if refused is not None:
            self._refused(refused, "pause", effects)
            return
        self.dialog = SimpleDialog("pause")
        self.notice = None

    def _on_Pause(self, event: Pause, effects: list[Effect]) -> None:
        if event.reason in PAUSE_REASONS:
            self._act("pause", "pause", effects, reason=event.reason)

    def _on_OpenClose(self, event: OpenClose, effects: list[Effect]) -> None:
        refused = self.refusal("close")
        if refused is not None:
            self._refused(refused, "close", effects)
            return
        self.dialog = SimpleDialog("close")
        self.notice = None

    def _on_ConfirmClose(self, event: ConfirmClose, effects: list[Effect]) -> None:
        if isinstance(self.dialog, SimpleDialog) and self.dialog.name == "close":
            self._act("close", "close", effects)

    def _on_Cancel(self, event: Cancel, effects: list[Effect]) -> None:
        self.dialog = None
        self.notice = None

    # ------------------------------------------------------------ replies

    def _on_Reply(self, event: Reply, effects: list[Effect]) -> None:
        pending = self.pending
        if pending is None or event.command_id != pending.command_id:
            return  # a late duplicate of an answered command
        self.pending = None
        if not event.ok:
            self._refused(event.code or p.Err.INTERNAL, pending.action, effects, event.details, server=True)
            return
        result = event.result
        counter = result.get("counter")
        if isinstance(counter, Mapping):
            self._set_counter(CounterInfo.from_payload(counter), effects, None)
        ticket = result.get("ticket")
        number = str(ticket.get("number")) if isinstance(ticket, Mapping) else ""
        if pending.op == "next" and number:
            self._served(number)
        self._say("info", success_text(pending, ticket if isinstance(ticket, Mapping) else {}, self))

    def _on_TimedOut(self, event: TimedOut, effects: list[Effect]) -> None:
        pending = self.pending
        if pending is None or event.command_id != pending.command_id or pending.unconfirmed:
            return
        pending.unconfirmed = True
        pending.retry_at = self.now + timedelta(seconds=self.settings.retry_s)
        effects.append(Alert("error", "command_unconfirmed", f"{pending.op} {pending.command_id}"))

    def _resend(self, effects: list[Effect]) -> None:
        pending = self.pending
        assert pending is not None
        pending.unconfirmed, pending.retry_at = False, None
        pending.attempts += 1
        pending.sent_at = self.now
        effects.append(pending.effect())

    # ------------------------------------------------------------ time

    def _timers(self, effects: list[Effect]) -> None:
        pending = self.pending
        if pending is not None:
            if pending.unconfirmed:
                if self.online and pending.retry_at is not None and self.now >= pending.retry_at:
                    self._resend(effects)
            elif self.now - pending.sent_at > timedelta(seconds=self.settings.command_timeout_s * 2):
                self._on_TimedOut(TimedOut(pending.command_id), effects)  # the client never answered
        if self.notice is not None and self.now >= self.notice.until:
            self.notice = None

    # ------------------------------------------------------------ derived

    def serving_s(self) -> int | None:
        counter = self.world.counter
        if counter is None or counter.ticket is None:
            return None
        called = parse_time(counter.ticket.get("called_at"))
        return None if called is None else max(0, int((self.now - called).total_seconds()))

    def panel(self) -> Panel:
        """What to draw now, as plain data (texts are message ids; ui.i18n renders them)."""
        return build_panel(self)
