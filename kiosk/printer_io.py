"""How ticket bytes and printer status travel: the transports behind kiosk.printer, and DLE EOT decoding.

As in python-escpos, one command set and thin transports: every byte transport receives the
same bytes from escpos_render; a transport only knows how to open, send, and (serial, tcp) ask
the printer's real-time status. python-escpos is imported by `load_escpos()` alone, once.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kiosk import escpos_render, png_render
from kiosk.printer_status import PrinterState, PrinterStatus, decode_status, status_query, valid_status_byte
from kiosk.ticket import Paper, TicketLayout

CONNECT_TIMEOUT = 3.0
MIN_WRITE_TIMEOUT = 10.0
USB_TIMEOUT_MS = 2000


class Unavailable(Exception):
    """The printer cannot be reached now; str() says why, in words IT can act on."""


@dataclass(frozen=True)
class PrinterSpec:
    """A parsed printer URI: which transport, where, and its options."""

    scheme: str
    target: str
    options: dict[str, str]
    paper: Paper
    codepage: str
    status_timeout: float


_escpos_lock = threading.Lock()


def load_escpos() -> None:
    """Import python-escpos once per process (the kiosk calls this at start, never per ticket).

    python-escpos parses its 600 kB printer database at import and caches the result in a fresh
    temporary directory each time; pointing the cache at ~/.cache/vuoro makes later starts
    ~0.35 s faster. An environment that set ESCPOS_CAPABILITIES_PICKLE_DIR keeps its own.
    """
    with _escpos_lock:
        if "escpos.printer" in sys.modules:
            return
        if "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
            cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vuoro" / "escpos"
            try:
                cache.mkdir(parents=True, exist_ok=True)
                os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(cache)
            except OSError:
                pass
        import escpos.printer  # noqa: F401


def _reason(exc: BaseException) -> str:
    """The useful line of a driver's exception (python-escpos wraps them in multi-line messages)."""
    cause = exc.__cause__ or exc.__context__ or exc
    text = str(cause).strip() or type(cause).__name__
    return text.splitlines()[-1].strip()


class Transport:
    """Where tickets go. `reads_status`: the printer can be asked (DLE EOT) before each ticket."""

    reads_status: ClassVar[bool] = False

    def __init__(self, spec: PrinterSpec) -> None:
        self.spec = spec

    def deliver(self, layout: TicketLayout) -> None:
        """Put the ticket out, or raise Unavailable."""
        raise NotImplementedError

    def read_status(self) -> PrinterStatus:
        """Never raises: an unreachable printer is an OFFLINE status."""
        raise NotImplementedError

    def close(self) -> None:
        """Drop any connection; the next call opens it again."""
        return None


class PreviewTransport(Transport):
    """preview://DIR: one PNG per ticket, for the demo and for halls without a printer."""

    def __init__(self, spec: PrinterSpec) -> None:
        super().__init__(spec)
        self.directory = Path(spec.target)

    def deliver(self, layout: TicketLayout) -> None:
        try:
            png_render.save_png(layout, self.directory)
        except OSError as exc:
            raise Unavailable(f"cannot write previews to {self.directory}: {exc.strerror or exc}") from exc

    def read_status(self) -> PrinterStatus:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return PrinterStatus(PrinterState.OFFLINE, f"cannot create {self.directory}: {exc.strerror or exc}")
        if not os.access(self.directory, os.W_OK):
            return PrinterStatus(PrinterState.OFFLINE, f"{self.directory} is not writable")
        return PrinterStatus(PrinterState.ONLINE, f"PNG previews in {self.directory}")


class ByteTransport(Transport):
    """A transport that takes the ESC/POS bytes: the ticket is rendered whole, then sent in one piece."""

    def deliver(self, layout: TicketLayout) -> None:
        self.send(escpos_render.to_bytes(layout, codepage=self.spec.codepage))

    def send(self, data: bytes) -> None:
        raise NotImplementedError


