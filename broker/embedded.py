"""The broker a hall server starts for itself when no --broker is given: one command, nothing else to run.

A private Mosquitto (broker/private_mosquitto.py) is the default. amqtt (broker/embedded_amqtt.py) is
only the fallback on a machine without the mosquitto binary, with a warning: it misroutes retained
messages and is several times slower. VUORO_EMBEDDED_BROKER=mosquitto|amqtt forces one (benchmarks,
tests, or a machine where Mosquitto cannot run).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from broker.embedded_amqtt import AmqttEmbedded
from broker.embedded_common import EmbeddedBroker, EmbeddedBrokerError, connect_address, free_port, port_is_free
from broker.private_mosquitto import PrivateMosquitto, mosquitto_binary

__all__ = ["KINDS", "AmqttEmbedded", "EmbeddedBroker", "EmbeddedBrokerError", "PrivateMosquitto", "connect_address",
           "free_port", "make_embedded", "port_is_free", "start_embedded"]

log = logging.getLogger(__name__)

KINDS = ("mosquitto", "amqtt")
CHOICE_ENV = "VUORO_EMBEDDED_BROKER"
FALLBACK_WARNING = ("no mosquitto binary found (PATH, /usr/sbin/mosquitto): falling back to the pure-Python amqtt "
                    "broker, which sends clients retained messages they did not subscribe to and carries a third of "
                    "the load; install the mosquitto package for the default broker (apt-get install mosquitto)")


def make_embedded(host: str, port: int, *, kind: str | None = None,
                  persistence: Path | None = None) -> EmbeddedBroker:
    """The broker to start (not started): `kind`, else $VUORO_EMBEDDED_BROKER, else Mosquitto when installed,
    else amqtt with a warning. Raises EmbeddedBrokerError for an unknown kind or a Mosquitto asked for and
    missing."""
    chosen = kind or os.environ.get(CHOICE_ENV) or None
    if chosen is not None and chosen not in KINDS:
        raise EmbeddedBrokerError(f"{CHOICE_ENV}={chosen!r}: the embedded broker is one of {', '.join(KINDS)}")
    if chosen == "amqtt":
        return AmqttEmbedded(host, port)
    if chosen is None and mosquitto_binary() is None:
        log.warning("%s", FALLBACK_WARNING)
        return AmqttEmbedded(host, port)
    return PrivateMosquitto(host, port, persistence=persistence)


def start_embedded(host: str, port: int, *, any_free_port: bool, kind: str | None = None,
                   persistence: Path | None = None) -> EmbeddedBroker:
    """The hall's own broker, started on host:port; with any_free_port, on a free port when that one is taken
    (a demo or a trial on a machine that already runs a broker on 1883). `persistence` is the file where a
    Mosquitto keeps sessions and retained messages across restarts (next to the hall's event log).
    Raises EmbeddedBrokerError."""
    if any_free_port and not port_is_free(host, port):
        taken, port = port, free_port(host)
        log.info("port %d is taken; the embedded broker listens on %d instead", taken, port)
    broker = make_embedded(host, port, kind=kind, persistence=persistence)
    broker.start()
    return broker
