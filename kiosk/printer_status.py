"""Printer states and the ESC/POS real-time status bytes (DLE EOT n) they are read from. Pure: no I/O.

Kept apart from the transports so the decoding is tested byte by byte, and so the kiosk model,
the device status topic and IT's messages share one vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DLE_EOT = b"\x10\x04"


def status_query(n: int) -> bytes:
    """DLE EOT n: 1 printer, 2 offline cause, 3 error cause, 4 roll paper sensor."""
    if n not in (1, 2, 3, 4):
        raise ValueError(f"DLE EOT {n} is not a status query this kiosk uses")
    return DLE_EOT + bytes([n])


class PrinterState(StrEnum):
    ONLINE = "online"  # answering, paper ok
    PAPER_NEAR_END = "paper_near_end"  # still printing; staff should change the roll soon
    PAPER_OUT = "paper_out"  # refuses tickets: the kiosk shows the number on screen
    OFFLINE = "offline"  # unreachable, or says it is offline (cover open, cutter jam)
    UNKNOWN = "unknown"  # reachable, but did not or cannot tell (silent printer, file, USB)


PRINTABLE_STATES = frozenset({PrinterState.ONLINE, PrinterState.PAPER_NEAR_END, PrinterState.UNKNOWN})
ALERT_STATES = frozenset({PrinterState.PAPER_NEAR_END, PrinterState.PAPER_OUT, PrinterState.OFFLINE})


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer said, and a message for IT and the staff (the kiosk screen translates the state)."""

    state: PrinterState
    message: str

    @property
    def can_print(self) -> bool:
        return self.state in PRINTABLE_STATES

    @property
    def code(self) -> str:
        """The kiosk model's word for it (kiosk.model_types.PRINTER_STATES): ok, near_end, out, offline, unknown."""
        return {PrinterState.ONLINE: "ok", PrinterState.PAPER_NEAR_END: "near_end",
                PrinterState.PAPER_OUT: "out"}.get(self.state, self.state.value)

    @property
    def paper(self) -> str | None:
        """'ok', 'near_end', 'out', or None when nobody knows."""
        return {PrinterState.ONLINE: "ok", PrinterState.PAPER_NEAR_END: "near_end",
                PrinterState.PAPER_OUT: "out"}.get(self.state)

    def payload(self) -> dict[str, Any]:
        """The printer part of the kiosk's retained device status."""
        return {"state": self.state.value, "paper": self.paper, "message": self.message}


def valid_status_byte(byte: int | None) -> bool:
    """An ESC/POS status byte has bit 1 and bit 4 set, bits 0 and 7 clear; anything else is noise."""
    return byte is not None and byte & 0x93 == 0x12


def decode_status(printer: int | None, paper: int | None, offline_cause: int | None = None,
                  error_cause: int | None = None) -> PrinterStatus:
    """Epson DLE EOT answers -> a status: n=1 printer, n=4 roll paper sensor, n=2/n=3 why it is offline."""
    if printer is None:
        return PrinterStatus(PrinterState.UNKNOWN, "the printer does not answer status queries")
    if not valid_status_byte(printer):
        return PrinterStatus(PrinterState.UNKNOWN, f"unreadable status answer 0x{printer:02x}")
    if valid_status_byte(paper) and paper is not None and paper & 0x60:
        return PrinterStatus(PrinterState.PAPER_OUT, "the paper roll is empty")
    if printer & 0x08:
        if valid_status_byte(offline_cause) and offline_cause is not None:
            if offline_cause & 0x20:
                return PrinterStatus(PrinterState.PAPER_OUT, "printing stopped: the paper ran out")
            if offline_cause & 0x04:
                return PrinterStatus(PrinterState.OFFLINE, "the printer cover is open")
            if offline_cause & 0x40:
                cutter = valid_status_byte(error_cause) and error_cause is not None and error_cause & 0x08
                return PrinterStatus(PrinterState.OFFLINE, "the paper cutter is jammed" if cutter
                                     else "the printer reports an error")
        return PrinterStatus(PrinterState.OFFLINE, "the printer reports itself offline")
    if not valid_status_byte(paper):
        return PrinterStatus(PrinterState.UNKNOWN, "online, but the paper sensor does not answer")
    if paper is not None and paper & 0x0C:
        return PrinterStatus(PrinterState.PAPER_NEAR_END, "the paper is running out: change the roll soon")
    return PrinterStatus(PrinterState.ONLINE, "online, paper ok")
