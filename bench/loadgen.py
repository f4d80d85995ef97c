"""A lean MQTT 3.1.1 load generator on plain sockets, for the sustained-throughput measure of hall_bench.

Why not paho: 8 paho-based HallClients cost about 350 us of CPU per issue, nearly what the server
spends (~400 us). On a 2-core machine the load generator then takes the core the server needs, and
"durable issues/s" measures the generator as much as the server. Here one thread drives N kiosk
connections through `selectors`, every command is encoded before the clock starts, a receive takes
up to 64 KiB at once and is cut into packets by a small incremental parser, and the sends of one
round go out in a single `send()`. What is left per issue is one JSON decode of the reply and a few
dict operations.

Only what the bench needs is here: CONNECT (clean session), SUBSCRIBE, PUBLISH QoS 0/1 in both
directions, PUBACK, PINGREQ and DISCONNECT. `python bench/loadgen.py --selftest` checks the codec;
`python bench/loadgen.py --port P --hall H --topics a,b` drives a running hall on 127.0.0.1 by itself.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import selectors
import socket
import struct
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the broker package
from broker import protocol as p

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 4, 8, 9, 12, 13, 14
MAX_REMAINING = 268_435_455  # the largest remaining length four bytes can say
RECV_BYTES = 65536
KEEPALIVE_S = 60
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
MAX_PACKET_ID = 65535


class MqttError(RuntimeError):
    """The broker said no, sent something malformed, or closed the connection."""


# ---------------------------------------------------------------- packets out


def encode_length(n: int) -> bytes:
    """The remaining-length field: 7 bits per byte, low bits first, high bit = more bytes follow."""
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"remaining length {n} is out of range")
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        if not n:
            out.append(digit)
            return bytes(out)
        out.append(digit | 0x80)


def packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_length(len(body)) + body


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, keepalive: int = KEEPALIVE_S) -> bytes:
    """MQTT 3.1.1 (level 4), clean session, no will, no credentials: the bench's broker is anonymous."""
    return packet(CONNECT << 4, _string("MQTT") + bytes((4, 0x02)) + struct.pack("!H", keepalive)
                  + _string(client_id))


def subscribe_packet(packet_id: int, topic: str, qos: int = 1) -> bytes:
    return packet(SUBSCRIBE << 4 | 0x02, struct.pack("!H", packet_id) + _string(topic) + bytes((qos,)))


