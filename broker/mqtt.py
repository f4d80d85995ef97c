"""One MQTT connection as every Vuoro process needs it (paho-mqtt 2, VERSION2 callbacks).

Reconnects by itself, restores its subscriptions, sets TCP_NODELAY (without it a
request/reply pair stalls ~40 ms on Nagle and delayed ACKs), and carries a Last Will.
Works with MQTT 3.1.1 (the embedded broker) and 5 (Mosquitto).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import protocol as p

log = logging.getLogger(__name__)

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
VERSIONS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
KEEPALIVE_S = 15
SESSION_EXPIRY_S = 3600
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 3.0
# A refused login is tried again slowly (a password does not mend itself; IT fixes it, or a reload of the broker
# catches up with `vuoro provision`), so the log says it once a minute at most, not four times a second.
REFUSED_MIN_S, REFUSED_MAX_S = 1.0, 60.0
# CONNACK reasons that mean "not with this account" (MQTT 5 codes; paho maps 3.1.1's 4 and 5 to 134 and 135):
# client identifier not valid, bad user name or password, not authorized, bad authentication method
LOGIN_REFUSED = frozenset({133, 134, 135, 140})
READ_BURST = 10000  # packets read in one poll before the caller gets to work on them
WRITE_GATHER_MAX = 1 << 18  # bytes gathered before a send even inside a batch


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to log in: mqtt:// (plain) or mqtts:// (TLS, checked against `ca_file`,
    or the system's CAs without one). Credentials usually come from a device's credentials file."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """mqtt[s]://[user[:password]@]host[:port]; raises ValueError with what is wrong."""
        parts = urlsplit(url if "://" in url else "mqtt://" + url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL {url!r}: only mqtt:// and mqtts:// (TLS) are supported")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} names no host")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
        except ValueError:
            raise ValueError(f"broker URL {url!r} has an invalid port") from None
        return cls(parts.hostname, port, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None, tls=tls)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    def with_login(self, username: str | None, password: str | None, ca_file: str | None = None) -> BrokerAddress:
        """The same broker with these credentials, and the CA that an mqtts:// connection must chain to."""
        return replace(self, username=username, password=password, ca_file=ca_file or self.ca_file)


Handler = Callable[[str, bytes, bool], None]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed over by a link with manual acknowledgement: the broker counts it as delivered only
    once its owner passes it to `MqttLink.ack`, so what the owner has not yet made safe comes again."""

    topic: str
    payload: bytes
    retained: bool
    qos: int
    mid: int  # the packet id its PUBACK names
    connection: int  # the connection it came on: a packet id means nothing on another connection


DeliveryHandler = Callable[[Delivery], None]


def session_client_id(client_id: str, address: BrokerAddress) -> str:
    """A persistent session's client id, made unguessable when the link logs in with a password.

    Mosquitto lets any logged-in client take over a session by naming its client id, and a kiosk's
    credentials sit on a machine in a public hall: with the hall server's well-known id they could
    knock the server off and receive what was queued for it. A suffix derived from the password keeps
    the id stable across restarts (the session survives) yet known only to whoever holds the password.
    """
    if not address.password:
        return client_id
    digest = hmac.new(address.password.encode("utf-8"), client_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{client_id}-{digest[:16]}"


def configure_tls(client: mqtt.Client, address: BrokerAddress) -> None:
    """TLS for an mqtts:// address: the broker's certificate must chain to `ca_file` (or a system CA) and
    name the host we connect to. Nothing to do for mqtt://."""
    if not address.tls:
        return
    context = ssl.create_default_context(cafile=address.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    client.tls_set_context(context)


def _ssl_pending(sock: Any) -> bool:
    """Bytes TLS has already decrypted: select() on the socket cannot see them."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


class _ReadAheadClient(mqtt.Client):
    """paho reads each packet with three or more recv() calls (type, length, body) and writes
    each packet with its own send(); this one reads up to 64 KiB at once and serves those calls
    from memory, and gathers what a batch writes into one send. Only for a caller that drives
    the network itself (`MqttLink.poll` checks `read_ahead` and calls `flush_out`)."""

    _ahead: bytes = b""
    _ahead_pos: int = 0
    _outgoing: bytearray | None = None

    def _sock_send(self, buf: bytes | bytearray) -> int:
        if self._sock is None:
            raise ConnectionError("self._sock is None")
        if self._outgoing is None:
            self._outgoing = bytearray()
        self._outgoing += buf
        if len(self._outgoing) >= WRITE_GATHER_MAX:
            self.flush_out()
        return len(buf)

    def flush_out(self) -> None:
        """Send what was gathered; wait (up to the keepalive) while the socket buffer is full."""
        pending = self._outgoing
        sock = self._sock
        while pending and sock is not None:
            try:
                sent = sock.send(pending)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                if not select.select([], [sock], [], KEEPALIVE_S)[1]:
                    log.warning("the broker took nothing for %ss; the keepalive will drop it", KEEPALIVE_S)
                    pending.clear()
                    return
                continue
            except OSError:  # the connection is gone; paho notices on its next read
                pending.clear()
                return
            del pending[:sent]

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._ahead_pos >= len(self._ahead):
            data = super()._sock_recv(65536)
            if not data:
                return data  # the broker closed the connection
            self._ahead, self._ahead_pos = data, 0
        start = self._ahead_pos
        self._ahead_pos = min(start + bufsize, len(self._ahead))
        return self._ahead[start:self._ahead_pos]

    def _sock_close(self) -> None:
        self.flush_out()  # a DISCONNECT and the last words go out before the socket closes
        self._ahead, self._ahead_pos = b"", 0
        if self._outgoing:
            self._outgoing.clear()
        super()._sock_close()

    @property
    def read_ahead(self) -> bool:
        return self._ahead_pos < len(self._ahead)


class MqttLink:
    """A paho client with our defaults; `on_message(topic, payload, retained)` runs on paho's thread.

    With `on_delivery` instead, the link acknowledges nothing by itself: each message comes as a
    `Delivery`, and a QoS 1 message stays unacknowledged (the broker sends it again after a reconnect)
    until the owner calls `ack(delivery)`, which it does once the message is safe (committed).
    """

    def __init__(self, address: BrokerAddress, client_id: str, *, version: str = "3.1.1",
                 will: tuple[str, Mapping[str, Any]] | None = None, persistent: bool = False,
                 subscriptions: Iterable[str] = (), on_message: Handler | None = None,
                 on_delivery: DeliveryHandler | None = None,
                 on_connected: Callable[[], None] | None = None,
                 on_disconnected: Callable[[], None] | None = None, driven: bool = False) -> None:
        if version not in VERSIONS:
            raise ValueError(f"MQTT version must be one of {', '.join(VERSIONS)}")
        if on_message is not None and on_delivery is not None:
            raise ValueError("give on_message (acknowledged on arrival) or on_delivery (acknowledged by ack()), "
                             "not both")
        self.address, self.version = address, version
        self.subscriptions = list(subscriptions)
        self.on_message = on_message
        self.on_delivery = on_delivery
        self._connection = 0  # counts sockets opened, so that an ack never crosses to a newer connection
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self._persistent = persistent
        self._ready = threading.Event()
        self._closing = False
        self._driven = driven  # True: the owner's thread runs the network through poll()
        self._next_attempt = 0.0
        self._retry_s = RECONNECT_MIN_S
        self._subscribe_mid: int | None = None
        self.connects = 0
        self.refusal: str | None = None  # why the broker last refused us (bad credentials...), until we get in
        self.login_refused = False  # that refusal was about the account (not a full or shutting-down broker)
        self._refused_wait = REFUSED_MIN_S
        self.refused_subscriptions: list[str] = []  # topic filters the broker's ACL refused on the last connect
        self.publish_refused: str | None = None  # why the broker refused a publish (MQTT 5 tells: its ACL), if it did
        protocol = VERSIONS[version]
        if persistent:
            client_id = session_client_id(client_id, address)
        self.client = (_ReadAheadClient if driven else mqtt.Client)(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
            clean_session=(not persistent) if protocol == mqtt.MQTTv311 else None)
        self.client.max_inflight_messages_set(0)  # no limit: with one, paho rescans every pending message per ack
        self.client.max_queued_messages_set(0)
        self.client.manual_ack_set(on_delivery is not None)
        self.client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]
        if address.username:
            self.client.username_pw_set(address.username, address.password)
        configure_tls(self.client, address)
        if will is not None:
            self.client.will_set(will[0], p.encode(will[1]), qos=1, retain=True)
        self.client.on_socket_open = self._on_socket_open
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        if version == "5":  # only MQTT 5's PUBACK can say "not authorized"; 3.1.1 brokers drop such a publish
            self.client.on_publish = self._on_publish

    # ------------------------------------------------------------ lifecycle

    def _prepare(self) -> None:
        properties = None
        clean_start: Any = mqtt.MQTT_CLEAN_START_FIRST_ONLY
        if self.version == "5":
            properties = Properties(PacketTypes.CONNECT)
            if self._persistent:
                properties.SessionExpiryInterval = SESSION_EXPIRY_S
                clean_start = False
        self.client.connect_async(self.address.host, self.address.port, keepalive=KEEPALIVE_S,
                                  clean_start=clean_start, properties=properties)

    def start(self, timeout: float | None = 10.0) -> bool:
        """Connect on paho's network thread; wait up to timeout for the subscriptions to be live."""
        self._prepare()
        self.client.loop_start()
        return self.wait_ready(timeout)

    def drive(self) -> None:
        """Prepare for a thread that runs the network itself with poll() (made with driven=True).

        The hall server works so: a command is read, decided, committed and answered on one
        thread, which saves the wake-ups between threads on every message.
        """
        if not self._driven:
            raise RuntimeError("this link was made for paho's own network thread")
        self._prepare()

    def poll(self, timeout: float) -> None:
        """Connect or reconnect when due, then wait up to timeout for traffic and handle all of it."""
        client = self.client
        self.flush()
        sock = client.socket()
        if sock is None:
            now = time.monotonic()
            if now < self._next_attempt:
                time.sleep(min(timeout, self._next_attempt - now))
                return
            try:
                client.reconnect()
            except OSError as exc:
                self._next_attempt = now + self._retry_s
                self._retry_s = min(self._retry_s * 2, RECONNECT_MAX_S)
                log.info("broker %s not reachable (%s); retrying", self.address.url, exc)
                return
            self._retry_s = RECONNECT_MIN_S
            sock = client.socket()
            if sock is None:
                return
        ahead = (isinstance(client, _ReadAheadClient) and client.read_ahead) or _ssl_pending(sock)
        try:
            readable, writable, _ = select.select([sock], [sock] if client.want_write() else [], [],
                                                  0 if ahead else timeout)
        except (OSError, ValueError):  # the socket closed under us; the next poll reconnects
            return
        if writable:
            client.loop_write()
        if readable or ahead:
            for _ in range(READ_BURST):
                if client.loop_read() != mqtt.MQTT_ERR_SUCCESS or client.socket() is None:
                    break
                if not (isinstance(client, _ReadAheadClient) and client.read_ahead) and not _ssl_pending(sock) \
                        and not select.select([sock], [], [], 0)[0]:
                    break
        if client.socket() is not None:
            client.loop_misc()
        if client.want_write() and client.socket() is not None:
            client.loop_write()
        self.flush()

    def flush(self) -> None:
        """Send what a driven link has gathered (PUBACKs, replies, events) in as few writes as it can."""
        if isinstance(self.client, _ReadAheadClient):
            self.client.flush_out()

    def wait_ready(self, timeout: float | None) -> bool:
        return self._ready.wait(timeout)

    def wait_ready_or_refused(self, timeout: float) -> bool:
        """Wait until connected (True), or until the broker refuses this account or timeout passes (False:
        `login_refused` tells them apart). A refused login is final for a command line: it does not wait on."""
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            if self.login_refused:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._ready.wait(min(0.05, left))
        return True

    def refusal_message(self) -> str:
        """The refusal in words that name the account, for IT."""
        who = self.address.username or "an anonymous client"
        return f"the broker {self.address.url} refused the login of {who}: {self.refusal or 'no reason given'}"

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def stop(self, last_words: tuple[str, Mapping[str, Any]] | None = None) -> None:
        self._closing = True
        if last_words is not None and self.connected:
            info = self.client.publish(last_words[0], p.encode(last_words[1]), qos=1, retain=True)
            if self._driven:
                deadline = time.monotonic() + 2
                while not info.is_published() and time.monotonic() < deadline and self.client.socket():
                    self.poll(0.05)
            else:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=2)
        self.client.disconnect()
        if self._driven:
            with contextlib.suppress(OSError):
                self.client.loop_write()
        else:
            self.client.loop_stop()
        self._ready.clear()

    # ------------------------------------------------------------ publishing

    def publish(self, topic: str, payload: Mapping[str, Any] | bytes, *, retain: bool = False,
                qos: int = 1) -> mqtt.MQTTMessageInfo:
        body = payload if isinstance(payload, bytes | bytearray) else p.encode(payload)
        return self.client.publish(topic, body, qos=qos, retain=retain)

    def ack(self, delivery: Delivery) -> bool:
        """Tell the broker a QoS 1 message is safe; a driven link sends it with its next `flush`.

        False when the connection it came on is gone: the broker sends the message again on the next
        one (the session persists), and a PUBACK with its old packet id could confirm a different message.
        """
        if delivery.qos == 0:
            return True
        if delivery.connection != self._connection or self.client.socket() is None:
            return False
        return self.client.ack(delivery.mid, delivery.qos) == mqtt.MQTT_ERR_SUCCESS

    # ------------------------------------------------------------ paho callbacks

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._connection += 1
        _nodelay(client, userdata, sock)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
            self.login_refused = reason.value in LOGIN_REFUSED
            log.warning("broker %s refused the connection of %s: %s; trying again in %.0f s", self.address.url,
                        self.address.username or "an anonymous client", reason, self._refused_wait)
            # slower retries while refused: paho's own delay for a link on paho's thread, ours for a driven one
            if self._refused_wait == REFUSED_MIN_S:
                client.reconnect_delay_set(min_delay=REFUSED_MIN_S, max_delay=REFUSED_MAX_S)  # type: ignore[arg-type]
            self._next_attempt = time.monotonic() + self._refused_wait
            self._refused_wait = min(self._refused_wait * 2, REFUSED_MAX_S)
            return
        if self.refusal is not None:
            self.refusal, self.login_refused, self._refused_wait = None, False, REFUSED_MIN_S
            client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]
        self.refused_subscriptions = []
        self.connects += 1
        log.info("connected to %s (MQTT %s)", self.address.url, self.version)
        if self.subscriptions:
            _, self._subscribe_mid = client.subscribe([(t, 1) for t in self.subscriptions])
        else:
            self._became_ready()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.publish_refused = str(reason)
            log.error("broker %s refused a publish of %s: %s", self.address.url,
                      self.address.username or "an anonymous client", reason)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if mid == self._subscribe_mid:
            self.refused_subscriptions = [t for t, r in zip(self.subscriptions, reasons, strict=False) if r.is_failure]
            if self.refused_subscriptions:
                log.error("broker %s did not let %s subscribe to %s (its ACL: not allowed for this account)",
                          self.address.url, self.address.username or "an anonymous client",
                          ", ".join(self.refused_subscriptions))
            self._became_ready()

    def _became_ready(self) -> None:
        self._ready.set()
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:
                log.exception("on_connected failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was = self._ready.is_set()
        self._ready.clear()
        if was and not self._closing:
            log.warning("lost the broker %s (%s); reconnecting", self.address.url, reason)
            if self.on_disconnected is not None:
                self.on_disconnected()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        delivery = Delivery("", bytes(message.payload), bool(message.retain), message.qos, message.mid,
                            self._connection)
        try:
            delivery = replace(delivery, topic=message.topic)  # paho decodes the topic only when asked
            if self.on_delivery is not None:
                self.on_delivery(delivery)
            elif self.on_message is not None:
                self.on_message(delivery.topic, delivery.payload, delivery.retained)
        except Exception:
            log.exception("handler failed for a message on %r", delivery.topic or "(a topic that is not UTF-8)")
            if self.on_delivery is not None:
                # left unacknowledged it would hold one of the broker's in-flight slots until the next
                # reconnect and then fail again: acknowledged, as paho does on arrival
                self.ack(delivery)


def _nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):  # a websocket or a unix socket: nothing to tune
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
