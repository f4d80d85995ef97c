"""A bare MQTT client for tests: publishes anything (garbage included) and records what arrives."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.mqtt import BrokerAddress
from tests.support.wait import CONNECT_S, REPLY_S, wait_until


class Probe:
    def __init__(self, address: BrokerAddress, *subscriptions: str,
                 version: mqtt.MQTTProtocolVersion = mqtt.MQTTv311) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=version)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        if subscriptions:
            self.client.subscribe([(s, 1) for s in subscriptions])
            assert self._subscribed.wait(CONNECT_S), "probe could not subscribe"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def publish(self, topic: str, payload: bytes | str | dict[str, Any], *, retain: bool = False) -> None:
        body = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.client.publish(topic, body, qos=1, retain=retain).wait_for_publish(5)

    def received(self, topic: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(m[1]) for m in self.messages if m[0] == topic and m[1]]

    def wait(self, topic: str, count: int = 1, timeout: float = REPLY_S) -> list[dict[str, Any]]:
        """At least `count` messages on `topic` (all that came); fails naming what did come by the deadline."""
        def enough() -> list[dict[str, Any]]:
            found = self.received(topic)
            return found if len(found) >= count else []

        return wait_until(enough, timeout, lambda: f"{count} message(s) on {topic}; got {self.received(topic)}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
