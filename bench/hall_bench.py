"""Latency and throughput of the hall server on each broker it can run on.

Run: `.venv/bin/python bench/hall_bench.py [--quick] [--broker default|amqtt|mosquitto]`. Everything runs on
127.0.0.1 in temporary directories, `vuoro server` as a real process with a fresh database per broker:
- default: `vuoro server --listen 127.0.0.1:PORT`, exactly as a hall runs without `--broker`: the server
  starts its own private Mosquitto (broker/private_mosquitto.py), or amqtt if no mosquitto is installed;
- amqtt: the same with VUORO_EMBEDDED_BROKER=amqtt, the fallback, in the server's process and GIL;
- mosquitto: `vuoro server --broker` on a Mosquitto the bench starts (the test config), as a hall with its
  own system Mosquitto runs.

The script stops by itself: every wait has a timeout and a watchdog kills what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support is not installed; the broker package is (editable)

from bench import loadgen  # noqa: E402
from bench.benchlib import Janitor, median_ms, p99_ms  # noqa: E402
from bench.harness import cpu_name, guarded  # noqa: E402
from broker import private_mosquitto  # noqa: E402
from broker import protocol as p  # noqa: E402
from broker.client import CommandError, HallClient  # noqa: E402
from broker.config import load_hall  # noqa: E402
from broker.embedded import free_port  # noqa: E402
from broker.mqtt import BrokerAddress  # noqa: E402
from tests.support.brokers import DEMO_HALL, MosquittoBroker, ServerProcess, mosquitto_binary  # noqa: E402

HALL_ID = "bench"  # not the demo's id: the server's runfile and client ids never meet a real hall's
EXTRA_LETTERS = "GHIJKLMNOPQRSTUVWXYZ"  # 999 numbers per topic a day: 20,000 tickets need more topics
LATENCY_TOPIC = "general"
TIMEOUT_S = 10.0
BUSY_CORES = 0.2  # other processes using more than this during the load make the run noisy


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    issue_samples: int = 300
    issue_warmup: int = 50
    called_samples: int = 100
    called_warmup: int = 10
    hop_samples: int = 300
    commit_samples: int = 300
    load_total: int = 20_000
    load_clients: int = 8
    load_window: int = 50
    load_deadline_s: float = 300.0
    watchdog_s: float = 1200.0

    @classmethod
    def quick(cls) -> Settings:
        return cls(issue_samples=60, issue_warmup=10, called_samples=30, called_warmup=5, hop_samples=100,
                   commit_samples=100, load_total=3_000, load_deadline_s=20.0, watchdog_s=150.0)


# ---------------------------------------------------------------- cleanup and watchdog


JANITOR = Janitor("hall_bench")


# ---------------------------------------------------------------- small helpers


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def proc_status_kib(pid: int, key: str) -> int | None:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM), or None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int | str) -> float:
    """User + system CPU seconds of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used so far (every /proc/stat column but idle and iowait)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def fs_type(path: Path) -> str:
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    return kind


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def mosquitto_version(binary: str | None) -> str:
    return "not installed" if binary is None else private_mosquitto.mosquitto_version(binary)


def machine_lines(tmp: Path) -> list[str]:
    return [
        f"machine: nproc {len(os.sched_getaffinity(0))} ({cpu_name()}), {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, paho-mqtt {_version('paho-mqtt')}, amqtt {_version('amqtt')}, "
        f"mosquitto {mosquitto_version(mosquitto_binary())}, sqlite {sqlite3.sqlite_version}",
        f"temp dir {tmp} ({fs_type(tmp)}); databases there are WAL, synchronous=FULL; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start",
    ]


# ---------------------------------------------------------------- the bench hall


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(data: dict[str, Any]) -> str:
    """Enough TOML for a hall file: top-level tables and arrays of tables, anything inside inline."""
    lines: list[str] = []
    for name, value in data.items():
        tables = value if isinstance(value, list) else [value]
        header = f"[[{name}]]" if isinstance(value, list) else f"[{name}]"
        for table in tables:
            lines.append(header)
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
            lines.append("")
    return "\n".join(lines)


