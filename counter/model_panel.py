"""The counter model's state drawn as a Panel: which texts, rows, buttons and alerts staff see.

Apart from the state machine (counter/model.py) because it only reads the state: no transition
happens here. Texts are message ids from counter.po, or hall-config strings already in the staff's
language; a button carries the input the UI feeds back when it is pressed.
It reads the model through the `CounterModel` protocol below and never imports counter/model.py.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from broker import protocol as p
from broker.config import Counter, HallConfig
from counter.model_keys import DIGITS, KEY_LABELS
from counter.model_state import ForwardDialog, Incoming, Notice, Pending, SimpleDialog, World, device_problem
from counter.model_types import (
    FORWARD_TO_COUNTER,
    FORWARD_TO_TOPIC,
    NO_SERVER,
    OFFLINE,
    PAUSE_REASONS,
    ActionView,
    AlertView,
    Cancel,
    ChooseTarget,
    ConfirmClose,
    ConfirmForward,
    Current,
    Dialog,
    DialogItem,
    Done,
    ForwardedRow,
    ForwardMode,
    Header,
    Msg,
    Next,
    NoShow,
    Open,
    OpenClose,
    OpenForward,
    OpenPause,
    Panel,
    Pause,
    QueueRow,
    Recall,
    Text,
    msg,
    parse_time,
)


class CounterModel(Protocol):
    """What the panel reads of the counter's model (counter/model.py `CounterModel`, which this module does
    not import: the model imports the panel)."""

    hall: HallConfig
    counter_id: str
    config: Counter
    lang: str
    now: datetime
    world: World
    incoming: OrderedDict[str, Incoming]
    origins: OrderedDict[str, str]
    pending: Pending | None
    notice: Notice | None
    dialog: ForwardDialog | SimpleDialog | None

    @property
    def online(self) -> bool: ...
    def link_state(self) -> str: ...
    def refusal(self, action: str, topic: str | None = None) -> str | None: ...
    def forward_targets(self, mode: str) -> tuple[str, ...]: ...
    def serving_s(self) -> int | None: ...

# The panel's buttons in order, with the input each feeds (keys: counter/model.py MAIN_KEYS).
ACTIONS: tuple[tuple[str, Any], ...] = (
    ("next", Next()), ("recall", Recall()), ("noshow", NoShow()), ("done", Done("resolved")),
    ("handed_on", Done("handed_on")), ("forward", OpenForward()), ("pause", OpenPause()), ("open", Open()),
    ("close", OpenClose()),
)
# Server error codes the panel words itself; any other is shown with its code (counter.refused.other).
WORDED_CODES = frozenset({
    "offline", "busy", "not_synced", "already_open", "already_closed", "choose_target", "visitor_changed",
    p.Err.COUNTER_CLOSED, p.Err.QUEUE_EMPTY, p.Err.NO_TICKET, p.Err.TOO_FEW_RECALLS, p.Err.NOT_YOUR_TOPIC,
})


def build_panel(model: CounterModel) -> Panel:
    current = _current(model)
    actions = tuple(ActionView(name, Msg("counter.action." + name), KEY_LABELS[name], action,
                               enabled=model.refusal(name) is None and model.dialog is None,
                               busy=model.pending is not None and model.pending.action == name)
                    for name, action in ACTIONS)
    return Panel(lang=model.lang, header=_header(model), current=current,
                 serving_s=model.serving_s() if current is not None else None, actions=actions,
                 queues=_queues(model), forwarded=_forwarded(model), alerts=_alerts(model), notice=_notice(model),
                 dialog=_dialog(model))


def _name(texts: Mapping[str, str], lang: str, fallback: str) -> str:
    return texts.get(lang) or next(iter(texts.values()), fallback)


def counter_name(model: CounterModel, counter_id: str | None) -> str:
    counter = model.hall.counters.get(counter_id or "")
    return _name(counter.name, model.lang, counter_id or "?") if counter is not None else (counter_id or "?")


def topic_name(model: CounterModel, topic_id: str | None) -> str:
    topic = model.hall.topics.get(topic_id or "")
    return _name(topic.name, model.lang, topic_id or "?") if topic is not None else (topic_id or "?")


def _header(model: CounterModel) -> Header:
    counter = model.world.counter
    reason: Text | None = None
    if counter is not None and counter.status == p.PAUSED and counter.reason:
        reason = Msg("counter.reason." + counter.reason) if counter.reason in PAUSE_REASONS else counter.reason
    return Header(counter=counter_name(model, model.counter_id), status=counter.status if counter else "",
                  reason=reason, link=model.link_state(), served_today=counter.served_today if counter else 0)


def _current(model: CounterModel) -> Current | None:
    counter = model.world.counter
    if counter is None or counter.ticket is None:
        return None
    ticket = counter.ticket
    number = str(ticket.get("number") or "?")
    topic = model.hall.topics.get(str(ticket.get("topic")))
    origin = str(ticket.get("origin_topic") or "")
    return Current(number=number, topic=topic_name(model, str(ticket.get("topic"))),
                   colour=topic.colour if topic is not None else "#14365d", lang=str(ticket.get("lang") or ""),
                   priority=ticket.get("priority") is True, recalls=_count(ticket.get("recalls")),
                   forwards=_count(ticket.get("forwards")), note=str(ticket.get("note") or ""),
                   origin=topic_name(model, origin) if origin else "",
                   from_counter=counter_name(model, model.origins[number]) if number in model.origins else "",
                   stale=not model.online)


def _minutes(since: str | None, now: datetime) -> int | None:
    moment = parse_time(since)
    return None if moment is None else max(0, int((now - moment).total_seconds() // 60))


def _queues(model: CounterModel) -> tuple[QueueRow, ...]:
    rows = []
    for tier, topics in enumerate(model.config.tiers):
        for topic_id in topics:
            topic = model.hall.topics[topic_id]
            queue = model.world.queues.get(topic_id)
            rows.append(QueueRow(
                topic=topic_id, letter=topic.letter, name=topic_name(model, topic_id), colour=topic.colour, tier=tier,
                waiting=queue.waiting if queue else 0, priority=queue.priority if queue else 0,
                longest_wait_min=_minutes(queue.oldest_issued_at, model.now) if queue else None,
                expected_wait_min=None if queue is None or queue.expected_wait_s is None
                else round(queue.expected_wait_s / 60),
                can_call=model.dialog is None and model.refusal("next", topic_id) is None))
    return tuple(rows)


def _forwarded(model: CounterModel) -> tuple[ForwardedRow, ...]:
    return tuple(ForwardedRow(number=i.number, topic=topic_name(model, i.topic), lang=i.lang,
                              from_counter=counter_name(model, i.from_counter) if i.from_counter else "",
                              note=i.note, waited_min=_minutes(i.issued_at, model.now))
                 for i in model.incoming.values())


def device_name(model: CounterModel, role: str, device: str) -> str:
    """A kiosk or a display as staff know it: its name from the hall file in the staff's language; its id only for a
    device the hall file does not name (a kiosk's name is optional there, and a stray device may report itself)."""
    config: Any = (model.hall.kiosks if role == "kiosk" else model.hall.displays).get(device)
    return _name(config.name, model.lang, device) if config is not None and config.name else device


def _alerts(model: CounterModel) -> tuple[AlertView, ...]:
    alerts: list[AlertView] = []
    link = model.link_state()
    if link in (OFFLINE, NO_SERVER):
        alerts.append(AlertView("link", "error", Msg("counter.alert." + link)))
    pending = model.pending
    if pending is not None and pending.unconfirmed:
        alerts.append(AlertView("unconfirmed", "error",
                                msg("counter.alert.unconfirmed", action=_action_word(pending.action))))
    for incoming in model.incoming.values():
        who = counter_name(model, incoming.from_counter) if incoming.from_counter else "?"
        text = (msg("counter.alert.forwarded_note", number=incoming.number, counter=who, note=incoming.note)
                if incoming.note else msg("counter.alert.forwarded", number=incoming.number, counter=who))
        alerts.append(AlertView("forward:" + incoming.number, "forward", text))
    order = {"error": 0, "warning": 1, "info": 2}
    devices = []
    for (role, device), info in model.world.devices.items():
        problem = device_problem(role, info)
        if problem is not None:
            level, code = problem
            devices.append(AlertView(f"{role}:{device}", level,
                                     msg("counter.alert." + code, name=device_name(model, role, device))))
    alerts += sorted(devices, key=lambda a: (order.get(a.level, 3), a.id))
    return tuple(alerts)


def _action_word(action: str) -> Msg:
    return Msg("counter.action." + action)


def _notice(model: CounterModel) -> AlertView | None:
    """The last word on an action: why a press was refused, else that a command is on its way, else its outcome."""
    if model.notice is not None:
        return model.notice.view
    if model.pending is not None and not model.pending.unconfirmed:
        return AlertView("notice", "info", msg("counter.sending", action=_action_word(model.pending.action)))
    return None


def _dialog(model: CounterModel) -> Dialog | None:
    dialog = model.dialog
    if dialog is None:
        return None
    cancel = ActionView("cancel", Msg("counter.dialog.cancel"), "Esc", Cancel(), enabled=True)
    if isinstance(dialog, ForwardDialog):
        return _forward_dialog(model, dialog, cancel)
    if dialog.name == "pause":
        items = tuple(DialogItem(DIGITS[i], "reason", reason, Msg("counter.reason." + reason), None, None,
                                 enabled=model.refusal("pause") is None, selected=False, action=Pause(reason))
                      for i, reason in enumerate(PAUSE_REASONS))
        return Dialog("pause", Msg("counter.pause.title"), (Msg("counter.pause.body"),), items, cancel=cancel)
    counter = model.world.counter
    body: list[Text] = []
    if counter is not None and counter.ticket is not None:
        body.append(msg("counter.close.visit", number=str(counter.ticket.get("number"))))
    if model.incoming:
        body.append(msg("counter.close.forwarded", n=len(model.incoming)))
    confirm = ActionView("confirm", Msg("counter.close.confirm"), "Enter", ConfirmClose(),
                         enabled=model.refusal("close") is None)
    return Dialog("close", Msg("counter.close.title"), tuple(body), (), confirm=confirm, cancel=cancel)


def _forward_dialog(model: CounterModel, dialog: ForwardDialog, cancel: ActionView) -> Dialog:
    items = []
    for index, target in enumerate(model.forward_targets(dialog.mode)):
        key = DIGITS[index] if index < len(DIGITS) else ""
        selected = dialog.target == (dialog.mode, target)
        if dialog.mode == FORWARD_TO_COUNTER:
            status = model.world.counters.get(target, p.CLOSED)
            items.append(DialogItem(key, FORWARD_TO_COUNTER, target, counter_name(model, target),
                                    Msg("counter.status." + status), None, enabled=status != p.CLOSED,
                                    selected=selected, action=ChooseTarget(FORWARD_TO_COUNTER, target)))
        else:
            topic = model.hall.topics[target]
            items.append(DialogItem(key, FORWARD_TO_TOPIC, target, f"{topic.letter} · {topic_name(model, target)}",
                                    None, topic.colour, enabled=True, selected=selected,
                                    action=ChooseTarget(FORWARD_TO_TOPIC, target)))
    other = FORWARD_TO_TOPIC if dialog.mode == FORWARD_TO_COUNTER else FORWARD_TO_COUNTER
    switch = ActionView("switch", Msg("counter.forward.to_" + other), "/", ForwardMode(other), enabled=True)
    confirm = ActionView("confirm", Msg("counter.forward.confirm"), "Enter", ConfirmForward(),
                         enabled=dialog.target is not None and model.refusal("forward") is None)
    body: tuple[Text, ...] = (Msg("counter.forward.to_" + dialog.mode),)
    return Dialog("forward", msg("counter.forward.title", number=dialog.number), body, tuple(items), mode=dialog.mode,
                  note=dialog.note, confirm=confirm, cancel=cancel, switch=switch)


# ---------------------------------------------------------------- notices


def refusal_text(code: str, action: str, model: CounterModel, details: Mapping[str, Any]) -> Msg:
    """Why an action was not done: the panel's own reasons first, then the hall server's error codes."""
    if code == p.Err.COUNTER_CLOSED and action == "forward":
        return msg("counter.refused.target_closed", target=counter_name(model, str(details.get("target") or "")))
    if code == p.Err.TOO_FEW_RECALLS:
        counter = model.world.counter
        recalls = details.get("recalls")
        if not isinstance(recalls, int) and counter is not None and counter.ticket is not None:
            recalls = counter.ticket.get("recalls")
        return msg("counter.refused.too_few_recalls", needed=model.hall.rules.noshow_after_recalls,
                   recalls=recalls if isinstance(recalls, int) else 0)
    if code in WORDED_CODES:
        return Msg("counter.refused." + code)
    return msg("counter.refused.other", code=code)


def success_text(pending: Pending, ticket: Mapping[str, Any], model: CounterModel) -> Msg:
    number = str(ticket.get("number") or "")
    action = pending.action
    if action == "forward":
        fields = dict(pending.fields)
        if "counter" in fields:
            return msg("counter.ok.forward_counter", number=number, target=counter_name(model, fields["counter"]))
        return msg("counter.ok.forward_topic", number=number, target=topic_name(model, fields.get("topic")))
    if action in ("pause", "open", "close"):
        return Msg("counter.ok." + action)
    return msg("counter.ok." + action, number=number)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
