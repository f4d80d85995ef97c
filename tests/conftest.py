"""Shared fixtures: the demo hall, real brokers on free ports, a hall server in this process, the folder
pictures go to, and a check that no test leaves a thread running.

bin/test runs the suite on two pytest-xdist workers (most tests wait for processes, brokers and windows
rather than compute). Each worker takes whole modules, so a module's shared fixtures are made once; the
modules that advertise or look for halls by zeroconf share one worker, because multicast on loopback is
one network for both workers and a hall one of them advertises would answer the other's look for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
def signal_handlers_restored() -> Iterator[None]:
    """A test that runs `vuoro.cli.main` in this process gets the handlers a command sets for its own process
    (SIGPIPE to the default, so that `vuoro status | head` ends quietly): put back, or this worker process
    would die of the next write to a closed pipe instead of getting an error, and take its tests with it."""
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in kept.items():
        if handler is not None and signal.getsignal(sig) != handler:
            signal.signal(sig, handler)


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


# Modules whose tests advertise a hall, look for one, or expect to find none, on loopback multicast
ZEROCONF_MODULES = frozenset({"test_discovery", "test_doctor", "test_wheel_install"})


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: without xdist (-p no:xdist) it is never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole modules to each worker, the zeroconf modules as one unit (see the module's docstring)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no type hints here
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "zeroconf" if Path(module).stem in ZEROCONF_MODULES else module

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes the pictures fixture is marked `pictures`: bin/screenshots selects them so."""
    for item in items:
        if "pictures" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pictures)


@pytest.fixture(scope="session", autouse=True)
def own_runtime_dir() -> Iterator[None]:
    """Runfiles (broker/runfile.py) of the servers this run starts go to a folder of the run's own: neither a
    demo the user has running nor the other worker's servers of the same hall id find or overwrite them."""
    folder = tempfile.mkdtemp(prefix="vuoro-test-run-")
    before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = folder
    yield
    if before is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = before
    shutil.rmtree(folder, ignore_errors=True)


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
