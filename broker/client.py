"""The client every device and the CLI use to talk to the hall server.

A device connects as `<role>/<device>`, announces itself with a retained presence
and a Last Will, sends commands and waits for their replies, and keeps a copy of
the hall's retained state and the event stream for whoever renders it.
A request is re-sent with the same id until it is answered: the server remembers
ids, so a retry after a network blip can never draw a second ticket.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from broker import __version__
from broker import protocol as p
from broker.mqtt import BrokerAddress, MqttLink

log = logging.getLogger(__name__)

RESEND_S = 2.0


class CommandError(Exception):
    """The server refused a command; `code` is one of protocol.Err."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details = code, message, dict(details or {})


class ServerUnavailable(CommandError):
    def __init__(self, message: str) -> None:
        super().__init__(p.Err.TIMEOUT, message)


Listener = Callable[[p.ParsedTopic, dict[str, Any]], None]


class _Pending:
    __slots__ = ("callback", "done", "reply")

    def __init__(self, callback: Callable[[dict[str, Any]], None] | None) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None
        self.callback = callback


class HallClient:
    def __init__(self, address: BrokerAddress, hall_id: str, role: str, device: str, *,
                 version: str = "3.1.1", presence: bool = True, watch: bool = False,
                 listener: Listener | None = None, presence_fields: Mapping[str, Any] | None = None) -> None:
        self.topics = p.Topics(hall_id)
        self.role, self.device = role, device
        self.listener = listener
        self.state: dict[str, dict[str, Any]] = {}  # "hall", "queue/general", "server", "device/kiosk/K1"...
        self._state_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._presence = presence
        self._presence_fields = dict(presence_fields or {})
        command_role = role if role in p.COMMAND_ROLES else None
        self.reply_topic = self.topics.reply(role, device) if command_role else None
        subscriptions = [self.reply_topic] if self.reply_topic else []
        if watch:
            subscriptions += [self.topics.all_state(), self.topics.all_events(), self.topics.server(),
                              self.topics.all_devices()]
        self.presence_topic = self.topics.device(role, device) if presence else None
        self.link = MqttLink(
            address, client_id=f"vuoro-{hall_id}-{role}-{device}-{p.new_command_id()[:6]}", version=version,
            will=(self.presence_topic, p.presence_payload(p.OFFLINE)) if self.presence_topic else None,
            subscriptions=subscriptions, on_message=self._on_message, on_connected=self._on_connected)

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float | None = 10.0) -> bool:
        return self.link.start(timeout)

    def close(self) -> None:
        last = (self.presence_topic, p.presence_payload(p.STOPPED, version=__version__)) \
            if self.presence_topic else None
        self.link.stop(last_words=last)

    def __enter__(self) -> HallClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self.link.connected

    def set_presence(self, **fields: Any) -> None:
        """Merge fields (printer status, app version...) into this device's retained status."""
        self._presence_fields.update(fields)
        if self.presence_topic and self.link.connected:
            self.link.publish(self.presence_topic, self._presence_payload(), retain=True)

    def _presence_payload(self) -> dict[str, Any]:
        return p.presence_payload(p.ONLINE, version=__version__, **self._presence_fields)

    def _on_connected(self) -> None:
        if self.presence_topic:
            self.link.publish(self.presence_topic, self._presence_payload(), retain=True)

    # ------------------------------------------------------------ commands

    def submit(self, op: str, callback: Callable[[dict[str, Any]], None] | None = None,
               command_id: str | None = None, **fields: Any) -> str:
        """Send a command without waiting; `callback(reply)` runs on the network thread."""
        if self.reply_topic is None:
            raise ValueError(f"role {self.role!r} sends no commands")
        payload = p.command_payload(op, command_id, **fields)
        self._pending[payload["id"]] = _Pending(callback)
        self.link.publish(self.topics.cmd(self.role, self.device), payload)
        return str(payload["id"])

    def request(self, op: str, timeout: float = 5.0, command_id: str | None = None,
                **fields: Any) -> dict[str, Any]:
        """Send a command and return its result; raises CommandError or ServerUnavailable."""
        if not self.link.connected and not self.link.wait_ready(timeout):
            raise ServerUnavailable(f"no connection to the broker {self.link.address.url}")
        payload = p.command_payload(op, command_id, **fields)
        pending = _Pending(None)
        self._pending[payload["id"]] = pending
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.link.publish(self.topics.cmd(self.role, self.device), payload)
                wait = min(RESEND_S, deadline - time.monotonic())
                if wait > 0 and pending.done.wait(wait):
                    break
                if time.monotonic() >= deadline:
                    raise ServerUnavailable(f"the hall server did not answer {op!r} within {timeout:g}s")
        finally:
            self._pending.pop(payload["id"], None)
        reply = pending.reply or {}
        if reply.get("ok"):
            return dict(reply.get("result") or {})
        error = dict(reply.get("error") or {})
        code, message = error.pop("code", p.Err.INTERNAL), error.pop("message", "no message")
        raise CommandError(code, message, error)

    # ------------------------------------------------------------ incoming

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.reply_topic:
            self._on_reply(payload)
            return
        try:
            parsed = self.topics.parse(topic)
            data = p.decode_object(payload, max_bytes=1 << 22) if payload else {}
        except p.ProtocolError as exc:
            log.warning("ignored a message on %s: %s", topic, exc.message)
            return
        key = {"state": parsed.name, "server": p.SERVER_PART,
               "device": p.device_part(str(parsed.role), str(parsed.device))}.get(parsed.kind)
        if key is not None:
            with self._state_lock:
                if data:
                    self.state[key] = data
                else:
                    self.state.pop(key, None)
        if self.listener is not None:
            self.listener(parsed, data)

    def _on_reply(self, payload: bytes) -> None:
        try:
            reply = p.decode_object(payload, max_bytes=1 << 22)
        except p.ProtocolError as exc:
            log.warning("ignored a malformed reply: %s", exc.message)
            return
        pending = self._pending.get(str(reply.get("id")))
        if pending is None:
            return  # a late duplicate, or the reply to another process with our device id
        pending.reply = reply
        pending.done.set()
        if pending.callback is not None:
            self._pending.pop(str(reply.get("id")), None)
            pending.callback(reply)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._state_lock:
            return dict(self.state)

    def wait_for(self, predicate: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.01)
        return predicate(self.snapshot())
