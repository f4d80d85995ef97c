"""Shared fixtures: the demo hall, real brokers on free ports, a hall server in this process, the folder
pictures go to, and a check that no test leaves a thread running."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.config import HallConfig, load_hall
from broker.service import HallService
from tests.support.brokers import DEMO_HALL, AmqttBroker, MosquittoBroker, mosquitto_binary
from tests.support.clock import FakeClock
from tests.support.wait import wait_until

# Pictures the tests make (window screenshots, ticket previews, report charts) go to a temporary folder, so
# that a test run never changes tracked files. bin/screenshots sets this to the repository to refresh the
# pictures the README shows: each kind then lands where PICTURES says.
SCREENSHOTS_ENV = "VUORO_SCREENSHOTS"
PICTURES = {
    "counter": "docs/screenshots/counter",
    "display": "docs/screenshots/display",
    "kiosk": "docs/screenshots/kiosk",
    "tickets": "docs/screenshots/tickets",
    "report": "docs/report-example",
}

# Threads that may outlive the test that started them, because they live for the whole session by design.
# Each is named by the prefix of its thread name; anything else a test leaves running fails that test.
SESSION_THREADS: dict[str, str] = {
}
THREAD_END_S = 10.0  # a stopped component's threads get this long to end (only a leaking test waits it out)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """As python-zeroconf does: a test that leaves a thread running fails (a Zeroconf, a client loop, a printer
    monitor, a broker not closed). Threads that end soon after the test are waited for, not reported."""
    before = frozenset(threading.enumerate())

    def leaked() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.is_alive()
                and not t.name.startswith(tuple(SESSION_THREADS))]

    yield
    if leaked():
        wait_until(lambda: not leaked(), THREAD_END_S, lambda: f"these threads to end: {[t.name for t in leaked()]}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pictures: makes pictures the README shows (bin/screenshots runs these)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes the pictures fixture is marked `pictures`: bin/screenshots selects them so."""
    for item in items:
        if "pictures" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pictures)


@pytest.fixture(scope="session")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`pictures("counter")`: the folder for that kind of picture, made; under $VUORO_SCREENSHOTS when set."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    root = Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("pictures")

    def folder(kind: str) -> Path:
        path = root / PICTURES[kind]
        path.mkdir(parents=True, exist_ok=True)
        return path

    return folder


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