def write_bench_hall(directory: Path) -> tuple[Path, list[str]]:
    """The demo hall with its id changed and 20 more topics (G..Z), served by the demo's last counter.

    A topic has 999 numbers a day, so the demo's six topics hold 5,994 tickets: not enough for the
    load test. Returns the file and the topic ids the load test spreads its tickets over.
    """
    data = tomllib.loads(DEMO_HALL.read_text(encoding="utf-8"))
    data["hall"]["id"] = HALL_ID
    languages = data["hall"]["languages"]
    used = {t["letter"] for t in data["topics"]}
    extra = []
    for letter in (x for x in EXTRA_LETTERS if x not in used):
        topic_id = "bench-" + letter.lower()
        extra.append(topic_id)
        data["topics"].append({"id": topic_id, "letter": letter, "colour": "#444444",
                               "name": {lang: f"Bench {letter}" for lang in languages}})
    data["counters"][-1]["tiers"].append(extra)
    path = directory / "bench-hall.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    hall = load_hall(path)  # refuse to run on a hall the server would refuse
    return path, [t for t in hall.topics if t != LATENCY_TOPIC]


# ---------------------------------------------------------------- plain paho clients for the floor


class PlainClient:
    """A bare paho client (MQTT 3.1.1, TCP_NODELAY) that timestamps what it receives."""

    def __init__(self, address: BrokerAddress, subscribe: str | None = None) -> None:
        self.subscribe = subscribe
        self.arrivals: dict[bytes, float] = {}
        self._arrived = threading.Condition()
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id="bench-" + uuid.uuid4().hex[:10], protocol=mqtt.MQTTv311)
        self.client.on_socket_open = _nodelay
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port, keepalive=30)
        self.client.loop_start()
        JANITOR.add(self.close)
        if not self._ready.wait(TIMEOUT_S):
            raise TimeoutError(f"plain client: no connection to {address.url}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.subscribe is None:
            self._ready.set()
        else:
            client.subscribe(self.subscribe, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()  # stamped first: waking the waiter is not part of the measure
        with self._arrived:
            self.arrivals[bytes(message.payload)] = at
            self._arrived.notify_all()

    def take(self, match: Callable[[bytes], bool], timeout: float = TIMEOUT_S) -> float:
        """Wait (without spinning: the broker and server need the CPU) for a matching message; its arrival."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for body, at in self.arrivals.items():
                    if match(body):
                        del self.arrivals[body]
                        return at
                left = deadline - time.monotonic()
                if left <= 0 or not self._arrived.wait(left):
                    raise TimeoutError(f"no matching message on {self.subscribe} within {timeout:g}s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def measure_hop(address: BrokerAddress, samples: int) -> list[float]:
    """Publish (QoS 1, as every Vuoro message) -> the other client's on_message, one message at a time."""
    topic = f"bench-hop/{uuid.uuid4().hex[:8]}"
    receiver, sender = PlainClient(address, subscribe=topic), PlainClient(address)
    times: list[float] = []
    try:
        for i in range(samples + 20):
            body = f"{i}".encode()
            start = time.perf_counter()
            sender.client.publish(topic, body, qos=1)
            arrived = receiver.take(body.__eq__)
            if i >= 20:
                times.append(arrived - start)
    finally:
        sender.close()
        receiver.close()
    return times


def measure_commit(directory: Path, samples: int) -> list[float]:
    """One small row per transaction, WAL and synchronous=FULL, next to the server's database."""
    path = directory / "floor.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        times: list[float] = []
        for i in range(samples + 10):
            start = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (body) VALUES (?)", (f'{{"n":{i},"type":"ticket.issued"}}',))
            db.execute("COMMIT")
            if i >= 10:
                times.append(time.perf_counter() - start)
        return times
    finally:
        db.close()


# ---------------------------------------------------------------- through the hall server


def hall_client(address: BrokerAddress, role: str, device: str) -> HallClient:
    client = HallClient(address, HALL_ID, role, device)
    JANITOR.add(client.close)
    if not client.start(timeout=TIMEOUT_S):
        raise TimeoutError(f"{role}/{device}: no connection to {address.url}")
    return client


def measure_issue(kiosk: HallClient, samples: int, warmup: int) -> list[float]:
    """Sequential request('issue') from one kiosk: publish -> the reply woke the caller."""
    times: list[float] = []
    for i in range(warmup + samples):
        start = time.perf_counter()
        kiosk.request("issue", timeout=TIMEOUT_S, topic=LATENCY_TOPIC)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def measure_called(address: BrokerAddress, kiosk: HallClient, samples: int, warmup: int) -> list[float]:
    """Counter `next` -> the ticket.called event at a separate, bare subscriber."""
    for _ in range(samples + warmup):
        kiosk.request("issue", timeout=TIMEOUT_S, topic=LATENCY_TOPIC)
    watcher = PlainClient(address, subscribe=p.Topics(HALL_ID).event(p.TICKET_CALLED))
    desk = hall_client(address, "counter", "1")
    times: list[float] = []
    try:
        desk.request("open", timeout=TIMEOUT_S)
        for _ in range(warmup + samples):
            start = time.perf_counter()
            number = desk.request("next", timeout=TIMEOUT_S)["ticket"]["number"]
            times.append(watcher.take(_is_call_of(number)) - start)
    finally:
        desk.close()
        watcher.close()
    return times[warmup:]


def _is_call_of(number: str) -> Callable[[bytes], bool]:
    def match(event: bytes) -> bool:
        return bool(json.loads(event)["ticket"]["number"] == number)
    return match


@dataclass
class Load:
    sent: int = 0
    replied: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    first_sent: float = math.nan
    last_reply: float = math.nan
    batches: list[tuple[float, int]] = field(default_factory=list)  # (arrival, seq) of each state/hall
    generator_cpu_s: float = math.nan  # the load generator's own thread, from its first send to its end
    ignored: int = 0  # duplicate or unknown replies the generator did not count
    strays: int = 0  # messages on topics the generator never subscribed to (amqtt 0.12 sends them at connect)

    @property
    def batch_sizes(self) -> list[int]:
        """Events per server batch, from the seq of the retained hall state published after each one."""
        seqs = [seq for _, seq in self.batches]
        return [b - a for a, b in itertools.pairwise(seqs)]

    @property
    def batch_gaps(self) -> list[float]:
        times = [at for at, _ in self.batches]
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def seconds(self) -> float:
        return self.last_reply - self.first_sent

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else math.nan


def measure_load(address: BrokerAddress, topics: list[str], settings: Settings) -> Load:
    """Kiosks pipelining issues from bench/loadgen.py (raw sockets, one thread): a paho-based generator
    costs as much CPU per issue as the server and would take the core the server needs."""
    monitor = PlainClient(address, subscribe=p.Topics(HALL_ID).state_hall())  # one message per batch
    try:
        gen = loadgen.run(address.host, address.port, HALL_ID, topics, settings.load_total,
                          connections=settings.load_clients, window=settings.load_window,
                          send_for_s=settings.load_deadline_s, drain_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S)
    finally:
        monitor.close()
    for problem in gen.problems:
        print(f"  load: {problem}", flush=True)
    load = Load(sent=gen.sent, replied=gen.replied, ok=gen.ok, errors=gen.errors, latencies=gen.latencies,
                first_sent=gen.first_sent, last_reply=gen.last_reply, generator_cpu_s=gen.cpu_s,
                ignored=gen.ignored, strays=gen.strays)
    batches = sorted((at, int(json.loads(body)["seq"])) for body, at in list(monitor.arrivals.items()))
    load.batches = [(at, seq) for at, seq in batches if load.first_sent <= at <= load.last_reply + 0.001]
    return load


@contextlib.contextmanager
def profiled(pid: int, out: Path | None, gil: bool = False) -> Iterator[None]:
    """py-spy (raw collapsed stacks, idle threads included) on the server while the block runs."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if out is None or not Path(spy).exists():
        yield
        return
    args = [spy, "record", "-p", str(pid), "-f", "raw", "-r", "250", "-o", str(out), "--threads", "--idle",
            "--nonblocking"] + (["--gil"] if gil else [])
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    JANITOR.add(proc.kill)
    time.sleep(0.5)  # py-spy attaches
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on ^C
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def issued_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE type = ?", (p.TICKET_ISSUED,)).fetchone()[0])


# ---------------------------------------------------------------- one broker, start to end


@dataclass
class Result:
    broker: str
    setup: str
    ready_s: float = math.nan
    hop: list[float] = field(default_factory=list)
    commit: list[float] = field(default_factory=list)
    issue: list[float] = field(default_factory=list)
    called: list[float] = field(default_factory=list)
    load: Load = field(default_factory=Load)
    issued_ok: int = 0
    issued_rows: int = -1
    rss_kib: int | None = None
    hwm_kib: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    default_kind: str = ""  # for `default`: the broker the server chose

    @property
    def floor_s(self) -> float:
        return 2 * statistics.median(self.hop) + statistics.median(self.commit) if self.hop and self.commit \
            else math.nan


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    JANITOR.add(lambda: shutil.rmtree(path, ignore_errors=True))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def child_processes(pid: int) -> dict[int, str]:
    """pid -> command name of the running children of a process."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit():
                comm, _, rest = (entry / "stat").read_text().partition(") ")
                state, ppid = rest.split()[:2]
                if int(ppid) == pid and state != "Z":
                    found[int(entry.name)] = comm.partition(" (")[2]
    return found


DEFAULT_TARGET = 2000  # durable issues/s on the broker a hall gets without --broker
SETUPS = {"default": "`vuoro server --listen` -> the broker it starts itself (the default)",
          "amqtt": "`vuoro server --listen` with VUORO_EMBEDDED_BROKER=amqtt: the fallback, in the server's process",
          "mosquitto": "`vuoro server --broker` -> a Mosquitto of the bench's (set_tcp_nodelay true)"}


def start_server(kind: str, work: Path, hall: Path) -> tuple[ServerProcess, BrokerAddress, int | None, float]:
    """Start the broker (Mosquitto) and the server; returns server, broker address, broker pid, ready time.
    For `default` the broker pid is the server's mosquitto child, None when it fell back to amqtt."""
    broker_pid: int | None = None
    if kind == "mosquitto":
        mosquitto = MosquittoBroker()
        JANITOR.add(mosquitto.close)
        mosquitto.start()
        assert mosquitto.proc is not None
        address, broker_pid = mosquitto.address, mosquitto.proc.pid
        server = ServerProcess(work / "hall.sqlite", address, hall=hall)
    else:
        server = ServerProcess(work / "hall.sqlite", None, hall=hall, extra=["--listen", f"127.0.0.1:{free_port()}"],
                               env={"VUORO_EMBEDDED_BROKER": "amqtt" if kind == "amqtt" else ""})
    JANITOR.add(server.stop)
    started = time.perf_counter()
    server.start(timeout=30)
    ready_s = time.perf_counter() - started
    if kind != "mosquitto":
        found = re.search(r"on broker (mqtt://[^\s,]+)", server.ready_line)
        if found is None:
            raise RuntimeError(f"no broker URL in the ready line: {server.ready_line!r}")
        address = BrokerAddress.parse(found.group(1))
    if kind == "default":
        assert server.proc is not None
        broker_pid = next((pid for pid, name in child_processes(server.proc.pid).items() if name == "mosquitto"),
                          None)
    return server, address, broker_pid, ready_s


def run_broker(kind: str, settings: Settings, hall: Path, load_topics: list[str], work: Path,
               profile: Path | None) -> Result:
    result = Result(kind, SETUPS[kind])
    print(f"{kind}: starting", flush=True)
    server, address, broker_pid, result.ready_s = start_server(kind, work, hall)
    assert server.proc is not None
    if kind == "default":
        result.setup += (f": a private Mosquitto (pid {broker_pid})" if broker_pid else
                         ": amqtt, the fallback (no mosquitto binary here)")
        result.default_kind = "mosquitto" if broker_pid else "amqtt"
    print(f"{kind}: server ready in {result.ready_s * 1000:.0f} ms on {address.url}; floor", flush=True)
    result.hop = measure_hop(address, settings.hop_samples)
    result.commit = measure_commit(work, settings.commit_samples)
    print(f"{kind}: issue -> reply", flush=True)
    kiosk = hall_client(address, "kiosk", "K1")
    try:
        result.issue = measure_issue(kiosk, settings.issue_samples, settings.issue_warmup)
        print(f"{kind}: next -> ticket.called", flush=True)
        result.called = measure_called(address, kiosk, settings.called_samples, settings.called_warmup)
    finally:
        kiosk.close()
    result.issued_ok = settings.issue_warmup + settings.issue_samples + settings.called_warmup \
        + settings.called_samples
    print(f"{kind}: {settings.load_total} pipelined issues", flush=True)
    pids = {"server": server.proc.pid} | ({"mosquitto": broker_pid} if broker_pid else {})
    spy = profile / f"server-{kind}.txt" if profile else None
    result.load, result.cpu = load_phase(address, load_topics, settings, pids, spy)
    result.issued_ok += result.load.ok
    result.rss_kib = proc_status_kib(server.proc.pid, "VmRSS")
    result.hwm_kib = proc_status_kib(server.proc.pid, "VmHWM")
    result.issued_rows = issued_rows(work / "hall.sqlite")
    return result


def load_phase(address: BrokerAddress, topics: list[str], settings: Settings, pids: dict[str, int],
               spy: Path | None) -> tuple[Load, dict[str, float]]:
    """The load test, and the cores each process (and the rest of the machine) used meanwhile.

    The load generator is a thread of this process: its own CPU (from its first send) is shown as
    "loadgen", and "bench rest" is the remainder of this process (setup, the batch monitor, paho).
    """
    procs: dict[str, int | str] = {**pids, "bench": "self"}
    before = {name: proc_cpu_s(pid) for name, pid in procs.items()}
    machine = machine_busy_s()
    with profiled(pids["server"], spy, gil=os.environ.get("BENCH_PROFILE_GIL") == "1"):
        load = measure_load(address, topics, settings)
    used = {name: (proc_cpu_s(pid) - before[name]) / load.seconds for name, pid in procs.items()}
    generator = load.generator_cpu_s / load.seconds
    cpu = {**{name: used[name] for name in pids}, "loadgen": generator, "bench rest": used["bench"] - generator}
    cpu["other processes"] = max(0.0, (machine_busy_s() - machine) / load.seconds - sum(cpu.values()))
    return load, cpu


def bench_broker(kind: str, settings: Settings, hall: Path, load_topics: list[str],
                 profile: Path | None = None) -> Result:
    with temp_dir(f"vuoro-bench-{kind}-") as work, JANITOR.scope():  # the next broker starts clean
        try:
            return run_broker(kind, settings, hall, load_topics, work, profile)
        except (TimeoutError, RuntimeError, CommandError, OSError) as exc:
            print(f"{kind}: FAILED: {exc}", flush=True)
            return Result(kind, "failed", error=str(exc))


# ---------------------------------------------------------------- the report


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f} ms"


def _pair(samples: list[float]) -> tuple[str, str]:
    return _ms(median_ms(samples)), _ms(p99_ms(samples))


def table_rows(r: Result) -> list[tuple[str, str, str]]:
    load = r.load
    return [
        (f"1 issue request -> reply (n={len(r.issue)})", *_pair(r.issue)),
        (f"2 next -> ticket.called at another client (n={len(r.called)})", *_pair(r.called)),
        (f"3 durable issues/s ({load.ok} ok of {load.sent} in {load.seconds:.1f} s)",
         f"{load.rate:,.0f} /s", ""),
        ("  load generator (bench/loadgen.py, raw sockets): own CPU per ok issue",
         f"{load.generator_cpu_s / load.ok * 1e6:.0f} us" if load.ok else "-", ""),
        ("  issue latency under that load", *_pair(load.latencies)),
        (f"  server batches (state/hall messages): {len(load.batch_sizes)}, events per batch (median, max)",
         f"{_median(load.batch_sizes)}", f"{max(load.batch_sizes, default=0)}"),
        ("  time between batches (median, max)", _ms(median_ms(load.batch_gaps)),
         _ms(max(load.batch_gaps, default=math.nan) * 1000)),
        (f"4 hop publish -> receive, QoS 1 (n={len(r.hop)})", *_pair(r.hop)),
        (f"4 SQLite commit, 1 row, WAL+FULL (n={len(r.commit)})", *_pair(r.commit)),
        ("5 floor 2 x hop + commit (medians); 1.5 x floor", _ms(r.floor_s * 1000), _ms(r.floor_s * 1500)),
        ("  server ready after spawn", _ms(r.ready_s * 1000), ""),
        ("  server VmRSS / VmHWM after the load", _mib(r.rss_kib), _mib(r.hwm_kib)),
        ("  CPU during load (cores): " + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu.items()), "", ""),
        ("  CPU per ok issue: " + ", ".join(f"{k} {v / load.rate * 1e6:.0f} us" for k, v in r.cpu.items()
                                            if k != "other processes"), "", ""),
        (f"  db ticket.issued rows {r.issued_rows} vs ok replies {r.issued_ok}",
         "match" if r.issued_rows == r.issued_ok else "MISMATCH", ""),
    ]