class FileTransport(ByteTransport):
    """file://PATH: raw bytes appended (a capture file, or a device node like /dev/usb/lp0)."""

    def __init__(self, spec: PrinterSpec) -> None:
        super().__init__(spec)
        self.path = Path(spec.target)

    def send(self, data: bytes) -> None:
        try:
            with self.path.open("ab") as stream:
                stream.write(data)
        except OSError as exc:
            raise Unavailable(f"cannot write to {self.path}: {exc.strerror or exc}") from exc

    def read_status(self) -> PrinterStatus:
        if self.path.exists():
            if os.access(self.path, os.W_OK):
                return PrinterStatus(PrinterState.UNKNOWN, f"raw bytes to {self.path}; a file reports no paper")
            return PrinterStatus(PrinterState.OFFLINE, f"{self.path} is not writable")
        if self.path.parts[:2] == ("/", "dev"):
            return PrinterStatus(PrinterState.OFFLINE, f"no device at {self.path}: is the printer plugged in?")
        if os.access(self.path.parent, os.W_OK):
            return PrinterStatus(PrinterState.UNKNOWN, f"raw bytes to {self.path} (not created yet)")
        return PrinterStatus(PrinterState.OFFLINE, f"cannot create {self.path}")


class EscposTransport(ByteTransport):
    """A python-escpos printer object as a connection; subclasses build it and ask status their way."""

    where = "printer"

    def __init__(self, spec: PrinterSpec) -> None:
        super().__init__(spec)
        self._esc: Any = None

    def _make(self) -> Any:
        """Build (not open) the python-escpos printer object."""
        raise NotImplementedError

    def _after_open(self, esc: Any) -> None:
        """Set the timeouts python-escpos does not take."""

    def _write(self, esc: Any, data: bytes) -> None:
        esc._raw(data)

    def _ask(self, esc: Any, n: int) -> int | None:
        """Send DLE EOT n; the answer byte, or None when nothing came within the status timeout."""
        raise NotImplementedError

    def _connect(self) -> Any:
        if self._esc is None:
            esc = self._make()
            try:
                esc.open()
            except Unavailable:
                raise
            except Exception as exc:  # drivers raise a zoo (DeviceNotFoundError, USBError, NoBackendError...)
                raise Unavailable(f"{self.where} cannot be opened: {_reason(exc)}") from exc
            self._after_open(esc)
            self._esc = esc
        return self._esc

    def send(self, data: bytes) -> None:
        esc = self._connect()
        try:
            self._write(esc, data)
        except Exception as exc:
            self.close()
            raise Unavailable(f"{self.where}: connection lost while printing: {_reason(exc)}") from exc

    def read_status(self) -> PrinterStatus:
        try:
            esc = self._connect()
        except Unavailable as exc:
            return PrinterStatus(PrinterState.OFFLINE, str(exc))
        if not self.reads_status:
            return PrinterStatus(PrinterState.UNKNOWN, f"{self.where} connected; it is not asked for paper status")
        try:
            printer = self._ask(esc, 1)
            if printer is None:
                return decode_status(None, None)
            paper = self._ask(esc, 4)
            offline = self._ask(esc, 2) if valid_status_byte(printer) and printer & 0x08 else None
            error = self._ask(esc, 3) if offline is not None and offline & 0x40 else None
        except Exception as exc:
            self.close()
            return PrinterStatus(PrinterState.OFFLINE, f"{self.where}: connection lost: {_reason(exc)}")
        return decode_status(printer, paper, offline, error)

    def close(self) -> None:
        esc, self._esc = self._esc, None
        if esc is None:
            return
        with suppress(Exception):  # python-escpos flushes first, which fails on a hung-up line...
            esc.close()
        device, esc._device = esc._device, False  # ...so close the port itself, and keep __del__ from retrying
        if device:
            with suppress(Exception):
                device.close()


class SerialTransport(EscposTransport):
    """serial:///dev/ttyUSB0?baudrate=19200 through python-escpos Serial (pyserial)."""

    reads_status = True

    def __init__(self, spec: PrinterSpec) -> None:
        super().__init__(spec)
        self.where = f"serial port {spec.target}"
        self.baudrate = _int_option(spec, "baudrate", 19200)
        self.dsrdtr = _bool_option(spec, "dsrdtr", False)
        self.xonxoff = _bool_option(spec, "xonxoff", False)

    def _make(self) -> Any:
        from escpos.printer import Serial

        return Serial(devfile=self.spec.target, baudrate=self.baudrate, timeout=self.spec.status_timeout,
                      dsrdtr=self.dsrdtr, xonxoff=self.xonxoff)

    def _after_open(self, esc: Any) -> None:
        esc.device.write_timeout = MIN_WRITE_TIMEOUT

    def _write(self, esc: Any, data: bytes) -> None:
        # a serial line is slow (19200 baud ~ 1.9 kB/s): allow the ticket's own transfer time twice over
        esc.device.write_timeout = max(MIN_WRITE_TIMEOUT, 2 * len(data) * 10 / self.baudrate)
        esc._raw(data)

    def _ask(self, esc: Any, n: int) -> int | None:
        device = esc.device
        device.reset_input_buffer()  # a late answer to an earlier query must not pass for this one
        esc._raw(status_query(n))
        device.timeout = self.spec.status_timeout
        answer = device.read(1)  # one byte, so an answer returns at once (python-escpos reads 16 and waits)
        return answer[0] if answer else None


