"""The `vuoro` command as a person runs it: server, ticket, call, status, and a broken config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.brokers import DEMO_HALL, ROOT, ServerProcess, free_port

pytestmark = pytest.mark.slow


def vuoro(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER")}
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], capture_output=True, text=True,
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
    port = free_port()
    server = ServerProcess(tmp_path / "demo.sqlite", None, extra=["--listen", f"127.0.0.1:{port}"]).start()
    try:
        assert f"mqtt://127.0.0.1:{port}" in server.ready_line
        result = vuoro("ticket", "general", "--json", "--broker", f"mqtt://127.0.0.1:{port}")
        assert json.loads(result.stdout)["result"]["ticket"]["number"] == "A001"
    finally:
        assert server.stop() == 0
