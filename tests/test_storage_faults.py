"""A disk that refuses (issue 11): full, read-only, locked or damaged.

The device gets storage_full / storage_failed instead of silence, the server's retained presence says why,
nothing acknowledged is lost, and when the disk is mended the next command works without a restart. A server
started on a refusing disk waits for it instead of exiting (no crash loop under systemd's Restart=always); a
log that no waiting mends (damaged, another hall's) stops it with a message that says what to do.

The portable tests use what SQLite itself refuses (PRAGMA max_page_count gives SQLITE_FULL, query_only gives
SQLITE_READONLY, another connection's write lock gives SQLITE_BUSY) and run everywhere. The same paths on a
real full or read-only file system need a small tmpfs, which only root may mount: those run as root (as
bin/test and CI do), and say why they do not otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import children
from broker import protocol as p
from broker.client import CommandError, HallClient
from broker.store import Store
from tests.support.brokers import DEMO_HALL, ROOT
from tests.support.mqtt_probe import Probe
from tests.support.wait import CONNECT_S, REPLY_S, wait_until

HALL = "kvarnby"
TOPICS = p.Topics(HALL)
STORAGE_WAIT_S = 70.0  # the server's longest wait between tries of a refusing disk (60 s) and some
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs (a real full or read-only disk) "
                             "needs root; the portable tests above cover the same paths with SQLite's own limits")


def _issued(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT body FROM events WHERE type = 'ticket.issued' ORDER BY seq").fetchall()
    return [json.loads(body)["ticket"]["number"] for (body,) in rows]


def _server_presence(probe: Probe) -> dict[str, Any]:
    found = probe.received(TOPICS.server())
    return found[-1] if found else {}


def _issue_until_refused(kiosk: HallClient, limit: int = 400) -> tuple[list[str], CommandError, str]:
    """Issue tickets until the server refuses one: the numbers acknowledged, the refusal and its command id."""
    acked: list[str] = []
    for _ in range(limit):
        command_id = p.new_command_id()
        try:
            acked.append(kiosk.request("issue", command_id=command_id, topic="general")["ticket"]["number"])
        except CommandError as exc:
            return acked, exc, command_id
    raise AssertionError(f"{limit} tickets and the disk never refused one")


# ---------------------------------------------------------------- portable: SQLite's own limits

def test_a_full_log_is_answered_storage_full_and_serves_again_when_space_returns(mosquitto, hall, make_service,
                                                                                  tmp_path):
    service = make_service(mosquitto)
    db = tmp_path / "hall.sqlite"
    probe = Probe(mosquitto.address, TOPICS.server())
    try:
        with HallClient(mosquitto.address, hall.id, "kiosk", "K1", presence=False) as kiosk:
            assert kiosk.start(CONNECT_S)
            first = kiosk.request("issue", topic="general")["ticket"]["number"]
            assert service.store is not None
            pages = service.store.db.execute("PRAGMA page_count").fetchone()[0]
            service.store.db.execute(f"PRAGMA max_page_count = {pages + 3}")  # the log may grow three pages more

            acked, refused, refused_id = _issue_until_refused(kiosk)
            assert refused.code == p.Err.STORAGE_FULL and "disk is full" in refused.message
            wait_until(lambda: _server_presence(probe).get("storage") == "full", REPLY_S, "presence saying full")
            presence = _server_presence(probe)
            assert presence["status"] == p.ONLINE and "disk is full" in presence["message"]
            assert _issued(db) == [first, *acked], "an acknowledged ticket is missing from the log"
            with pytest.raises(CommandError) as again:
                kiosk.request("issue", topic="permits")
            assert again.value.code == p.Err.STORAGE_FULL
            assert service.fatal is None

            service.store.db.execute("PRAGMA max_page_count = 1073741823")  # space comes back
            # the refused press, resent with its id, is carried out now; the numbers run on without a gap
            number = kiosk.request("issue", command_id=refused_id, topic="general")["ticket"]["number"]
            assert number == p.format_number("A", len(acked) + 2)
            assert kiosk.request("issue", command_id=refused_id, topic="general")["ticket"]["number"] == number
            wait_until(lambda: _server_presence(probe).get("storage") == "ok", REPLY_S, "presence saying ok")
            assert "message" not in _server_presence(probe)
    finally:
        probe.close()
    assert _issued(db) == [first, *acked, number]
    assert service.fatal is None and service.stats.storage_refused >= 2


def test_a_read_only_log_is_answered_storage_failed_and_says_so(mosquitto, hall, make_service, tmp_path):
    service = make_service(mosquitto)
    probe = Probe(mosquitto.address, TOPICS.server())
    try:
        with HallClient(mosquitto.address, hall.id, "counter", "1", presence=False) as desk:
            assert desk.start(CONNECT_S)
            assert service.store is not None
            service.store.db.execute("PRAGMA query_only = 1")  # what a read-only file gives: SQLITE_READONLY
            with pytest.raises(CommandError) as refused:
                desk.request("open")
            assert refused.value.code == p.Err.STORAGE_FAILED and "read-only" in refused.value.message
            wait_until(lambda: _server_presence(probe).get("storage") == "failed", REPLY_S, "presence saying failed")
            assert "read-only" in _server_presence(probe)["message"]
            service.store.db.execute("PRAGMA query_only = 0")
            assert desk.request("open")["counter"]["status"] == p.OPEN
            wait_until(lambda: _server_presence(probe).get("storage") == "ok", REPLY_S, "presence saying ok")
    finally:
        probe.close()
    assert service.fatal is None


class Server:
    """`vuoro server` as a process whose every output line is read as it comes: a server that waits for its
    disk says so and then nothing, until it is ready."""

    def __init__(self, db: Path, broker_url: str, log: Path) -> None:
        self.log = log  # not beside the log: that disk may be full or read-only
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vuoro.cli", "server", "--hall", str(DEMO_HALL), "--db", str(db), "--broker",
             broker_url, "--always-open"], stdout=subprocess.PIPE, stderr=open(self.log, "ab"),  # noqa: SIM115
            text=True, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name="test-server-stdout")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def said(self, words: str) -> bool:
        return any(words in line for line in self.lines)

    def stop(self) -> int:
        code = children.stop(self.proc, 15.0)
        self._reader.join(5)
        return int(code or 0)


@pytest.fixture
def server_process() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_a_server_started_while_its_log_is_locked_waits_and_then_serves(mosquitto, hall, tmp_path, server_process):
    """Its first write fails (another program holds the log's write lock): it waits, does not exit."""
    db = tmp_path / "hall.sqlite"
    Store(db, hall.id).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    server = Server(db, mosquitto.address.url, tmp_path / "server.log")
    server_process.append(server)
    probe = Probe(mosquitto.address, TOPICS.server())
    try:
        wait_until(lambda: server.said("waiting for storage"), STORAGE_WAIT_S, lambda: f"the server to say it waits; "
                   f"it said {server.lines}, log {server.log.read_text()[-1500:]}")
        wait_until(lambda: _server_presence(probe).get("storage") == "failed", REPLY_S * 2, "presence saying failed")
        assert "locked" in _server_presence(probe)["message"]
        with HallClient(mosquitto.address, hall.id, "kiosk", "K1", presence=False) as kiosk:
            assert kiosk.start(CONNECT_S)
            with pytest.raises(CommandError) as refused:
                kiosk.request("issue", timeout=REPLY_S * 2, topic="general")
            assert refused.value.code == p.Err.STORAGE_FAILED
            assert server.proc.poll() is None and not server.said("ready")
            holder.execute("ROLLBACK")  # the other program lets go
            wait_until(lambda: server.said("ready"), STORAGE_WAIT_S, lambda: f"the server to be ready: {server.lines}")
            assert kiosk.request("issue", topic="general")["ticket"]["number"] == "A001"
        wait_until(lambda: _server_presence(probe).get("storage") == "ok", REPLY_S, "presence saying ok")
        log = server.log.read_text()
        assert log.count("waiting for storage:") >= 1 and "Traceback" not in log
    finally:
        holder.close()
        probe.close()
    assert server.stop() == 0
    assert _issued(db) == ["A001"]


@pytest.mark.parametrize("damage", ["not a database", "damaged schema page"])
def test_a_damaged_log_stops_the_server_at_once_with_what_to_do(tmp_path, hall, mosquitto, damage):
    db = tmp_path / "hall.sqlite"
    if damage == "not a database":
        db.write_bytes(b"SQLite format 2\x00" + b"\x00" * 5000)
    else:
        Store(db, hall.id).close()
        raw = bytearray(db.read_bytes())
        raw[100:4096] = b"\xa5" * (4096 - 100)
        db.write_bytes(bytes(raw))
    done = subprocess.run([sys.executable, "-m", "vuoro.cli", "server", "--hall", str(DEMO_HALL), "--db", str(db),
                           "--broker", mosquitto.address.url], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert str(db) in done.stderr and "restore it from a backup" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_log_of_another_hall_stops_the_server_with_what_to_do(tmp_path, mosquitto):
    db = tmp_path / "hall.sqlite"
    Store(db, "someotherhall").close()
    done = subprocess.run([sys.executable, "-m", "vuoro.cli", "server", "--hall", str(DEMO_HALL), "--db", str(db),
                           "--broker", mosquitto.address.url], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 2 and "give each hall its own --db" in done.stderr


# ---------------------------------------------------------------- a real full / read-only file system (root)

class Tmpfs:
    """A small tmpfs and a filler file that takes all of its space, or gives it back."""

    def __init__(self, where: Path, size: str = "4m") -> None:
        self.path = where
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
        self.filler = where / "filler"

    def fill(self) -> None:
        """Write until the file system has no block left: big blocks first, then ever smaller ones."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 65536, 4096, 512, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Tmpfs]:
    disk = Tmpfs(tmp_path / "disk")
    yield disk
    disk.close()


@as_root
def test_a_full_disk_is_answered_storage_full_and_serves_again_when_space_returns(mosquitto, hall, make_service,
                                                                                  tmpfs):
    db = tmpfs.path / "hall.sqlite"
    service = make_service(mosquitto, db=db)
    probe = Probe(mosquitto.address, TOPICS.server())
    try:
        with HallClient(mosquitto.address, hall.id, "kiosk", "K1", presence=False) as kiosk:
            assert kiosk.start(CONNECT_S)
            first = kiosk.request("issue", topic="general")["ticket"]["number"]
            tmpfs.fill()
            acked, refused, refused_id = _issue_until_refused(kiosk)
            assert refused.code == p.Err.STORAGE_FULL, refused
            wait_until(lambda: _server_presence(probe).get("storage") == "full", REPLY_S, "presence saying full")
            assert _issued(db) == [first, *acked], "an acknowledged ticket is missing from the log"
            tmpfs.free()
            number = kiosk.request("issue", command_id=refused_id, topic="general")["ticket"]["number"]
            assert number == p.format_number("A", len(acked) + 2)
            wait_until(lambda: _server_presence(probe).get("storage") == "ok", REPLY_S, "presence saying ok")
    finally:
        probe.close()
    assert _issued(db) == [first, *acked, number] and service.fatal is None


@as_root
def test_a_server_started_on_a_full_disk_waits_and_serves_when_space_returns(mosquitto, hall, tmpfs, tmp_path,
                                                                             server_process):
    db = tmpfs.path / "hall.sqlite"
    tmpfs.fill()
    server = Server(db, mosquitto.address.url, tmp_path / "server.log")
    server_process.append(server)
    probe = Probe(mosquitto.address, TOPICS.server())
    try:
        wait_until(lambda: server.said("waiting for storage"), STORAGE_WAIT_S, lambda: f"the server to say it waits; "
                   f"it said {server.lines}, log {server.log.read_text()[-1500:]}")
        wait_until(lambda: _server_presence(probe).get("storage") == "full", REPLY_S * 2, "presence saying full")
        with HallClient(mosquitto.address, hall.id, "kiosk", "K1", presence=False) as kiosk:
            assert kiosk.start(CONNECT_S)
            with pytest.raises(CommandError) as refused:
                kiosk.request("issue", topic="general")
            assert refused.value.code == p.Err.STORAGE_FULL
            assert server.proc.poll() is None, "the server exited on a full disk"
            tmpfs.free()
            wait_until(lambda: server.said("ready"), STORAGE_WAIT_S, lambda: f"the server to be ready: {server.lines}")
            assert kiosk.request("issue", topic="general")["ticket"]["number"] == "A001"
        assert "Traceback" not in server.log.read_text()
    finally:
        probe.close()
    assert server.stop() == 0
    assert _issued(db) == ["A001"]


@as_root
def test_a_server_started_on_a_read_only_disk_says_so_and_serves_once_it_is_writable(mosquitto, hall, tmpfs,
                                                                                     tmp_path, server_process):
    db = tmpfs.path / "hall.sqlite"
    Store(db, hall.id).close()
    tmpfs.remount("ro")
    server = Server(db, mosquitto.address.url, tmp_path / "server.log")
    server_process.append(server)
    probe = Probe(mosquitto.address, TOPICS.server())
    try:
        wait_until(lambda: _server_presence(probe).get("storage") == "failed", STORAGE_WAIT_S,
                   lambda: f"presence saying failed; the server said {server.lines}")
        assert "read-only" in _server_presence(probe)["message"]
        with HallClient(mosquitto.address, hall.id, "kiosk", "K1", presence=False) as kiosk:
            assert kiosk.start(CONNECT_S)
            with pytest.raises(CommandError) as refused:
                kiosk.request("issue", topic="general")
            assert refused.value.code == p.Err.STORAGE_FAILED and "read-only" in refused.value.message
            tmpfs.remount("rw")
            wait_until(lambda: server.said("ready"), STORAGE_WAIT_S, lambda: f"the server to be ready: {server.lines}")
            assert kiosk.request("issue", topic="general")["ticket"]["number"] == "A001"
    finally:
        probe.close()
    assert server.stop() == 0
