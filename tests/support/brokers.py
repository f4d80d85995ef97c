"""Real brokers and real server processes for tests and benchmarks, on free ports of 127.0.0.1."""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from broker import children
from broker.embedded import EmbeddedBroker, make_embedded, port_is_free
from broker.mqtt import BrokerAddress
from broker.private_mosquitto import mosquitto_binary

ROOT = Path(__file__).resolve().parents[2]
DEMO_HALL = ROOT / "assets" / "halls" / "demo.toml"

# Zeroconf (broker/discovery.py) on loopback only, here and in every process a test starts: a server
# that advertises its hall, or a device that looks for one, never multicasts beyond this machine.
os.environ.setdefault("VUORO_MDNS_INTERFACES", "127.0.0.1")

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence false
max_queued_messages 100000
max_inflight_messages 1000
log_dest stderr
log_type error
log_type warning
"""


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so that a restarted broker gets its port back:
    a client reconnecting meanwhile could otherwise be given that very port as its own local port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, min(low, 32768)))
        if port_is_free("127.0.0.1", port):
            return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class _TestBroker:
    """What every test broker offers: an address on 127.0.0.1, start, stop, restart on the same port."""

    port: int

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    def start(self) -> _TestBroker:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self, down_s: float = 0.5) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        self.stop()


class MosquittoBroker(_TestBroker):
    """A private Mosquitto on a free port; restartable on the same port.

    `config` runs it with a config of the caller's (the production one from assets/mosquitto, rendered
    for this port) instead of the open test config; `extra_ports` are its other listeners (TLS) to wait for.
    It runs in its own folder, so a config with persistence writes its database there.
    """

    kind = "mosquitto"

    def __init__(self, port: int | None = None, *, config: str | None = None,
                 extra_ports: tuple[int, ...] = ()) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install -y mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self.extra_ports = extra_ports
        self.dir = Path(tempfile.mkdtemp(prefix="vuoro-mosquitto-"))
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(config if config is not None else MOSQUITTO_CONF.format(port=self.port),
                             encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        try:
            return (self.dir / "mosquitto.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def start(self) -> MosquittoBroker:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, cwd=self.dir,
                                     stderr=open(self.dir / "mosquitto.log", "ab"))  # noqa: SIM115
        try:
            for port in (self.port, *self.extra_ports):
                wait_port("127.0.0.1", port)
        except TimeoutError:
            raise RuntimeError(f"mosquitto did not start: {self.log[-2000:]}") from None
        return self

    def stop(self) -> None:
        children.stop(self.proc, 5.0)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class HallOwnBroker(_TestBroker):
    """A broker as `vuoro server` starts it without --broker (broker/embedded.py), started from this process on
    a free port; restartable on the same port. `kind` picks it ("mosquitto", the default, or "amqtt", the
    fallback); `persistence` is a private Mosquitto's session file."""

    def __init__(self, kind: str = "mosquitto", port: int | None = None, *, persistence: Path | None = None) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.persistence = persistence
        self.broker: EmbeddedBroker | None = None

    def start(self) -> HallOwnBroker:
        self.broker = make_embedded("127.0.0.1", self.port, kind=self.kind, persistence=self.persistence)
        self.broker.start()
        return self

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        self.broker = None


class AmqttBroker(HallOwnBroker):
    """The amqtt fallback broker, run in this process on a free port; restartable on the same port."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__("amqtt", port)

    def start(self) -> AmqttBroker:
        super().start()
        return self


class ServerProcess:
    """`vuoro server` as a real process, as IT would run it."""

    def __init__(self, db: Path, broker: BrokerAddress | None = None, *, hall: Path = DEMO_HALL,
                 always_open: bool = True, extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.db, self.broker, self.hall = db, broker, hall
        self.env = env or {}
        self.args = [sys.executable, "-m", "vuoro.cli", "server", "--hall", str(hall), "--db", str(db)]
        if broker is not None:
            self.args += ["--broker", broker.url]
        if always_open:
            self.args.append("--always-open")
        self.args += extra or []
        self.proc: subprocess.Popen[str] | None = None
        self.ready_line = ""
        self.log = db.with_suffix(".server.log")

    def start(self, timeout: float = 20.0, *, wait_ready: bool = True) -> ServerProcess:
        """Start the server and wait for its "ready" line; `wait_ready=False` for a server that cannot say it
        (one held by a test hook before its first commit)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=open(self.log, "a"),  # noqa: SIM115
                                     text=True, cwd=ROOT, env=env)
        if not wait_ready:
            return self
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            # a blocking readline would outlive the deadline: wait for the pipe to have something first
            if not select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"vuoro server exited ({self.proc.wait()}): {self.log.read_text()[-2000:]}")
            if line.rstrip().endswith("ready"):
                self.ready_line = line.strip()
                return self
        raise TimeoutError("vuoro server did not say ready")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)
