"""The bytes our driven MQTT link (broker/mqtt.py, `_ReadAheadClient`) puts on the wire and takes from it.

`_ReadAheadClient` replaces paho's private `_sock_send`, `_sock_recv` and `_sock_close`, so a paho release that
changes how it reads or writes could break the hall server quietly. Here a fake broker on a localhost socket,
driven from the test's own thread (the link is driven too: `poll` does all its network work), writes and reads
exact MQTT 3.1.1 and 5 packets: CONNECT, SUBSCRIBE, PUBLISH in and out at QoS 0 and 1, PUBACK only after the
owner's ack when manual acknowledgement is on, several packets in one read, one packet split across reads,
writes gathered until a flush, and DISCONNECT before the socket closes.

On loopback a send() has put its bytes in the peer's receive queue by the time it returns, so "nothing is
readable right after the link ran" is a sound check that the link sent nothing.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker import protocol as p
from broker.mqtt import KEEPALIVE_S, SESSION_EXPIRY_S, BrokerAddress, Delivery, MqttLink, session_client_id

DEADLINE_S = 10.0  # bounds a failing test only; a passing exchange takes milliseconds
VERSIONS = {"3.1.1": 4, "5": 5}
WILL_TOPIC = "vuoro/demo/server"
WILL = p.presence_payload(p.OFFLINE, version="test")
SUBSCRIPTIONS = ["vuoro/demo/cmd/#", "vuoro/demo/state/+"]

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, DISCONNECT = 0x10, 0x20, 0x30, 0x40, 0x80, 0x90, 0xE0


# ------------------------------------------------------------ MQTT bytes, written out by hand

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s16(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return len(raw).to_bytes(2, "big") + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def props(level: int, raw: bytes = b"") -> bytes:
    """A property block: MQTT 5 only."""
    return varint(len(raw)) + raw if level == 5 else b""


def connack(level: int) -> bytes:
    return packet(CONNACK, b"\x00\x00" + props(level))


def suback(level: int, mid: int, granted: list[int]) -> bytes:
    return packet(SUBACK, mid.to_bytes(2, "big") + props(level) + bytes(granted))


def publish(level: int, topic: str, payload: bytes, qos: int = 0, mid: int = 0, retain: bool = False) -> bytes:
    head = s16(topic) + (mid.to_bytes(2, "big") if qos else b"") + props(level)
    return packet(PUBLISH | qos << 1 | int(retain), head + payload)


def puback(mid: int) -> bytes:
    return packet(PUBACK, mid.to_bytes(2, "big"))


# ------------------------------------------------------------ the fake broker

class FakeBroker:
    """One listening socket on 127.0.0.1; the test accepts, reads and writes packets itself."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.buffer = b""

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    def try_accept(self) -> bool:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return False
        conn.setblocking(False)
        self.conn, self.buffer = conn, b""
        return True

    def readable(self) -> bool:
        assert self.conn is not None
        return bool(self.buffer) or bool(select.select([self.conn], [], [], 0)[0])

    def recv_once(self) -> bytes:
        """What one recv() returns now (b"" at end of stream, or when nothing is there)."""
        assert self.conn is not None
        try:
            return self.conn.recv(65536)
        except BlockingIOError:
            return b""

    def try_packet(self) -> bytes | None:
        """One whole packet, raw, if all of it has arrived."""
        assert self.conn is not None
        with contextlib.suppress(BlockingIOError):
            self.buffer += self.conn.recv(65536)
        length, shift, pos = 0, 0, 1
        while True:
            if pos >= len(self.buffer):
                return None
            digit = self.buffer[pos]
            length += (digit & 0x7F) << shift
            shift, pos = shift + 7, pos + 1
            if not digit & 0x80:
                break
        if len(self.buffer) < pos + length:
            return None
        raw, self.buffer = self.buffer[:pos + length], self.buffer[pos + length:]
        return raw

    def send(self, *packets: bytes) -> None:
        assert self.conn is not None
        self.conn.setblocking(True)
        self.conn.sendall(b"".join(packets))
        self.conn.setblocking(False)

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.listener.close()


@pytest.fixture
def fake() -> Iterator[FakeBroker]:
    broker = FakeBroker()
    yield broker
    broker.close()


