"""`vuoro doctor`: ops' checks (doctor.py), handed the one check that needs a device's code, asking the kiosk's
printer for its paper. It lives in the command line's package, the only one that may import both."""

from __future__ import annotations

import argparse

from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from ops import doctor

add_arguments = doctor.add_arguments


def ask_printer(uri: str) -> tuple[str, str]:
    """The printer's state and message, asked now (kiosk.printer; ValueError for a URI it cannot use)."""
    from kiosk.printer import Printer

    printer = Printer(uri)
    try:
        status = printer.status()
    finally:
        printer.close()
    return status.state.value, status.message


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    return doctor.run(args, hall, address, ask_printer=ask_printer)
