"""What every broker the hall server can start for itself shares: its interface, its error, free ports."""

from __future__ import annotations

import abc
import socket

from broker.mqtt import BrokerAddress


class EmbeddedBrokerError(RuntimeError):
    """The broker could not start: port taken, binary failed, no answer in time. The message says which."""


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens on host:port. SO_REUSEADDR as the brokers set it: a port whose last connections
    linger in TIME_WAIT (a broker just restarted) is free for them, and so for us."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def connect_address(host: str, port: int) -> BrokerAddress:
    """Where a client on this machine reaches a broker bound to host: a wildcard bind through loopback."""
    return BrokerAddress("127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host), port)


class EmbeddedBroker(abc.ABC):
    """A broker the hall server starts and stops itself; `kind` says which ("mosquitto" or "amqtt")."""

    kind: str

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port

    @property
    def address(self) -> BrokerAddress:
        return connect_address(self.host, self.port)

    @abc.abstractmethod
    def start(self, timeout: float = 10.0) -> BrokerAddress:
        """Listen on host:port, or raise EmbeddedBrokerError."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop and free the port; harmless when not running."""
