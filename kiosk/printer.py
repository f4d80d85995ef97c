"""The kiosk's printer, picked by a URI from the hall config or the command line.

    usb://04b8:0202                      python-escpos Usb (pyusb optional: a clear status if missing)
    serial:///dev/ttyUSB0?baudrate=19200 python-escpos Serial over pyserial
    tcp://10.0.0.5:9100                  python-escpos Network (raw port 9100)
    file:///dev/usb/lp0                  raw bytes appended to a file or device node
    preview://var/tickets                one PNG per ticket (the demo, halls without a printer)

Every URI takes ?paper=58|80 (default 80), ?codepage=CP858|CP850|CP865|CP437 and ?timeout=SECONDS
(how long a status query waits for an answer, default 0.5). An unknown option is an error, so a
typo fails at start; a printer that is missing, unplugged or silent is a *status*, never an
exception at start (the field lesson: "USB device not found" must not block the kiosk).

Status is read with DLE EOT (printer and paper sensor) on serial and tcp, the transports that
can answer. No answer reads as UNKNOWN, never as "plenty of paper" (python-escpos's own
paper_status() would say 2 when nothing answers), and a printer found silent once is not asked
again before each ticket, only by the monitor, so a silent printer costs no ticket a timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from kiosk import escpos_render
from kiosk.printer_io import (
    ByteTransport,
    PreviewTransport,
    PrinterSpec,
    Transport,
    Unavailable,
    load_escpos,
    make_transport,
)
from kiosk.printer_status import ALERT_STATES, PRINTABLE_STATES, PrinterState, PrinterStatus, decode_status
from kiosk.ticket import PAPERS, TicketLayout

log = logging.getLogger(__name__)

DEFAULT_STATUS_TIMEOUT = 0.5
COMMON_OPTIONS = {"paper", "codepage", "timeout"}
SCHEME_OPTIONS = {
    "usb": {"in_ep", "out_ep"},
    "serial": {"baudrate", "dsrdtr", "xonxoff"},
    "tcp": {"connect_timeout"},
    "file": set(),
    "preview": set(),
}

__all__ = ["ALERT_STATES", "PRINTABLE_STATES", "PaperOut", "Printer", "PrinterError", "PrinterOffline", "PrinterSpec",
           "PrinterState", "PrinterStatus", "StatusMonitor", "decode_status", "parse_printer_uri"]


class PrinterError(Exception):
    """The ticket was not printed; `status` says why, for the kiosk screen and the staff."""

    def __init__(self, status: PrinterStatus) -> None:
        super().__init__(status.message)
        self.status = status


class PaperOut(PrinterError):
    """Refused before sending: the roll is empty and the ticket would be printed into nothing."""


class PrinterOffline(PrinterError):
    """Refused or failed: the printer cannot be reached, or it says it is offline (cover open...)."""


def parse_printer_uri(uri: str) -> PrinterSpec:
    """Check a printer URI; ValueError names what is wrong (it comes from a config file IT edits)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEME_OPTIONS:
        raise ValueError(f"printer {uri!r}: the scheme must be one of {', '.join(f'{s}://' for s in SCHEME_OPTIONS)}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - COMMON_OPTIONS - SCHEME_OPTIONS[scheme])
    if unknown:
        raise ValueError(f"printer {uri!r}: unknown option {unknown[0]!r} "
                         f"(known: {', '.join(sorted(COMMON_OPTIONS | SCHEME_OPTIONS[scheme]))})")
    target = parts.netloc + parts.path if scheme in ("file", "preview", "serial") else parts.netloc
    if not target:
        raise ValueError(f"printer {uri!r}: says nothing about where the printer is")
    try:
        paper = PAPERS[int(options.get("paper", "80"))]
    except (ValueError, KeyError):
        raise ValueError(f"printer {uri!r}: paper must be 58 or 80 (mm), got {options.get('paper')!r}") from None
    try:
        codepage = escpos_render.check_codepage(options.get("codepage", escpos_render.DEFAULT_CODEPAGE))
        timeout = float(options.get("timeout", DEFAULT_STATUS_TIMEOUT))
    except ValueError as exc:
        raise ValueError(f"printer {uri!r}: {exc}") from None
    if not 0 < timeout <= 10:
        raise ValueError(f"printer {uri!r}: timeout must be between 0 and 10 seconds")
    spec = PrinterSpec(scheme, target, options, paper, codepage, timeout)
    try:
        make_transport(spec)  # scheme-specific checks (VID:PID, port, baud rate) now, not at print time; no I/O
    except ValueError as exc:
        raise ValueError(f"printer {uri!r}: {exc}") from None
    return spec


class Printer:
    """One ticket printer. Thread-safe: the status monitor and the printing thread share it.

    Nothing touches the hardware in the constructor; the first status() or print_ticket()
    connects, and a lost connection is re-opened on the next call.
    """

    def __init__(self, uri: str) -> None:
        self.spec = parse_printer_uri(uri)
        self.uri = uri
        self.paper = self.spec.paper
        self._transport: Transport = make_transport(self.spec)
        if isinstance(self._transport, ByteTransport):
            load_escpos()  # pay python-escpos's import here, at kiosk start, not at the first visitor's ticket
        self._lock = threading.RLock()  # re-entrant: a listener may read the printer's state
        self._status = PrinterStatus(PrinterState.UNKNOWN, "not checked yet")
        self._silent = False
        self._listeners: list[Callable[[PrinterStatus], None]] = []

    def __repr__(self) -> str:
        return f"Printer({self.uri!r})"

    @property
    def last_status(self) -> PrinterStatus:
        """The last status seen, without asking the printer: what a UI may read at any time."""
        return self._status

    def add_listener(self, listener: Callable[[PrinterStatus], None]) -> None:
        """Called whenever the status changes, on the thread that noticed it; it must not block (post and return)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[PrinterStatus], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def status(self) -> PrinterStatus:
        """Ask the printer now. Blocks up to the status timeout (or a connect timeout): not for a UI thread."""
        with self._lock:
            status = self._read_status()
            self._remember(status)
            return status

    def print_ticket(self, layout: TicketLayout) -> PrinterStatus:
        """Print one ticket, or raise PaperOut / PrinterOffline instead of printing into nothing."""
        if layout.paper != self.paper:
            raise ValueError(f"the ticket is laid out for {layout.paper.mm} mm paper, this printer has "
                             f"{self.paper.mm} mm: build it with printer.paper")
        with self._lock:
            status = self._status
            if self._transport.reads_status and not self._silent:
                status = self._read_status()
                self._remember(status)
            if status.state is PrinterState.PAPER_OUT:
                raise PaperOut(status)
            if status.state is PrinterState.OFFLINE and self._transport.reads_status:
                raise PrinterOffline(status)
            try:
                self._transport.deliver(layout)
            except Unavailable as exc:
                status = PrinterStatus(PrinterState.OFFLINE, str(exc))
                self._remember(status)
                raise PrinterOffline(status) from exc
            if status.state is PrinterState.OFFLINE:  # it was unreachable, and now took a ticket: look again
                status = self._read_status()
                self._remember(status)
            return status

    def close(self) -> None:
        with self._lock:
            self._transport.close()

    def _read_status(self) -> PrinterStatus:
        try:
            status = self._transport.read_status()
        except Exception as exc:  # a status read must never take the kiosk down; say what happened instead
            log.exception("printer %s: status read failed", self.uri)
            status = PrinterStatus(PrinterState.OFFLINE, f"status read failed: {exc}")
        self._silent = self._transport.reads_status and status.state is PrinterState.UNKNOWN
        return status

    def _remember(self, status: PrinterStatus) -> None:
        """Keep the status and tell the listeners if it changed, still under the lock so they hear it in order."""
        if status == self._status:
            return
        if status.state is not self._status.state:
            log.info("printer %s: %s (%s)", self.uri, status.state.value, status.message)
        self._status = status
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:  # a broken listener must not stop printing or polling
                log.exception("printer status listener failed")


class StatusMonitor:
    """Polls a printer every few seconds on its own thread and reports changes.

    The UI never waits for the printer: it reads `current` (the last status, no I/O) and gets
    `on_change` calls, which run on the monitor's or the printing thread (a Kivy UI hops to
    its main thread with Clock.schedule_once). `poke()` asks for a fresh reading now, e.g.
    when a visitor starts drawing a ticket; print_ticket checks again itself before printing.
    """

    def __init__(self, printer: Printer, on_change: Callable[[PrinterStatus], None], *,
                 interval: float = 5.0) -> None:
        self.printer = printer
        self.on_change = on_change
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> PrinterStatus:
        return self.printer.last_status

    def start(self) -> StatusMonitor:
        if self._thread is None:
            self.printer.add_listener(self.on_change)
            self._thread = threading.Thread(target=self._run, name=f"printer-status {self.printer.uri}", daemon=True)
            self._thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.printer.remove_listener(self.on_change)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.printer.status()
            except Exception:  # the monitor outlives any surprise from a driver
                log.exception("printer status poll failed")
            self._wake.wait(self.interval)
            self._wake.clear()


def preview_dir(printer: Printer) -> Path | None:
    """Where a preview:// printer writes (the demo shows the last ticket from there); None otherwise."""
    transport = printer._transport
    return transport.directory if isinstance(transport, PreviewTransport) else None


def ticket_bytes(layout: TicketLayout, printer: Printer) -> bytes:
    """The exact bytes this printer is sent for a ticket (tests, `--test-print` diagnostics)."""
    if not isinstance(printer._transport, ByteTransport):
        raise ValueError(f"{printer.uri} does not take ESC/POS bytes")
    return escpos_render.to_bytes(layout, codepage=printer.spec.codepage)