def _median(values: list[int]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def print_table(results: list[Result]) -> None:
    for r in results:
        print(f"\n== {r.broker}: {r.setup}")
        if r.error:
            print(f"   failed: {r.error}")
            continue
        print(f"   {'measure':<66}{'median':>14}{'p99':>14}")
        for label, median, p99 in table_rows(r):
            print(f"   {label:<66}{median:>14}{p99:>14}")
        if r.load.errors:
            print(f"   load errors: {r.load.errors}")
        if r.load.ignored:
            print(f"   load: {r.load.ignored} duplicate or unknown replies ignored (each command id counts once)")
        if r.load.strays:
            print(f"   load: {r.load.strays} messages on topics the kiosks never subscribed to, ignored "
                  "(amqtt 0.12 sends every new client the retained messages of everyone's subscriptions)")


def checks(results: list[Result]) -> list[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []
    for r in results:
        if r.error:
            found.append((f"{r.broker}: the run completed", False))
            continue
        called = median_ms(r.called)
        found.append((f"{r.broker}: next->called median {called:.2f} ms <= 1.5 x floor {r.floor_s * 1500:.2f} ms",
                      called <= r.floor_s * 1500))
        found.append((f"{r.broker}: server VmRSS {_mib(r.rss_kib)} <= 90 MiB",
                      r.rss_kib is not None and r.rss_kib <= 90 * 1024))
        found.append((f"{r.broker}: ticket.issued rows == ok replies ({r.issued_rows} / {r.issued_ok})",
                      r.issued_rows == r.issued_ok))
        if r.broker == "default":
            found.append((f"default ({r.default_kind}): {r.load.rate:,.0f} durable issues/s >= {DEFAULT_TARGET:,}",
                          r.load.rate >= DEFAULT_TARGET))
            found.append((f"default ({r.default_kind}): {r.load.strays} messages to kiosks on topics they did not "
                          "subscribe to == 0", r.load.strays == 0))
        if r.broker == "mosquitto":
            found.append((f"mosquitto: {r.load.rate:,.0f} durable issues/s >= 3,000", r.load.rate >= 3000))
            found.append((f"mosquitto: ready {r.ready_s * 1000:.0f} ms after spawn with --broker < 1 s",
                          r.ready_s < 1.0))
    return found


def print_checks(results: list[Result]) -> bool:
    print("\n== targets")
    passed = True
    for text, ok in checks(results):
        print(f"   {'PASS' if ok else 'FAIL'}  {text}")
        passed = passed and ok
    for r in results:
        other = r.cpu.get("other processes", 0.0)
        if other > BUSY_CORES:
            server_s = r.cpu.get("server", math.nan) / r.load.rate if r.load.rate else math.nan
            print(f"   NOTE  {r.broker}: other processes used {other:.2f} cores during the load; this machine has "
                  f"{len(os.sched_getaffinity(0))}: throughput and latency are understated, compare CPU per issue "
                  f"(the server's {server_s * 1e6:.0f} us per issue is {1 / server_s:,.0f} issues/s on a core of "
                  "its own)")
    return passed


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples: done in well under a minute")
    parser.add_argument("--broker", choices=list(SETUPS), action="append",
                        help="only this broker (repeatable; default all three)")
    parser.add_argument("--issues", type=int, metavar="N", help="issues in the load test (default 20000; quick 3000)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the server under load with py-spy (raw stacks) into DIR/server-BROKER.txt")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    settings = Settings.quick() if args.quick else Settings()
    if args.issues:
        settings = dataclasses.replace(settings, load_total=args.issues)
    return guarded(JANITOR, settings.watchdog_s, lambda: run(args, settings))


def run(args: argparse.Namespace, settings: Settings) -> bool:
    with temp_dir("vuoro-bench-") as tmp:
        os.environ["XDG_RUNTIME_DIR"] = str(tmp)  # the servers' runfiles land here, not in the user's
        print(f"Vuoro hall bench ({'quick' if args.quick else 'full'})")
        for line in machine_lines(tmp):
            print("  " + line)
        hall, load_topics = write_bench_hall(tmp)
        print(f"  hall: the demo hall as {HALL_ID!r} + {len(EXTRA_LETTERS)} topics (999 tickets per topic "
              f"a day); load spread over {len(load_topics)} topics, {settings.load_clients} kiosks x "
              f"window {settings.load_window}\n", flush=True)
        results = [bench_broker(kind, settings, hall, load_topics, args.profile) for kind in args.broker or
                   list(SETUPS)]
        print_table(results)
        return print_checks(results)


if __name__ == "__main__":
    raise SystemExit(main())