def run_until(link: MqttLink, done: Callable[[], Any], what: str) -> Any:
    """Drive the link until `done()` gives something truthy; fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = done()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {DEADLINE_S} s for {what}")
        link.poll(0.01)


def next_packet(link: MqttLink, broker: FakeBroker, what: str) -> bytes:
    return run_until(link, broker.try_packet, what)  # type: ignore[no-any-return]


def handshake(link: MqttLink, broker: FakeBroker, level: int) -> bytes:
    """Connect the link to the fake broker and grant its subscriptions; returns the CONNECT it sent."""
    run_until(link, broker.try_accept, "the link to connect")
    connect = next_packet(link, broker, "CONNECT")
    broker.send(connack(level))
    if link.subscriptions:
        subscribe = next_packet(link, broker, "SUBSCRIBE")
        mid = int.from_bytes(subscribe[2:4], "big")
        broker.send(suback(level, mid, [1] * len(link.subscriptions)))
    run_until(link, lambda: link.connected, "the link to be ready")
    return connect


def driven_link(broker: FakeBroker, version: str, **options: Any) -> MqttLink:
    link = MqttLink(broker.address, "wire-test", version=version, driven=True, **options)
    link.drive()
    return link


# ------------------------------------------------------------ the packets

@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_link_connects_with_its_session_will_and_login_then_subscribes(fake, version):
    level = VERSIONS[version]
    address = BrokerAddress("127.0.0.1", fake.port, username="server", password="sesame")
    link = MqttLink(address, "vuoro-server-demo", version=version, driven=True, persistent=True,
                    will=(WILL_TOPIC, WILL), subscriptions=SUBSCRIPTIONS)
    link.drive()
    run_until(link, fake.try_accept, "the link to connect")
    connect = next_packet(link, fake, "CONNECT")

    client_id = session_client_id("vuoro-server-demo", address)
    assert client_id != "vuoro-server-demo"  # logged in with a password: the session's id is not guessable
    # user name, password, will retained, will QoS 1, will; no clean session: the broker keeps our session
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04
    session = b"\x11" + SESSION_EXPIRY_S.to_bytes(4, "big")  # MQTT 5: the session outlives the connection
    expected = packet(CONNECT, s16("MQTT") + bytes([level, flags]) + KEEPALIVE_S.to_bytes(2, "big")
                      + props(level, session) + s16(client_id) + props(level) + s16(WILL_TOPIC) + s16(p.encode(WILL))
                      + s16("server") + s16("sesame"))
    assert connect == expected

    fake.send(connack(level))
    subscribe = next_packet(link, fake, "SUBSCRIBE")
    mid = int.from_bytes(subscribe[2:4], "big")
    assert subscribe == packet(SUBSCRIBE | 0x02, mid.to_bytes(2, "big") + props(level)
                               + b"".join(s16(topic) + b"\x01" for topic in SUBSCRIPTIONS))
    assert not link.connected, "ready before the broker granted the subscriptions"
    fake.send(suback(level, mid, [1, 1]))
    run_until(link, lambda: link.connected, "the link to be ready after SUBACK")


@pytest.mark.parametrize("version", VERSIONS)
def test_plain_link_asks_for_a_clean_session(fake, version):
    level = VERSIONS[version]
    link = driven_link(fake, version)
    connect = handshake(link, fake, level)
    assert connect == packet(CONNECT, s16("MQTT") + bytes([level, 0x02]) + KEEPALIVE_S.to_bytes(2, "big")
                             + props(level) + s16("wire-test"))


@pytest.mark.parametrize("version", VERSIONS)
def test_publishes_are_gathered_until_flush_and_leave_in_one_write(fake, version):
    level = VERSIONS[version]
    link = driven_link(fake, version)
    handshake(link, fake, level)

    first = link.publish("vuoro/demo/reply/kiosk/K1", b'{"v":1}', qos=0)
    second = link.publish("vuoro/demo/event/ticket.issued", {"v": 1, "seq": 1})
    third = link.publish("vuoro/demo/state/hall", b"x" * 200, qos=1, retain=True)
    assert first.mid == 0 or first.is_published()
    assert not fake.readable(), "a publish left before the flush: writes are not gathered"

    link.flush()
    wire = fake.recv_once()  # one send of the whole batch: one read takes all of it
    assert wire == (publish(level, "vuoro/demo/reply/kiosk/K1", b'{"v":1}')
                    + publish(level, "vuoro/demo/event/ticket.issued", p.encode({"v": 1, "seq": 1}), 1, second.mid)
                    + publish(level, "vuoro/demo/state/hall", b"x" * 200, 1, third.mid, retain=True))
    assert not second.is_published() and not third.is_published()

    fake.send(puback(third.mid), puback(second.mid))  # both acknowledgements in one read
    run_until(link, lambda: second.is_published() and third.is_published(), "both PUBACKs to be taken")


@pytest.mark.parametrize("version", VERSIONS)
def test_manual_ack_sends_puback_only_when_the_owner_acks(fake, version):
    level = VERSIONS[version]
    deliveries: list[Delivery] = []
    link = driven_link(fake, version, subscriptions=["vuoro/demo/cmd/#"], on_delivery=deliveries.append)
    handshake(link, fake, level)

    # three packets in one TCP write: one poll must hand over all three
    fake.send(publish(level, "vuoro/demo/cmd/kiosk/K1", b'{"op":"issue"}', 1, 7),
              publish(level, "vuoro/demo/cmd/kiosk/K2", b"zero", 0),
              publish(level, "vuoro/demo/cmd/counter/C1", "ä".encode(), 1, 8))
    link.poll(DEADLINE_S)  # waits for the bytes, which are already there, then reads all they hold
    assert len(deliveries) == 3, "one poll handed over only part of what one read brought"
    connection = deliveries[0].connection
    assert deliveries == [Delivery("vuoro/demo/cmd/kiosk/K1", b'{"op":"issue"}', False, 1, 7, connection),
                          Delivery("vuoro/demo/cmd/kiosk/K2", b"zero", False, 0, 0, connection),
                          Delivery("vuoro/demo/cmd/counter/C1", "ä".encode(), False, 1, 8, connection)]
    link.poll(0)
    assert not fake.readable(), "a PUBACK left before the owner acknowledged"

    assert link.ack(deliveries[2]) and link.ack(deliveries[1])  # QoS 0: nothing to send
    assert not fake.readable(), "an ack left before the flush"
    link.flush()
    assert fake.recv_once() == puback(8)
    assert link.ack(deliveries[0])
    link.poll(0)
    assert fake.recv_once() == puback(7)


@pytest.mark.parametrize("version", VERSIONS)
def test_without_manual_ack_puback_leaves_on_arrival(fake, version):
    level = VERSIONS[version]
    received: list[tuple[str, bytes, bool]] = []
    link = driven_link(fake, version, subscriptions=["vuoro/demo/#"],
                       on_message=lambda *message: received.append(message))
    handshake(link, fake, level)
    fake.send(publish(level, "vuoro/demo/state/hall", b"{}", 1, 9, retain=True))
    assert next_packet(link, fake, "the PUBACK") == puback(9)
    assert received == [("vuoro/demo/state/hall", b"{}", True)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cut", [1, 2, 3, 5, 150])  # after the type byte, inside the length, the topic, the body
def test_a_packet_split_across_reads_is_put_together(fake, version, cut):
    level = VERSIONS[version]
    deliveries: list[Delivery] = []
    link = driven_link(fake, version, subscriptions=["vuoro/demo/cmd/#"], on_delivery=deliveries.append)
    handshake(link, fake, level)
    body = bytes(range(256)) + b"end"  # over 127 bytes: a two-byte remaining length
    whole = publish(level, "vuoro/demo/cmd/kiosk/K1", body, 1, 300)
    tail = publish(level, "vuoro/demo/cmd/kiosk/K2", b"next", 0)  # glued to the second part

    fake.send(whole[:cut])
    link.poll(0.05)
    link.poll(0)
    assert deliveries == [], "a delivery from part of a packet"
    fake.send(whole[cut:] + tail)
    run_until(link, lambda: len(deliveries) == 2, "the split packet and the one after it")
    assert [(d.topic, d.payload, d.qos, d.mid) for d in deliveries] == [
        ("vuoro/demo/cmd/kiosk/K1", body, 1, 300), ("vuoro/demo/cmd/kiosk/K2", b"next", 0, 0)]


@pytest.mark.parametrize("version", VERSIONS)
def test_an_ack_never_crosses_to_a_new_connection(fake, version):
    level = VERSIONS[version]
    deliveries: list[Delivery] = []
    link = driven_link(fake, version, subscriptions=["vuoro/demo/cmd/#"], on_delivery=deliveries.append)
    handshake(link, fake, level)
    fake.send(publish(level, "vuoro/demo/cmd/kiosk/K1", b"{}", 1, 5))
    run_until(link, lambda: deliveries, "the delivery")

    fake.drop()  # the broker goes away before the owner has committed; the link reconnects
    run_until(link, lambda: not link.connected, "the link to notice")
    handshake(link, fake, level)
    # packet id 5 on the new connection may name another message: the old one comes again instead
    assert link.ack(deliveries[0]) is False
    link.flush()
    assert not fake.readable(), "a PUBACK for an old connection's packet id"


@pytest.mark.parametrize("version", VERSIONS)
def test_stop_sends_disconnect_before_closing(fake, version):
    level = VERSIONS[version]
    link = driven_link(fake, version, will=(WILL_TOPIC, WILL))
    handshake(link, fake, level)
    link.publish("vuoro/demo/device/kiosk/K1", b"bye", qos=0)  # gathered, not yet flushed
    link.stop()
    assert fake.conn is not None
    fake.conn.settimeout(DEADLINE_S)
    wire = b""
    while chunk := fake.conn.recv(65536):  # to the end of the stream: the link closed its socket
        wire += chunk
    assert wire == publish(level, "vuoro/demo/device/kiosk/K1", b"bye") + packet(DISCONNECT, b"")