def publish_packet(topic: str | bytes, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    head = _string(topic) + (struct.pack("!H", packet_id) if qos else b"")
    return packet(PUBLISH << 4 | qos << 1, head + payload)


def puback_packet(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


# ---------------------------------------------------------------- packets in


def read_length(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """The remaining length starting at buf[pos]: (value, where the body starts), or None while incomplete.

    Raises MqttError on a fifth length byte: that stream is garbage, and waiting for more would hang.
    """
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, len(buf))):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    if len(buf) - pos >= 4:
        raise MqttError("malformed remaining length: more than 4 bytes")
    return None


class PacketReader:
    """Cuts a TCP byte stream into MQTT packets, whatever the chunk boundaries (the stream has none)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return the (first byte, body) of every packet now complete, in order."""
        buf = self._buf
        buf += data
        found: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while pos + 1 < end:
            header = read_length(buf, pos + 1)
            if header is None:
                break
            length, start = header
            if start + length > end:
                break
            found.append((buf[pos], bytes(buf[start:start + length])))
            pos = start + length
        if pos:
            del buf[:pos]
        return found

    @property
    def buffered(self) -> int:
        return len(self._buf)


def parse_publish(first: int, body: bytes) -> tuple[bytes, int, int, bytes]:
    """A PUBLISH body -> (topic, qos, packet id or 0, payload). The topic stays bytes: it is only compared."""
    qos = (first >> 1) & 0x03
    if qos == 3 or len(body) < 2:
        raise MqttError("malformed PUBLISH")
    topic_end = 2 + int.from_bytes(body[:2], "big")
    payload_start = topic_end + (2 if qos else 0)
    if payload_start > len(body):
        raise MqttError("malformed PUBLISH: topic longer than the packet")
    packet_id = int.from_bytes(body[topic_end:payload_start], "big") if qos else 0
    return body[2:topic_end], qos, packet_id, body[payload_start:]


def packet_id_of(body: bytes) -> int:
    return int.from_bytes(body[:2], "big")


# ---------------------------------------------------------------- results


@dataclass
class LoadResult:
    """What the generator saw. `ok` counts command ids with an ok reply, each at most once."""

    sent: int = 0
    replied: int = 0  # first replies, one per command id
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    ignored: int = 0  # on a reply topic: a duplicate, an id not ours, or not JSON
    # on topics never subscribed to: amqtt 0.12 sends each new client the retained messages that match
    # anyone's subscription, at connect
    strays: int = 0
    latencies: list[float] = field(default_factory=list)  # send -> first reply, seconds
    first_sent: float = math.nan  # time.perf_counter()
    last_reply: float = math.nan
    cpu_s: float = 0.0  # this thread's CPU from the first send to the end: the generator's own cost
    setup_cpu_s: float = 0.0  # encoding and connecting, before the clock starts
    problems: list[str] = field(default_factory=list)

    @property
    def unanswered(self) -> int:
        return self.sent - self.replied

    @property
    def seconds(self) -> float:
        return self.last_reply - self.first_sent

    def count_reply(self, reply: dict[str, object], sent_at: float, now: float) -> None:
        self.replied += 1
        self.last_reply = now
        self.latencies.append(now - sent_at)
        if reply.get("ok") is True:
            self.ok += 1
            return
        error = reply.get("error")
        code = str(error.get("code")) if isinstance(error, dict) else "?"
        self.errors[code] = self.errors.get(code, 0) + 1


# ---------------------------------------------------------------- one kiosk connection


class Kiosk:
    """One connection as kiosk/<device>: its encoded commands, what is in flight, its output buffer."""

    def __init__(self, topics: p.Topics, device: str, command_topics: Iterable[str], run_id: str) -> None:
        self.device = device
        self.client_id = f"loadgen-{run_id}-{device}"
        self.reply_topic = topics.reply("kiosk", device)
        self._reply_topic = self.reply_topic.encode()
        cmd = topics.cmd("kiosk", device)
        self.ids: list[str] = []
        self.packets: list[bytes] = []
        for i, topic in enumerate(command_topics):
            command_id = f"{run_id}-{device}-{i}"
            self.ids.append(command_id)
            self.packets.append(publish_packet(cmd, p.encode(p.command_payload("issue", command_id, topic=topic)),
                                               qos=1, packet_id=i % MAX_PACKET_ID + 1))
        self.next = 0
        self.pending: dict[str, float] = {}  # command id -> when it was sent
        self.unacked: set[int] = set()  # packet ids the broker has not PUBACKed yet
        self.out = bytearray()
        self.reader = PacketReader()
        self.sock: socket.socket | None = None
        self.stopped = False  # no new commands: deadline, or the connection is gone
        self.ignored = self.strays = 0  # see LoadResult
        self.last_out = 0.0

    @property
    def done(self) -> bool:
        return not self.pending and (self.stopped or self.next >= len(self.packets))

    def fill(self, window: int, now: float, result: LoadResult) -> None:
        """Top the window up. A packet id still waiting for its PUBACK is never reused (65535 sends ago)."""
        if self.stopped:
            return
        pending, packets, out = self.pending, self.packets, self.out
        while len(pending) < window and self.next < len(packets):
            packet_id = self.next % MAX_PACKET_ID + 1
            if packet_id in self.unacked:
                break
            self.unacked.add(packet_id)
            pending[self.ids[self.next]] = now
            out += packets[self.next]
            self.next += 1
            result.sent += 1
        if math.isnan(result.first_sent) and result.sent:
            result.first_sent = now

    def take(self, packets: list[tuple[int, bytes]], now: float, result: LoadResult) -> None:
        """Handle what the broker sent: PUBACKs free packet ids, replies end commands."""
        for first, body in packets:
            kind = first >> 4
            if kind == PUBLISH:
                self._on_publish(first, body, now, result)
            elif kind == PUBACK:
                self.unacked.discard(packet_id_of(body))
            elif kind != PINGRESP:
                raise MqttError(f"{self.device}: unexpected packet type {kind}")

    def _on_publish(self, first: int, body: bytes, now: float, result: LoadResult) -> None:
        topic, qos, packet_id, payload = parse_publish(first, body)
        if qos == 1:
            self.out += puback_packet(packet_id)  # the server replies at QoS 0 today; a QoS 1 reply is fine too
        elif qos == 2:
            raise MqttError(f"{self.device}: QoS 2 delivery on a QoS 1 subscription")
        if topic != self._reply_topic:
            self.strays += 1
            return
        try:
            reply = json.loads(payload)
        except ValueError:  # the server's bug to report, not a reason to stop counting the others
            self.ignored += 1
            return
        command_id = reply.get("id") if isinstance(reply, dict) else None
        sent_at = self.pending.pop(command_id, None) if isinstance(command_id, str) else None
        if sent_at is None:
            self.ignored += 1  # a duplicate (the server resends nothing today, but a broker may) or a stranger
            return
        result.count_reply(reply, sent_at, now)

    def flush(self) -> bool:
        """Write what the socket takes now; True while bytes are left (the caller then waits for writable)."""
        if self.out and self.sock is not None:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                return True
            del self.out[:sent]
        return bool(self.out)


# ---------------------------------------------------------------- connecting


def _expect(kiosk: Kiosk, sock: socket.socket, kind: int, deadline: float) -> bytes:
    """Block (until the deadline) for a packet of this type; its body. PUBLISHes meanwhile are strays
    (no command is out yet) and are handled as such, acknowledged if QoS 1; anything else is an error."""
    body: bytes | None = None
    while body is None:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            data = sock.recv(RECV_BYTES)
        except TimeoutError:
            raise MqttError(f"{kiosk.device}: no packet of type {kind} before the timeout") from None
        if not data:
            raise MqttError(f"{kiosk.device}: the broker closed the connection during the handshake")
        for first, payload in kiosk.reader.feed(data):
            if first >> 4 == kind and body is None:
                body = payload
            elif first >> 4 == PUBLISH:
                kiosk.take([(first, payload)], time.perf_counter(), LoadResult())
            else:
                raise MqttError(f"{kiosk.device}: expected packet type {kind}, got {first >> 4}")
    if kiosk.out:
        sock.sendall(kiosk.out)  # PUBACKs for QoS 1 strays
        kiosk.out.clear()
    return body


def connect(kiosk: Kiosk, host: str, port: int, timeout: float) -> socket.socket:
    """CONNECT, wait for CONNACK, SUBSCRIBE to the reply topic at QoS 1, wait for SUBACK; then non-blocking.

    The subscription is confirmed before any command goes out, so no reply can be published before
    the broker routes it to us.
    """
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(connect_packet(kiosk.client_id))
        connack = _expect(kiosk, sock, CONNACK, deadline)
        if len(connack) != 2 or connack[1] != 0:
            raise MqttError(f"{kiosk.device}: CONNACK refused, return code {connack[1:2].hex()}")
        sock.sendall(subscribe_packet(1, kiosk.reply_topic, qos=1))
        suback = _expect(kiosk, sock, SUBACK, deadline)
        if len(suback) != 3 or packet_id_of(suback) != 1 or suback[2] > 1:
            raise MqttError(f"{kiosk.device}: SUBACK refused {kiosk.reply_topic}: {suback.hex()}")
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    kiosk.sock = sock
    return sock


def close(kiosks: list[Kiosk]) -> None:
    """DISCONNECT politely (best effort, the socket may be full or gone) and close."""
    for kiosk in kiosks:
        if kiosk.sock is None:
            continue
        try:
            kiosk.sock.send(DISCONNECT_PACKET)
        except OSError:
            pass
        finally:
            kiosk.sock.close()
            kiosk.sock = None


# ---------------------------------------------------------------- the run


def spread(topics: list[str], offset: int, count: int) -> Iterator[str]:
    """The bench's topic spread: kiosk i starts 3*i topics in and walks round the list."""
    return (topics[(offset + n) % len(topics)] for n in range(count))


def make_kiosks(hall: str, topics: list[str], total: int, connections: int) -> list[Kiosk]:
    """`total` commands split as evenly as possible over kiosks K0..K<n-1>, all encoded now."""
    tree, run_id = p.Topics(hall), uuid.uuid4().hex[:8]
    shares = [total // connections + (1 if i < total % connections else 0) for i in range(connections)]
    return [Kiosk(tree, f"K{i}", spread(topics, i * 3, share), run_id) for i, share in enumerate(shares)]


def run(host: str, port: int, hall: str, topics: list[str], total: int, *, connections: int = 8,
        window: int = 50, send_for_s: float = 300.0, drain_s: float = 10.0,
        connect_timeout_s: float = 10.0) -> LoadResult:
    """Send `total` issue commands, `window` in flight per connection; stop sending after `send_for_s`,
    stop waiting `drain_s` later. Raises MqttError if a connection cannot be set up."""
    if not topics or connections < 1 or window < 1 or total < 0:
        raise ValueError("need topics, at least one connection, a window of at least 1 and total >= 0")
    result = LoadResult()
    cpu_start = time.thread_time()
    kiosks = make_kiosks(hall, topics, total, connections)
    selector = selectors.DefaultSelector()
    try:
        for kiosk in kiosks:
            selector.register(connect(kiosk, host, port, connect_timeout_s), selectors.EVENT_READ, kiosk)
        result.setup_cpu_s = time.thread_time() - cpu_start
        cpu_start = time.thread_time()
        _drive(kiosks, selector, window, send_for_s, drain_s, result)
    finally:
        result.cpu_s = time.thread_time() - cpu_start
        selector.close()
        close(kiosks)
        result.ignored = sum(kiosk.ignored for kiosk in kiosks)
        result.strays = sum(kiosk.strays for kiosk in kiosks)
    if result.unanswered:
        result.problems.append(f"{result.unanswered} commands never answered")
    return result


def _drive(kiosks: list[Kiosk], selector: selectors.BaseSelector, window: int, send_for_s: float,
           drain_s: float, result: LoadResult) -> None:
    """The timed part: one select loop over every connection until all commands are answered or time is up."""
    started = time.monotonic()
    stop_sending, give_up = started + send_for_s, started + send_for_s + drain_s
    now = time.perf_counter()
    for kiosk in kiosks:
        kiosk.fill(window, now, result)
        _flush(kiosk, selector)
    next_ping = started + KEEPALIVE_S / 2
    while not all(kiosk.done for kiosk in kiosks):
        clock = time.monotonic()
        if clock >= give_up:
            return
        if clock >= stop_sending and not all(kiosk.stopped for kiosk in kiosks):
            result.problems.append(f"stopped sending after {send_for_s:g}s with {result.sent} of "
                                   f"{sum(len(k.packets) for k in kiosks)} commands sent")
            for kiosk in kiosks:
                kiosk.stopped = True
        if clock >= next_ping:
            _ping_idle(kiosks, clock, selector)
            next_ping = clock + KEEPALIVE_S / 2
        for key, events in selector.select(min(0.5, give_up - clock)):
            _serve(key.data, events, window, selector, result)


def _serve(kiosk: Kiosk, events: int, window: int, selector: selectors.BaseSelector, result: LoadResult) -> None:
    """One ready connection: read one big chunk, handle its packets, refill the window, write."""
    if events & selectors.EVENT_READ and kiosk.sock is not None:
        try:
            data = kiosk.sock.recv(RECV_BYTES)
        except BlockingIOError:
            data = None
        if data == b"":
            _lost(kiosk, selector, result)
            return
        if data:
            now = time.perf_counter()
            kiosk.take(kiosk.reader.feed(data), now, result)
            kiosk.fill(window, now, result)
    _flush(kiosk, selector)


def _flush(kiosk: Kiosk, selector: selectors.BaseSelector) -> None:
    if kiosk.sock is None:
        return
    kiosk.last_out = time.monotonic() if kiosk.out else kiosk.last_out
    mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if kiosk.flush() else 0)
    if selector.get_key(kiosk.sock).events != mask:
        selector.modify(kiosk.sock, mask, kiosk)


def _lost(kiosk: Kiosk, selector: selectors.BaseSelector, result: LoadResult) -> None:
    """The broker closed this connection: what it had in flight stays unanswered, and counts as such."""
    result.problems.append(f"{kiosk.device}: the broker closed the connection with {len(kiosk.pending)} "
                           "commands in flight")
    assert kiosk.sock is not None
    selector.unregister(kiosk.sock)
    kiosk.sock.close()
    kiosk.sock = None
    kiosk.stopped = True
    kiosk.pending.clear()  # no reply can come any more: stop waiting (result.unanswered still counts them)


def _ping_idle(kiosks: list[Kiosk], clock: float, selector: selectors.BaseSelector) -> None:
    """Keepalive: a connection that sent nothing for half the keepalive sends PINGREQ (only a long drain)."""
    for kiosk in kiosks:
        if kiosk.sock is not None and clock - kiosk.last_out >= KEEPALIVE_S / 2:
            kiosk.out += PINGREQ_PACKET
            _flush(kiosk, selector)


# ---------------------------------------------------------------- self-test


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def _chunks(data: bytes, rng: random.Random, largest: int) -> Iterator[bytes]:
    pos = 0
    while pos < len(data):
        step = rng.randint(1, largest)
        yield data[pos:pos + step]
        pos += step


def _selftest_lengths() -> None:
    for n, size in [(0, 1), (1, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (2_097_151, 3),
                    (2_097_152, 4), (MAX_REMAINING, 4)]:
        raw = encode_length(n)
        _check(len(raw) == size, f"length {n} takes {size} bytes, not {len(raw)}")
        _check(read_length(b"\x30" + raw, 1) == (n, 1 + size), f"length {n} round trip")
        _check(read_length(b"\x30" + raw[:-1], 1) is None, f"length {n} cut short is incomplete")
    for bad in (-1, MAX_REMAINING + 1):
        try:
            encode_length(bad)
        except ValueError:
            continue
        raise AssertionError(f"length {bad} was encoded")
    try:
        PacketReader().feed(b"\x30\xff\xff\xff\xff\x01")
    except MqttError:
        return
    raise AssertionError("a five-byte remaining length was accepted")


def _selftest_stream(rng: random.Random) -> None:
    """Packets whose remaining length takes 1, 2, 3 and 4 bytes, in one stream, cut at random places;
    the small ones also fed one byte at a time."""
    sizes = [0, 5, 120, 125, 200, 16_000, 16_400, 70_000, 2_100_000]
    sent = [(f"t/{i}".encode(), rng.randbytes(size), i % 2, i + 1) for i, size in enumerate(sizes)]
    encoded = [publish_packet(topic, body, qos, pid) for topic, body, qos, pid in sent]
    length_bytes = [start - 1 for _, start in (read_length(e, 1) or (0, 0) for e in encoded)]
    _check(length_bytes == [1, 1, 1, 2, 2, 2, 3, 3, 4], f"every size of remaining length, not {length_bytes}")
    small = b"".join(encoded[:7])
    stream = b"".join(encoded) + puback_packet(513) + PINGREQ_PACKET
    for data, largest, count in [(small, 1, 7), (small, 7, 7), (stream, 300, 11), (stream, RECV_BYTES, 11),
                                 (stream, len(stream), 11)]:
        reader, got = PacketReader(), []
        for piece in _chunks(data, rng, largest):
            got += reader.feed(piece)
        _check(len(got) == count and reader.buffered == 0, f"chunks up to {largest}: {len(got)} packets")
        for (first, body), want in zip(got, sent, strict=False):
            _check(parse_publish(first, body) == (want[0], want[2], want[3] if want[2] else 0, want[1]),
                   f"chunks up to {largest}: PUBLISH {want[0]!r} of {len(want[1])} bytes")
        if count == 11:
            _check(got[-2] == (PUBACK << 4, b"\x02\x01") and packet_id_of(got[-2][1]) == 513, "PUBACK")
            _check(got[-1] == (PINGREQ << 4, b""), "an empty body")


def _selftest_replies() -> None:
    """Each command id counts once: a duplicate or unknown reply is ignored, an error is not ok."""
    kiosk = Kiosk(p.Topics("bench"), "K0", ["a", "b", "c"], "test")
    result = LoadResult()
    kiosk.fill(2, 1.0, result)
    _check((result.sent, len(kiosk.pending), kiosk.unacked) == (2, 2, {1, 2}), "window of 2")
    first, body = PacketReader().feed(bytes(kiosk.out))[0]
    topic, qos, pid, payload = parse_publish(first, body)
    _check((topic, qos, pid) == (b"vuoro/bench/cmd/kiosk/K0", 1, 1), "command topic and packet id")
    _check(json.loads(payload) == {"v": 1, "id": "test-K0-0", "op": "issue", "topic": "a"}, "command payload")
    kiosk.out.clear()

    def reply(command_id: str, ok: bool, qos: int = 0, pid: int = 0, to: str = "vuoro/bench/reply/kiosk/K0") -> bytes:
        body = p.reply_ok(command_id, {}) if ok else p.reply_error(command_id, "hall_closed", "closed")
        return publish_packet(to, p.encode(body), qos, pid)

    stream = (puback_packet(1) + reply("test-K0-0", True) + reply("test-K0-0", True) + reply("nobody", True)
              + publish_packet("vuoro/bench/reply/kiosk/K0", b"{not json")
              + reply("test-K0-1", False, qos=1, pid=77) + reply("test-K0-9", True, to="elsewhere"))
    kiosk.take(PacketReader().feed(stream), 1.5, result)
    _check((result.ok, result.replied, result.errors) == (1, 2, {"hall_closed": 1}), f"counted {result}")
    _check((kiosk.ignored, kiosk.strays) == (3, 1), "a duplicate, an unknown id and garbage ignored, one stray")
    _check(bytes(kiosk.out) == puback_packet(77) and kiosk.unacked == {2}, "PUBACK for a QoS 1 reply")
    _check(result.latencies == [0.5, 0.5] and result.first_sent == 1.0 and result.last_reply == 1.5, "timing")
    kiosk.fill(2, 2.0, result)
    _check(result.sent == 3 and kiosk.done is False and kiosk.next == 3, "the last command went out")


def selftest() -> None:
    """The codec and the counting, without a broker: fast enough to run before every bench."""
    started = time.perf_counter()
    _selftest_lengths()
    _selftest_stream(random.Random(7))
    _selftest_replies()
    print(f"loadgen selftest: ok in {time.perf_counter() - started:.2f} s")


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--selftest", action="store_true", help="check the packet codec and exit")
    parser.add_argument("--port", type=int, help="the hall's broker on 127.0.0.1")
    parser.add_argument("--hall", default="bench")
    parser.add_argument("--topics", default="general", help="comma-separated topic ids to issue on")
    parser.add_argument("--issues", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args(argv)
    if args.selftest:
        selftest()
        return 0
    if args.port is None:
        parser.error("--port (or --selftest) is required")
    result = run("127.0.0.1", args.port, args.hall, args.topics.split(","), args.issues,
                 connections=args.connections, window=args.window)
    rate = result.ok / result.seconds if result.seconds > 0 else math.nan
    print(f"{result.ok} ok of {result.sent} sent in {result.seconds:.2f} s: {rate:,.0f} /s; errors {result.errors}, "
          f"ignored {result.ignored}, strays {result.strays}; "
          f"loadgen CPU {result.cpu_s / max(result.ok, 1) * 1e6:.0f} us per ok issue")
    for problem in result.problems:
        print("  " + problem)
    return 0 if result.ok == args.issues else 1


if __name__ == "__main__":
    raise SystemExit(main())
