"""Wait for what a test expects, up to a deadline, and say what never came when it does not.

Tests wait for events with the product's own default deadlines (e.g. broker.discovery's browse time), never
with a short fixed window: a loaded machine is slow, not wrong. The deadline only bounds a failing test.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

from broker.client import HallClient
from broker.mqtt import MqttLink

T = TypeVar("T")

# How long the product waits for its broker connection (MqttLink.start's default): what tests give a client,
# a hall server or a controller to connect, and a refused login to be refused.
CONNECT_S: float = inspect.signature(MqttLink.start).parameters["timeout"].default
# How long a device waits for the hall server's reply to a command (HallClient.request's default)
REPLY_S: float = inspect.signature(HallClient.request).parameters["timeout"].default

POLL_S = 0.02  # short enough not to slow a passing test, long enough not to starve the threads being waited on


class WaitTimeout(AssertionError):
    """An AssertionError, so pytest shows it as the test's failure, with what was awaited and the last value."""


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str | Callable[[], str], *,
               poll: float = POLL_S) -> T:
    """Call `predicate` until it returns something truthy and return that; fail after `timeout` seconds.

    `what` names the awaited event for the failure message; a callable is evaluated only on failure (to show
    the state that was seen instead). The predicate is tried once more at the deadline, so a slow poll never
    turns a success at the last moment into a failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            result = predicate()
            if result:
                return result
            described = what() if callable(what) else what
            raise WaitTimeout(f"waited {timeout:g} s for {described}; last value: {result!r}")
        time.sleep(poll)
