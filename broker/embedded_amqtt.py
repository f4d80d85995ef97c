"""amqtt, the pure-Python fallback broker, run on its own asyncio loop in a thread of the server process.

Only used when no Mosquitto binary is installed (broker/embedded.py chooses): amqtt 0.12 sends a newly
connected client the retained messages of other clients' subscriptions (tests/test_broker_routing.py),
breaks under bursts and carries a third of the load Mosquitto does. It installs from PyPI with no
compiler and no root, which is why it stays as the last resort.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from broker.embedded_common import EmbeddedBroker, EmbeddedBrokerError
from broker.mqtt import BrokerAddress

log = logging.getLogger(__name__)


class AmqttEmbedded(EmbeddedBroker):
    kind = "amqtt"

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        super().__init__(host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

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
