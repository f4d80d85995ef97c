"""The `vuoro` command as a person runs it: server, ticket, call, status, and a broken config."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from broker.config import INSTALLED_HALL
from tests.support.brokers import DEMO_HALL, ROOT, ServerProcess, free_port
from tests.support.wait import REPLY_S

pytestmark = pytest.mark.slow


def vuoro(*args: str, timeout: float = 30, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER", "VUORO_CREDENTIALS")}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "vuoro.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_broken_config_is_refused_naming_file_key_and_problem(tmp_path):
    bad = tmp_path / "hall.toml"
    bad.write_text(DEMO_HALL.read_text(encoding="utf-8").replace('letter = "C"', 'letter = "cc"'), encoding="utf-8")
    result = vuoro("server", "--hall", str(bad), "--db", str(tmp_path / "x.sqlite"))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "topics[2].letter" in result.stderr and "capital letter" in result.stderr


def test_terminal_kiosk_and_counter_against_a_running_server(mosquitto, tmp_path):
    server = ServerProcess(tmp_path / "hall.sqlite", mosquitto.address).start()
    common = ["--broker", mosquitto.address.url]
    try:
        issued = vuoro("ticket", "B", "--lang", "en", *common)
        assert issued.returncode == 0, issued.stderr
        assert issued.stdout.startswith("B001") and "Building permits" in issued.stdout
        as_json = json.loads(vuoro("ticket", "permits", "--priority", "--json", *common).stdout)
        assert as_json["ok"] and as_json["result"]["ticket"]["number"] == "B002"
        assert as_json["result"]["ticket"]["priority"] is True

        refused = vuoro("call", "4", "next", *common)
        assert refused.returncode == 1 and "counter_closed" in refused.stderr
        assert vuoro("call", "4", "open", *common).returncode == 0
        called = vuoro("call", "4", "next", *common)
        assert called.returncode == 0 and "B002" in called.stdout  # the priority ticket first
        forwarded = vuoro("call", "4", "forward", "--topic", "taxes", "--note", "invoice", *common)
        assert forwarded.returncode == 0 and "waiting" in forwarded.stdout

        status = vuoro("status", *common)
        assert status.returncode == 0, status.stderr
        assert "Bygglov" in status.stdout and "Disk 4" in status.stdout and "B002 -> 4" in status.stdout
        full = json.loads(vuoro("status", "--json", *common).stdout)
        assert full["queue/taxes"]["tickets"][0]["number"] == "B002"
        assert full["server"]["status"] == "online"
    finally:
        assert server.stop() == 0


def test_unreachable_broker_is_a_clear_error_not_a_hang(tmp_path):
    port = free_port()
    result = vuoro("ticket", "general", "--broker", f"mqtt://127.0.0.1:{port}", timeout=30)
    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr


def test_server_with_embedded_broker_prints_its_url_and_serves(tmp_path):
    """The server's own broker keeps its sessions beside the event log (a restart loses no device's queue)."""
    port = free_port()
    server = ServerProcess(tmp_path / "demo.sqlite", None, extra=["--listen", f"127.0.0.1:{port}"],
                           env={"VUORO_EMBEDDED_BROKER": "mosquitto"}).start()
    try:
        assert f"mqtt://127.0.0.1:{port}" in server.ready_line
        result = vuoro("ticket", "general", "--json", "--broker", f"mqtt://127.0.0.1:{port}")
        assert json.loads(result.stdout)["result"]["ticket"]["number"] == "A001"
    finally:
        assert server.stop() == 0
    assert (tmp_path / "demo.mosquitto.db").stat().st_size > 0  # Mosquitto wrote it on its way out


def test_the_server_tells_systemd_it_is_ready_only_once_it_is(tmp_path):
    """Type=notify: READY=1 reaches $NOTIFY_SOCKET after the server is connected and online (its "ready" line),
    and STOPPING=1 when it stops."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(REPLY_S)
    server = ServerProcess(tmp_path / "hall.sqlite", None, extra=["--listen", f"127.0.0.1:{free_port()}"],
                           env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        server.start()
        ready = sock.recv(4096).decode()
        assert ready.splitlines()[0] == "READY=1" and "STATUS=serving hall kvarnby" in ready, ready
    finally:
        assert server.stop() == 0
    assert sock.recv(4096) == b"STOPPING=1"
    sock.close()


def test_without_hall_the_installed_hall_is_used_and_the_demo_is_said(tmp_path):
    """--hall, else $VUORO_HALL, else /etc/vuoro/hall.toml, else the demo hall with a note on stderr (this test
    machine has no /etc/vuoro/hall.toml: config.find_hall_file's own test covers that step)."""
    assert not INSTALLED_HALL.exists(), f"{INSTALLED_HALL} on a test machine"
    own = tmp_path / "hall.toml"
    own.write_text(DEMO_HALL.read_text(encoding="utf-8").replace('id = "kvarnby"', 'id = "myllyla"', 1),
                   encoding="utf-8")
    mine = vuoro("provision", "--out", str(tmp_path / "mine"), "--hasher", "python", VUORO_HALL=str(own))
    assert mine.returncode == 0, mine.stderr
    assert "hall myllyla: " in mine.stdout and "demo hall" not in mine.stderr
    demo = vuoro("provision", "--out", str(tmp_path / "demo"), "--hasher", "python")
    assert demo.returncode == 0, demo.stderr
    assert "hall kvarnby: " in demo.stdout
    assert f"no hall file given (--hall, $VUORO_HALL) and no {INSTALLED_HALL}: using the demo hall" in demo.stderr


def test_a_hall_runner_is_findable_while_it_runs_and_not_after(tmp_path, monkeypatch):
    """cli.announced, which `vuoro server` and `vuoro demo` both run their hall in: the runfile the command line
    reads exists exactly as long as the block, and is left alone if another server has taken it over."""
    from broker import runfile
    from broker.config import load_hall
    from broker.mqtt import BrokerAddress
    from vuoro import cli

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    hall = load_hall(DEMO_HALL)
    args = cli.build_parser().parse_args(["demo", "--headless"])
    address = BrokerAddress.parse("mqtt://127.0.0.1:41883")
    with pytest.raises(RuntimeError), cli.announced(args, hall, address):
        assert runfile.read(hall.id) == address.url
        raise RuntimeError("the hall stopped on an error")
    assert runfile.read(hall.id) is None
    with cli.announced(args, hall, address):
        runfile.write(hall.id, "mqtt://127.0.0.1:42883")  # a second server started meanwhile
    assert runfile.read(hall.id) == "mqtt://127.0.0.1:42883"
