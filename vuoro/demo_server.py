"""The hall server a demo runs (with its embedded broker), and how a demo tells its story: shared by the
windowed demo (vuoro/demo.py) and the headless one (vuoro/demo_headless.py), neither of which imports
the other's module for them. Imports the server's own modules only, lazily where they start threads.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from broker.config import HallConfig
from broker.mqtt import BrokerAddress


def tell(text: str, *, err: bool = False) -> None:
    """Print a line of the demo's story. Whoever reads it may go away (`vuoro demo | head`): the hall runs
    on, and what follows goes nowhere rather than into a BrokenPipeError."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (BrokenPipeError, ValueError):  # ValueError: the stream was closed under us
        _silence(stream)


def _silence(stream: TextIO) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # also takes the unwritten buffer, which Python flushes at exit
        os.close(devnull)
    except (OSError, ValueError):
        pass


class HallUnreachable(Exception):
    """The demo's hall server could not reach its broker."""


@contextmanager
def hall_server(args: argparse.Namespace, hall: HallConfig, db: Path, *,
                clock: Any = None) -> Iterator[tuple[Any, BrokerAddress]]:
    """The hall server (and, without --broker, the embedded broker) for as long as the block runs, found
    by the command line and devices as `vuoro server` is (cli.announced)."""
    from broker.embedded import EmbeddedBroker, start_embedded
    from broker.service import HallService
    from vuoro.cli import announced, listen_address

    embedded: EmbeddedBroker | None = None
    if args.broker:
        try:
            address = BrokerAddress.parse(args.broker)
        except ValueError as exc:
            raise HallUnreachable(str(exc)) from None
    else:  # as `vuoro server` does: 127.0.0.1:1883, or a free port if taken, unless --listen says where
        host, port, explicit = listen_address(args.listen)
        db.parent.mkdir(parents=True, exist_ok=True)
        embedded = start_embedded(host, port, any_free_port=not explicit, persistence=db.with_suffix(".mosquitto.db"))
        address = embedded.address
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        service = HallService(hall, db, address, always_open=True, clock=clock)
        try:
            if not service.start(timeout=15):
                raise HallUnreachable(f"the hall server could not reach the broker at {address.url}")
            with announced(args, hall, address):
                yield service, address
        finally:
            service.stop()
    finally:
        if embedded is not None:
            embedded.stop()


def stop_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
