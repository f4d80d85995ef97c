"""The embedded MQTT broker, so a hall runs from one command with nothing else installed.

amqtt is the choice: pure Python (installs from PyPI on a Raspberry Pi or a locked-down
municipal laptop, no compiler, no root, no system service), maintained, and it speaks
MQTT 3.1.1, which is all our protocol needs. It runs on its own asyncio loop in a thread
of the server process. Production halls use Mosquitto instead (`--broker`), which is
faster, persists sessions and enforces the per-device ACL.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from .mqtt import BrokerAddress

log = logging.getLogger(__name__)


class EmbeddedBrokerError(RuntimeError):
    pass


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def address(self) -> BrokerAddress:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("::1" if self.host == "::" else self.host)
        return BrokerAddress(host, self.port)

    def start(self, timeout: float = 10.0) -> BrokerAddress:
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._main, name="vuoro-embedded-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise EmbeddedBrokerError(f"the embedded broker did not start on {self.host}:{self.port} in {timeout}s")
        if self._error is not None:
            raise EmbeddedBrokerError(f"the embedded broker could not listen on {self.host}:{self.port}: "
                                      f"{self._error}") from self._error
        log.info("embedded MQTT broker (amqtt) listening on %s:%d", self.host, self.port)
        return self.address

    def _main(self) -> None:
        from amqtt.broker import Broker  # imported here: only this path pays for it

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 500}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def boot() -> None:
            self._broker = Broker(config, loop=loop)
            await self._broker.start()

        try:
            loop.run_until_complete(boot())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        loop.run_forever()
        pending = asyncio.all_tasks(loop)  # connection handlers amqtt left behind
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    def stop(self) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None or not loop.is_running():
            return

        async def shutdown() -> None:
            try:
                await asyncio.wait_for(broker.shutdown(), 5)
            except Exception as exc:  # shutting down anyway; the port must be freed below
                log.warning("embedded broker shutdown: %r", exc)
            for server in list(getattr(broker, "_servers", {}).values()):
                instance = getattr(server, "instance", None)
                if instance is not None:
                    instance.close()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        except Exception as exc:
            log.warning("embedded broker did not stop cleanly: %r", exc)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)


def start_embedded(host: str, port: int, *, any_free_port: bool) -> EmbeddedBroker:
    """The embedded broker, started on host:port; with any_free_port, on a free port when that one is taken
    (a demo or a trial on a machine that already runs a broker on 1883). Raises EmbeddedBrokerError."""
    if any_free_port and not port_is_free(host, port):
        taken, port = port, free_port(host)
        log.info("port %d is taken; the embedded broker listens on %d instead", taken, port)
    broker = EmbeddedBroker(host, port)
    broker.start()
    return broker
