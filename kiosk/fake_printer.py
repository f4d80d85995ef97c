"""A fake ESC/POS receipt printer on a pseudo-terminal and a TCP socket, for tests and for IT.

Like OctoPrint's virtual printer it sits behind the real transport (pyserial opens the pty's
slave path; python-escpos Network connects to the port), records every byte, answers the
real-time status queries DLE EOT 1-4 with the status bytes an Epson printer sends, and can be
told to run low on paper, run out, open its cover, fall silent or disconnect. It parses the
byte stream as a printer does (a raster image's data is data, not commands), which is also
what the tests use to check the tickets they printed.

    python -m kiosk.fake_printer      # prints the serial:// and tcp:// URIs to point a kiosk at
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

ESC, GS, DLE, FS, LF = 0x1B, 0x1D, 0x10, 0x1C, 0x0A
# ESC x -> number of parameter bytes (fixed-length commands; python-escpos and common tools use these)
_ESC_ARGS = {ord(c): n for c, n in {"@": 0, "2": 0, "i": 0, "m": 0, "t": 1, "a": 1, "E": 1, "M": 1, "!": 1, "-": 1,
                                     "d": 1, "J": 1, "3": 1, "G": 1, "{": 1, "V": 1, "R": 1, "r": 1, " ": 1, "U": 1,
                                     "c": 2, "B": 2, "p": 3}.items()}
_GS_ARGS = {ord(c): n for c, n in {"!": 1, "B": 1, "b": 1, "h": 1, "w": 1, "H": 1, "f": 1, "a": 1, "r": 1, "I": 1,
                                    "L": 2, "W": 2, "P": 2}.items()}
_NAMES = {(ESC, ord("@")): "init", (ESC, ord("t")): "codepage", (ESC, ord("a")): "align", (ESC, ord("E")): "bold",
          (ESC, ord("M")): "font", (ESC, ord("!")): "mode", (ESC, ord("d")): "feed", (GS, ord("!")): "size",
          (GS, ord("V")): "cut", (GS, ord("v")): "raster", (GS, ord("(")): "graphics2d"}


@dataclass(frozen=True)
class Command:
    """One parsed unit of the stream: `name` ('text', 'lf', 'init', 'codepage', 'raster', 'qr', 'cut', ...),
    `raw` its bytes, `args` its parameter bytes (for text: the encoded characters)."""

    name: str
    raw: bytes
    args: bytes = b""


def _length(data: bytes, i: int) -> int | None:
    """Length of the command starting at i, or None if the buffer ends inside it."""
    n = len(data)
    first = data[i]
    if first in (ESC, GS, DLE, FS) and i + 1 >= n:
        return None
    if first == ESC:
        op = data[i + 1]
        if op == ord("*"):  # ESC * m nL nH data
            if i + 5 > n:
                return None
            dots = data[i + 3] | data[i + 4] << 8
            return 5 + dots * (3 if data[i + 2] in (32, 33) else 1)
        return 2 + _ESC_ARGS.get(op, 0)
    if first == GS:
        op = data[i + 1]
        if op == ord("V"):  # GS V m [n]
            if i + 3 > n:
                return None
            return 4 if data[i + 2] in (65, 66, 97, 98, 103, 104) else 3
        if op == ord("v"):  # GS v 0 m xL xH yL yH data
            if i + 8 > n:
                return None
            return 8 + (data[i + 4] | data[i + 5] << 8) * (data[i + 6] | data[i + 7] << 8)
        if op == ord("("):  # GS ( fn pL pH data
            if i + 5 > n:
                return None
            return 5 + (data[i + 3] | data[i + 4] << 8)
        if op == ord("k"):  # barcode: GS k m ... NUL (m <= 6) or GS k m n data
            if i + 4 > n:
                return None
            if data[i + 2] <= 6:
                end = data.find(b"\x00", i + 3)
                return None if end < 0 else end - i + 1
            return 4 + data[i + 3]
        return 2 + _GS_ARGS.get(op, 0)
    if first == DLE:
        return 3 if data[i + 1] in (0x04, 0x05, 0x14) else 2
    if first == FS:
        return 2
    return 1


def parse_escpos(data: bytes, *, partial: bool = False) -> tuple[list[Command], int]:
    """Split a byte stream into commands and text runs; returns (commands, bytes consumed).

    With partial=True a command cut off at the end of the buffer is left for the next call
    (a stream arriving in pieces); otherwise it is returned as 'truncated'.
    """
    commands: list[Command] = []
    i, n = 0, len(data)
    while i < n:
        first = data[i]
        if first == LF:
            commands.append(Command("lf", data[i:i + 1]))
            i += 1
            continue
        if first not in (ESC, GS, DLE, FS):
            j = i
            while j < n and data[j] not in (ESC, GS, DLE, FS, LF):
                j += 1
            commands.append(Command("text", data[i:j], data[i:j]))
            i = j
            continue
        length = _length(data, i)
        if length is None or i + length > n:
            if partial:
                break
            commands.append(Command("truncated", data[i:], data[i:]))
            i = n
            break
        raw = data[i:i + length]
        name = _NAMES.get((first, raw[1]), "other")
        if first == DLE and raw[1] == 0x04:
            name = "status_query"
        elif name == "graphics2d" and raw[2:3] == b"k" and raw[5:7] == b"1P":  # GS ( k pL pH cn=49 fn=80: QR data
            name = "qr"
        commands.append(Command(name, raw, raw[2:]))
        i += length
    return commands, i


class Paper(StrEnum):
    OK = "ok"
    NEAR_END = "near_end"
    OUT = "out"


class FakeEscposPrinter:
    """Serves a pty and/or a TCP port on 127.0.0.1; use as a context manager or start()/stop()."""

    def __init__(self, *, serial: bool = True, tcp: bool = True) -> None:
        self.paper = Paper.OK
        self.cover_open = False
        self.silent = False
        self.serial_path: str | None = None
        self.tcp_port: int | None = None
        self.queries: list[int] = []
        self._want_serial, self._want_tcp = serial, tcp
        self._received: dict[str, bytearray] = {"serial": bytearray(), "tcp": bytearray()}
        self._pending: dict[object, bytes] = {}
        self._lock = threading.Condition()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._master: int | None = None
        self._slave: int | None = None
        self._listener: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._running = False
        self._disconnect_now = False

    # ------------------------------------------------------------ life cycle

    def start(self) -> FakeEscposPrinter:
        if self._want_serial:
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)  # no echo, no line discipline: bytes pass as they are
            self.serial_path = os.ttyname(self._slave)
            self._selector.register(self._master, selectors.EVENT_READ, "serial")
        if self._want_tcp:
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(4)
            self.tcp_port = self._listener.getsockname()[1]
            self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="fake-escpos-printer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running = False
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._close_channels()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self) -> FakeEscposPrinter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def serial_uri(self) -> str:
        return f"serial://{self.serial_path}"

    @property
    def tcp_uri(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp_port}"

    # ------------------------------------------------------------ faults

    def set_paper(self, paper: Paper | str) -> None:
        self.paper = Paper(paper)

    def disconnect(self) -> None:
        """Pull the cable: the pty hangs up and the TCP port closes; the fake stays gone."""
        with self._lock:
            self._disconnect_now = True
        os.write(self._wake_w, b"d")
        deadline = time.monotonic() + 2
        while (self._master is not None or self._listener is not None) and time.monotonic() < deadline:
            time.sleep(0.005)

    # ------------------------------------------------------------ what it got

    def received(self, channel: str | None = None) -> bytes:
        with self._lock:
            if channel is not None:
                return bytes(self._received[channel])
            return bytes(self._received["serial"] + self._received["tcp"])

    def commands(self, channel: str | None = None) -> list[Command]:
        return parse_escpos(self.received(channel))[0]

    def clear(self) -> None:
        with self._lock:
            for buffer in self._received.values():
                buffer.clear()
            self.queries.clear()

    def wait_for(self, predicate: Callable[[bytes], bool] | bytes, timeout: float = 3.0,
                 channel: str | None = None) -> bool:
        """Wait until the received bytes satisfy predicate (or contain the given bytes)."""
        test = predicate if callable(predicate) else (lambda data: predicate in data)
        deadline = time.monotonic() + timeout
        with self._lock:
            while not test(self.received(channel)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def status_byte(self, n: int) -> int:
        """What an Epson printer answers to DLE EOT n in the current state (bits 1 and 4 always set)."""
        out = self.paper is Paper.OUT
        if n == 1:
            return 0x12 | (0x08 if out or self.cover_open else 0)
        if n == 2:
            return 0x12 | (0x04 if self.cover_open else 0) | (0x20 if out else 0)
        if n == 3:
            return 0x12
        # n == 4: bits 2-3 near-end sensor, bits 5-6 end sensor; an empty roll trips both
        return 0x12 | (0x0C if self.paper is not Paper.OK else 0) | (0x60 if out else 0)

    # ------------------------------------------------------------ the loop

    def _serve(self) -> None:
        while self._running:
            for key, _ in self._selector.select(timeout=0.5):
                tag = key.data
                if tag == "wake":
                    os.read(self._wake_r, 64)
                    if self._disconnect_now:
                        self._close_channels()
                elif tag == "accept":
                    assert self._listener is not None
                    client, _ = self._listener.accept()
                    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answer status bytes at once
                    self._clients.append(client)
                    self._selector.register(client, selectors.EVENT_READ, "tcp")
                elif tag == "serial":
                    self._read_serial()
                else:
                    self._read_tcp(key.fileobj)  # type: ignore[arg-type]

    def _read_serial(self) -> None:
        assert self._master is not None
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: nobody has the slave open right now
            return
        self._feed("serial", self._master, chunk)

    def _read_tcp(self, client: socket.socket) -> None:
        try:
            chunk = client.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self._selector.unregister(client)
            self._clients.remove(client)
            self._pending.pop(client, None)
            client.close()
            return
        self._feed("tcp", client, chunk)

    def _feed(self, channel: str, source: int | socket.socket, chunk: bytes) -> None:
        with self._lock:
            self._received[channel] += chunk
            self._lock.notify_all()
        data = self._pending.pop(source, b"") + chunk
        commands, used = parse_escpos(data, partial=True)
        if used < len(data):
            self._pending[source] = data[used:]
        for command in commands:
            if command.name == "status_query":
                n = command.args[0]
                with self._lock:
                    self.queries.append(n)
                if not self.silent and 1 <= n <= 4:
                    self._answer(source, bytes([self.status_byte(n)]))

    def _answer(self, source: int | socket.socket, reply: bytes) -> None:
        try:
            if isinstance(source, socket.socket):
                source.sendall(reply)
            else:
                os.write(source, reply)
        except OSError:
            pass

    def _close_channels(self) -> None:
        for client in self._clients:
            self._selector.unregister(client)
            client.close()
        self._clients.clear()
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        if self._master is not None:
            self._selector.unregister(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None


def main() -> None:
    """Run a fake printer until Ctrl-C, printing what it receives (IT can point a kiosk at it)."""
    with FakeEscposPrinter() as fake:
        print(f"fake printer on {fake.serial_uri} and {fake.tcp_uri}; Ctrl-C to stop", flush=True)
        seen = 0
        try:
            while True:
                time.sleep(0.5)
                data = fake.received()
                if len(data) > seen:
                    cuts = sum(1 for c in parse_escpos(data)[0] if c.name == "cut")
                    print(f"{len(data)} bytes received, {cuts} tickets cut, status queries {fake.queries[-4:]}")
                    seen = len(data)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
