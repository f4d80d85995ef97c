"""Shared fixtures: the demo hall, real brokers on free ports, a hall server in this process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.config import HallConfig, load_hall
from broker.service import HallService
from tests.support.brokers import DEMO_HALL, AmqttBroker, MosquittoBroker, mosquitto_binary
from tests.support.clock import FakeClock


@pytest.fixture(scope="session")
def hall() -> HallConfig:
    return load_hall(DEMO_HALL)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _broker(kind: str) -> AmqttBroker | MosquittoBroker:
    if kind == "mosquitto":
        if mosquitto_binary() is None:
            pytest.fail("mosquitto is not installed: run bin/test, which installs it")
        return MosquittoBroker().start()
    return AmqttBroker().start()


@pytest.fixture(params=["amqtt", "mosquitto"])
def any_broker(request: pytest.FixtureRequest) -> Iterator[AmqttBroker | MosquittoBroker]:
    """Each test that takes this runs against the embedded broker and a real Mosquitto."""
    broker = _broker(request.param)
    yield broker
    broker.close()


@pytest.fixture
def mosquitto() -> Iterator[MosquittoBroker]:
    broker = _broker("mosquitto")
    yield broker
    broker.close()


@pytest.fixture
def amqtt_broker() -> Iterator[AmqttBroker]:
    broker = _broker("amqtt")
    yield broker
    broker.close()


@pytest.fixture
def make_service(hall: HallConfig, tmp_path: Path) -> Iterator:
    """Start a HallService in this process against a given broker; stopped at teardown."""
    started: list[HallService] = []

    def make(broker: AmqttBroker | MosquittoBroker, *, clock=None, always_open: bool = True,
             version: str = "3.1.1", db: Path | None = None) -> HallService:
        service = HallService(hall, db or tmp_path / "hall.sqlite", broker.address, always_open=always_open,
                              version=version, clock=clock)
        assert service.start(timeout=10), "hall server did not connect"
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()
