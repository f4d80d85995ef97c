"""A small city on this machine for the city tests: hall servers, each on its own real Mosquitto with the config
`vuoro provision --bridge` wrote, bridged over TLS to a central Mosquitto on the config it wrote for the centre,
with a cuttable TCP link (the city's network) between each hall and the centre; and `vuoro collect` as a real
process. Everything on free ports of 127.0.0.1; the hall files are the demo hall under other ids."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from broker import children
from broker import protocol as p
from broker.client import CommandError, HallClient, ServerUnavailable
from broker.credentials import load_credentials
from broker.mqtt import BrokerAddress
from ops.bridge import TUNNEL_FILE, TUNNEL_PORT, render_central_conf
from ops.provision import render_conf
from tests.support.brokers import (
    DEMO_HALL,
    ROOT,
    MosquittoBroker,
    ServerProcess,
    free_port,
    mosquitto_binary,
    wait_port,
)
from tests.support.secured import broker_dir

LOGS = "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
BRIDGE_MARK = "# ---- bridge to the city's central broker"


class Link:
    """The city's network between one hall and the centre: a TCP relay that a test can cut and mend. Cutting it
    closes the listening socket and every relayed connection, as a pulled cable ends in a reset."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.accepted = 0  # connections taken, whether or not the centre was there to relay them to
        self.relay = True

    def mend(self, *, relay: bool = True) -> Link:
        """Listen again; relay=False ends every connection at once, as a load balancer in front of a centre that is
        down does (the bridge's TLS handshake gets an EOF)."""
        self.relay = relay
        server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        server.settimeout(0.2)
        self._server = server
        thread = threading.Thread(target=self._accept, args=(server,), name="city-link", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in self._threads:
            thread.join(5)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _accept(self, server: socket.socket) -> None:
        while self._server is server:
            try:
                client, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            if not self.relay:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(a, b), name="city-link", daemon=True)
                thread.start()
                self._threads.append(thread)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(None)
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class Tunnel:
    """The hall's stunnel as `vuoro provision --bridge mqtts://` configured it (Debian's stunnel4 runs the same file),
    with only its plain end moved to a free port and without the switch to the stunnel4 user (tests need no root)."""

    def __init__(self, conf: Path) -> None:
        self.port = free_port()
        text = conf.read_text(encoding="utf-8").replace(f"accept = 127.0.0.1:{TUNNEL_PORT}\n",
                                                        f"accept = 127.0.0.1:{self.port}\n")
        text = re.sub(r"(?m)^set[ug]id = .*\n", "", text)
        self.conf = conf.with_name("test-tunnel.conf")
        self.conf.write_text(text, encoding="utf-8")
        self.log = conf.with_name("tunnel.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Tunnel:
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        if binary is None:
            pytest.fail("stunnel is not installed (Debian: stunnel4): run bin/test, which installs it")
        self.proc = subprocess.Popen([binary, str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))  # noqa: SIM115
        wait_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        children.stop(self.proc, 10.0)


def hall_file(folder: Path, hall_id: str) -> Path:
    """The demo hall under another id."""
    text = DEMO_HALL.read_text(encoding="utf-8")
    text, n = re.subn(r'(?m)^id = "kvarnby"$', f'id = "{hall_id}"', text, count=1)
    assert n == 1
    path = folder / f"{hall_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def provision_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`vuoro provision ...` as IT runs it."""
    done = subprocess.run([sys.executable, "-m", "vuoro.cli", "provision", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


@dataclass
class Hall:
    id: str
    dir: Path
    file: Path
    link: Link
    broker: MosquittoBroker | None = None
    server: ServerProcess | None = None
    tunnel: Tunnel | None = None

    @property
    def db(self) -> Path:
        return self.dir / f"{self.id}.sqlite"

    def credentials(self, name: str) -> Path:
        return self.dir / "credentials" / self.id / f"{name}.toml"

    def address(self, name: str) -> BrokerAddress:
        assert self.broker is not None
        creds = load_credentials(self.credentials(name))
        return self.broker.address.with_login(creds.username, creds.password)

    def start(self) -> Hall:
        conf = (self.dir / "vuoro.conf").read_text(encoding="utf-8")
        bridge = conf[conf.index(BRIDGE_MARK):]
        if (self.dir / TUNNEL_FILE).exists():  # mqtts://: the bridge goes through the hall's stunnel
            self.tunnel = self.tunnel or Tunnel(self.dir / TUNNEL_FILE).start()
            bridge = bridge.replace(f"address 127.0.0.1:{TUNNEL_PORT}\n", f"address 127.0.0.1:{self.tunnel.port}\n")
        port = self.broker.port if self.broker is not None else free_port()
        config = render_conf(self.dir, tls=False, port=port, bind="127.0.0.1") + LOGS + bridge
        self.broker = MosquittoBroker(port, config=config).start()
        self.server = ServerProcess(self.db, self.broker.address, hall=self.file,
                                    extra=["--credentials", str(self.credentials("server"))]).start()
        return self

    def log(self) -> list[tuple[int, dict[str, Any]]]:
        """The hall's own log, (seq, body) in order: what the centre must equal."""
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return [(int(s), p.decode_object(str(b).encode(), max_bytes=1 << 20))
                    for s, b in db.execute("SELECT seq, body FROM events ORDER BY seq")]
        finally:
            db.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.broker is not None:
            self.broker.close()
        if self.tunnel is not None:
            self.tunnel.stop()
        self.link.cut()


@dataclass
class City:
    """Halls bridged to one centre. `start()` provisions every hall with `vuoro provision --bridge`, starts the
    centre on the config written for it, then each hall's Mosquitto and server."""

    hall_ids: list[str]
    root: Path = field(default_factory=broker_dir)
    halls: dict[str, Hall] = field(default_factory=dict)
    central: MosquittoBroker | None = None
    central_port: int = field(default_factory=free_port)
    central_tls_port: int = field(default_factory=free_port)

    @property
    def central_dir(self) -> Path:
        return self.root / "central"

    def account(self, name: str) -> Path:
        return self.central_dir / "accounts" / f"{name}.toml"

    def provision(self) -> City:
        for hall_id in self.hall_ids:
            folder = self.root / hall_id
            folder.mkdir()
            os.chmod(folder, 0o711)
            link = Link(self.central_tls_port)
            hall = Hall(hall_id, folder, hall_file(folder, hall_id), link)
            provision_cli("--hall", str(hall.file), "--out", str(folder), "--bridge",
                          f"mqtts://127.0.0.1:{link.port}", "--central-out", str(self.central_dir),
                          "--central-name", "127.0.0.1")
            self.halls[hall_id] = hall
        return self

    def start_central(self) -> MosquittoBroker:
        if self.central is None:
            config = render_central_conf(self.central_dir, tls=True, port=self.central_port,
                                         tls_port=self.central_tls_port, bind="127.0.0.1") + LOGS
            self.central = MosquittoBroker(self.central_port, config=config, extra_ports=(self.central_tls_port,))
        return self.central.start()

    def start(self) -> City:
        self.provision()
        self.start_central()
        for hall in self.halls.values():
            hall.link.mend()
            hall.start()
        return self

    @property
    def central_address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.central_port)

    def close(self) -> None:
        for hall in self.halls.values():
            hall.stop()
        if self.central is not None:
            self.central.close()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_city(halls: list[str]) -> Iterator[City]:
    """The halls' servers, each on its own Mosquitto, bridged to a central one; all stopped after."""
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run bin/test, which installs it")
    town = City(halls)
    try:
        yield town.start()
    finally:
        town.close()


class Morning:
    """Visitors and counters in every hall, until stopped: a kiosk issues tickets, a counter calls and serves them,
    one step every `pace_s` per hall. It keeps going through the city's outages (the halls do not notice)."""

    def __init__(self, city: City, *, pace_s: float = 0.02, limit: int = 100_000) -> None:
        self.city, self.pace_s, self.limit = city, pace_s, limit
        self.issued: dict[str, int] = {h: 0 for h in city.halls}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(h,), name=f"morning-{h.id}")
                         for h in city.halls.values()]

    def start(self) -> Morning:
        for thread in self._threads:
            thread.start()
        return self

    def progressed(self, by: int) -> Callable[[], bool]:
        """A predicate: every hall issued `by` more tickets than it had when this was called."""
        start = dict(self.issued)
        return lambda: all(self.issued[h] >= start[h] + by for h in start)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "the morning did not end"

    def _run(self, hall: Hall) -> None:
        kiosk = HallClient(hall.address("kiosk-K1"), hall.id, "kiosk", "K1")
        counter = HallClient(hall.address("counter-1"), hall.id, "counter", "1")
        try:
            kiosk.start(10)
            counter.start(10)
            counter.request("open")
            n = 0
            while n < self.limit and not self._stop.wait(self.pace_s):
                self._step(hall, kiosk, counter, n)
                n += 1
        finally:
            kiosk.close()
            counter.close()

    def _step(self, hall: Hall, kiosk: HallClient, counter: HallClient, n: int) -> None:
        try:
            kiosk.request("issue", topic="general")
            self.issued[hall.id] += 1
            if n % 2:
                counter.request("next")
                counter.request("done", outcome=p.OUTCOMES[n % len(p.OUTCOMES)])
        except (CommandError, ServerUnavailable) as exc:
            self.errors.append(f"{hall.id}: {exc}")