class TcpTransport(EscposTransport):
    """tcp://host:9100 through python-escpos Network."""

    reads_status = True

    def __init__(self, spec: PrinterSpec) -> None:
        super().__init__(spec)
        host, _, port = spec.target.rpartition(":") if ":" in spec.target else (spec.target, "", "9100")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected tcp://HOST:PORT")
        self.host, self.port = host.strip("[]"), int(port)
        self.where = f"printer at {self.host}:{self.port}"
        self.connect_timeout = float(spec.options.get("connect_timeout", CONNECT_TIMEOUT))

    def _make(self) -> Any:
        from escpos.printer import Network

        return Network(host=self.host, port=self.port, timeout=self.connect_timeout)

    def _after_open(self, esc: Any) -> None:
        # a status query is 3 bytes waiting for a 1-byte answer: without this, Nagle's algorithm holds the
        # query until the printer's delayed ACK of the previous ticket (40 ms per ticket on Linux)
        esc.device.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _write(self, esc: Any, data: bytes) -> None:
        esc.device.settimeout(max(MIN_WRITE_TIMEOUT, len(data) / 10_000))
        esc._raw(data)

    def _ask(self, esc: Any, n: int) -> int | None:
        sock = esc.device
        sock.setblocking(False)
        try:
            while True:  # drop late answers to earlier queries
                if not sock.recv(64):
                    raise ConnectionError("the printer closed the connection")
        except BlockingIOError:
            pass
        sock.settimeout(self.spec.status_timeout)
        esc._raw(status_query(n))
        try:
            answer = sock.recv(1)
        except TimeoutError:
            return None
        if not answer:
            raise ConnectionError("the printer closed the connection")
        return answer[0]


class UsbTransport(EscposTransport):
    """usb://VID:PID through python-escpos Usb; pyusb and libusb are optional until a USB printer is used."""

    def __init__(self, spec: PrinterSpec) -> None:
        super().__init__(spec)
        try:
            vid, pid = (int(part, 16) for part in spec.target.split(":"))
        except ValueError:
            raise ValueError("expected usb://VID:PID in hex, like usb://04b8:0202") from None
        self.vid, self.pid = vid, pid
        self.in_ep = _int_option(spec, "in_ep", 0x82)
        self.out_ep = _int_option(spec, "out_ep", 0x01)
        self.where = f"USB printer {vid:04x}:{pid:04x}"

    def _make(self) -> Any:
        from escpos.printer import Usb

        if not Usb.is_usable():
            raise Unavailable(f"{self.where}: USB printing needs the pyusb package (pip install pyusb) and libusb")
        return Usb(idVendor=self.vid, idProduct=self.pid, timeout=USB_TIMEOUT_MS, in_ep=self.in_ep,
                   out_ep=self.out_ep)

    def _connect(self) -> Any:
        try:
            return super()._connect()
        except Unavailable as exc:
            if "not found" in str(exc).lower() or "cable" in str(exc).lower():
                raise Unavailable(f"{self.where} is not plugged in (or is switched off)") from exc
            raise


def _int_option(spec: PrinterSpec, name: str, default: int) -> int:
    try:
        return int(spec.options.get(name, str(default)), 0)
    except ValueError:
        raise ValueError(f"option {name} must be a whole number, got {spec.options[name]!r}") from None


def _bool_option(spec: PrinterSpec, name: str, default: bool) -> bool:
    raw = spec.options.get(name, str(default)).lower()
    if raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"option {name} must be true or false, got {raw!r}")
    return raw in ("1", "true", "yes", "on")


TRANSPORTS: dict[str, type[Transport]] = {"usb": UsbTransport, "serial": SerialTransport, "tcp": TcpTransport,
                                          "file": FileTransport, "preview": PreviewTransport}


def make_transport(spec: PrinterSpec) -> Transport:
    """The transport for a parsed URI; checks its options (ValueError) but opens nothing."""
    return TRANSPORTS[spec.scheme](spec)
