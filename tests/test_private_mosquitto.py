"""The default broker: a private Mosquitto that `vuoro server` starts, watches and stops itself."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker import private_mosquitto
from broker.client import HallClient
from broker.config import HallConfig
from broker.embedded import FALLBACK_WARNING, EmbeddedBrokerError, make_embedded, port_is_free, start_embedded
from broker.mqtt import BrokerAddress
from broker.private_mosquitto import PrivateMosquitto
from tests.support.brokers import ROOT, HallOwnBroker, ServerProcess, free_port, mosquitto_binary

WAIT_S = 15.0  # the product's own stop deadlines are 5 s (SIGTERM) plus a kill; this leaves room for load

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="needs the mosquitto binary (bin/test installs it)")


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the live processes whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, _, rest = (entry / "stat").read_text().partition(") ")
            state, ppid = rest.split()[:2]
        except (OSError, ValueError):
            continue
        if int(ppid) == pid and state != "Z":
            found.append((int(entry.name), comm.partition(" (")[2]))
    return found


def gone(pid: int) -> bool:
    """Exited (a zombie nobody reaped counts: it no longer runs)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().partition(") ")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def listening_addresses(port: int) -> set[str]:
    """The local addresses that listen on a TCP port (IPv4, from /proc/net/tcp: no traffic needed)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _, state = line.split()[1:4]
        host, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(host))))
    return found


def server_with_default_broker(tmp_path: Path, port: int) -> tuple[ServerProcess, int]:
    server = ServerProcess(tmp_path / "hall.sqlite", None, extra=["--listen", f"127.0.0.1:{port}"],
                           env={"VUORO_EMBEDDED_BROKER": ""}).start()
    assert server.proc is not None
    brokers = [pid for pid, name in children_of(server.proc.pid) if name == "mosquitto"]
    assert len(brokers) == 1, f"vuoro server's children: {children_of(server.proc.pid)}"
    return server, brokers[0]


def test_vuoro_server_runs_on_a_private_mosquitto_and_stops_it_after_saying_goodbye(
        tmp_path: Path, hall: HallConfig) -> None:
    port = free_port()
    server, broker_pid = server_with_default_broker(tmp_path, port)
    # anonymous clients are let in only where --listen says: here loopback, not the LAN
    assert listening_addresses(port) == {"127.0.0.1"}
    watcher = HallClient(BrokerAddress("127.0.0.1", port), hall.id, "admin", "watch", presence=False, watch=True)
    try:
        assert watcher.start(WAIT_S)
        assert watcher.wait_for(lambda state: state.get("server", {}).get("status") == "online", WAIT_S)
        assert server.stop() == 0
        # the server's clean stop reached its clients before the broker went
        assert watcher.wait_for(lambda state: state.get("server", {}).get("status") == "stopped", WAIT_S)
        assert wait_until(lambda: gone(broker_pid)), "the private Mosquitto outlived the server"
        assert wait_until(lambda: port_is_free("127.0.0.1", port))
    finally:
        watcher.close()
        server.kill()


def test_the_private_mosquitto_dies_with_a_killed_server(tmp_path: Path) -> None:
    port = free_port()
    server, broker_pid = server_with_default_broker(tmp_path, port)
    server.kill()  # SIGKILL: no clean-up code of ours runs
    assert wait_until(lambda: gone(broker_pid)), "the private Mosquitto outlived a killed server"
    assert wait_until(lambda: port_is_free("127.0.0.1", port))


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    first = HallOwnBroker("mosquitto").start()
    try:
        result = subprocess.run([sys.executable, "-m", "vuoro.cli", "server", "--db", str(tmp_path / "h.sqlite"),
                                 "--listen", f"127.0.0.1:{first.port}", "--always-open"],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert result.returncode == 1
        assert f"port {first.port} on 127.0.0.1 is taken" in result.stderr
        # without --listen a taken port is no error: another free one is used
        moved = start_embedded("127.0.0.1", first.port, any_free_port=True)
        try:
            assert moved.kind == "mosquitto" and moved.address.port != first.port
        finally:
            moved.stop()
    finally:
        first.close()


def test_a_mosquitto_that_fails_is_a_clear_error_with_its_words(tmp_path: Path) -> None:
    broken = tmp_path / "mosquitto"
    broken.write_text("#!/bin/sh\necho 'Error: Unable to open config (a test)' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(EmbeddedBrokerError, match=r"exited with 3: Error: Unable to open config \(a test\)"):
        PrivateMosquitto("127.0.0.1", free_port(), binary=str(broken)).start()


def test_qos1_messages_for_an_absent_device_survive_a_broker_restart(tmp_path: Path) -> None:
    broker = HallOwnBroker("mosquitto", persistence=tmp_path / "var" / "hall.mosquitto.db").start()
    topic, device_id, got = f"vuoro/persist/{uuid.uuid4().hex[:6]}", f"display-{uuid.uuid4().hex[:6]}", []

    def device() -> mqtt.Client:
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=device_id,
                             protocol=mqtt.MQTTv311, clean_session=False)
        client.on_message = lambda _c, _u, message: got.append(bytes(message.payload))
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        return client

    try:
        display = device()
        display.subscribe(topic, qos=1)
        assert wait_until(lambda: display.is_connected())
        display.publish(topic, b"before", qos=1).wait_for_publish(WAIT_S)
        assert wait_until(lambda: got == [b"before"])
        display.disconnect()
        display.loop_stop()
        sender = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        sender.publish(topic, b"while away", qos=1).wait_for_publish(WAIT_S)
        sender.disconnect()
        sender.loop_stop()
        broker.restart()  # SIGTERM: Mosquitto writes its database, then comes back on the same port
        assert (tmp_path / "var" / "hall.mosquitto.db").is_file()
        display = device()
        assert wait_until(lambda: got == [b"before", b"while away"]), got
        display.disconnect()
        display.loop_stop()
    finally:
        broker.close()


def test_without_mosquitto_the_fallback_is_amqtt_and_says_how_to_fix_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the mosquitto package
    monkeypatch.setattr(private_mosquitto, "SEARCH_PATHS", ())
    monkeypatch.delenv("VUORO_EMBEDDED_BROKER", raising=False)
    broker = start_embedded("127.0.0.1", free_port(), any_free_port=False)
    try:
        assert broker.kind == "amqtt"
        assert FALLBACK_WARNING in caplog.text and "install the mosquitto package" in caplog.text
    finally:
        broker.stop()
    with pytest.raises(EmbeddedBrokerError, match="no mosquitto binary"):  # asked for by name: no fallback
        make_embedded("127.0.0.1", free_port(), kind="mosquitto")


def test_an_unknown_broker_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VUORO_EMBEDDED_BROKER", "rabbit")
    with pytest.raises(EmbeddedBrokerError, match="VUORO_EMBEDDED_BROKER='rabbit'"):
        make_embedded("127.0.0.1", free_port())