class CollectorProcess:
    """`vuoro collect` as a real process, as the city's IT runs it."""

    def __init__(self, city: City, dsn: str, *, extra: tuple[str, ...] = ()) -> None:
        self.args = [sys.executable, "-m", "vuoro.cli", "collect", "--broker", city.central_address.url,
                     "--account", str(city.account("collector")), "--db", dsn,
                     "--hall", str(next(iter(city.halls.values())).file), *extra]
        self.log = city.root / "collector.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=env, stdout=open(self.log, "ab"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int:
        return children.stop(self.proc, 15.0) or 0

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


class Account:
    """A client of a city account (or any login) on a broker, speaking MQTT 5 so that a refusal has its reason
    code; records what arrives."""

    def __init__(self, address: BrokerAddress, username: str, password: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self.acks: dict[int, int] = {}
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"city-test-{os.urandom(4).hex()}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(username, password)
        self.client.on_message = self._message
        self.client.on_publish = self._ack
        self.client.on_subscribe = self._ack_sub
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, reason, props: self.connected.set() if not reason.is_failure else None
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    @classmethod
    def of_file(cls, address: BrokerAddress, path: Path) -> Account:
        from city.account import load_account

        account = load_account(path)
        return cls(address, account.username, account.password)

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self.cond.notify_all()

    def _ack(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self.cond:
            self.acks[mid] = int(reason.value)
            self.cond.notify_all()

    def _ack_sub(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        with self.cond:
            self.acks[-mid] = max(int(r.value) for r in reasons)
            self.cond.notify_all()

    def subscribe(self, *filters: str, timeout: float = 10.0) -> int:
        """The highest SUBACK code (0-2 granted, 128+ refused)."""
        _, sub_mid = self.client.subscribe([(f, 1) for f in filters])
        mid = int(sub_mid or 0)
        with self.cond:
            assert self.cond.wait_for(lambda: -mid in self.acks, timeout), "no SUBACK"
            return self.acks[-mid]

    def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> int:
        """QoS 1; the PUBACK's reason code (0 or 16 accepted, 135 not authorised)."""
        info = self.client.publish(topic, payload, qos=1)
        with self.cond:
            assert self.cond.wait_for(lambda: info.mid in self.acks, timeout), "no PUBACK"
            return self.acks[info.mid]

    def got(self, topic_filter: str) -> list[tuple[str, bytes, bool]]:
        import paho.mqtt.client as mqtt

        with self.cond:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic_filter, m[0])]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
