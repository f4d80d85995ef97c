"""`vuoro ticket --printer`, `vuoro kiosk --test-print` and `vuoro kiosk --snapshot` as IT runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from kiosk.fake_printer import FakeEscposPrinter, Paper, parse_escpos
from tests.support.brokers import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.slow


def vuoro(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER", "DISPLAY")}
    env.update(SDL_VIDEODRIVER="offscreen", SDL_AUDIODRIVER="dummy", KIVY_HOME=tempfile.mkdtemp(prefix="vuoro-kivy-"))
    return subprocess.run([sys.executable, "-m", "vuoro.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture
def server(mosquitto, tmp_path):
    process = ServerProcess(tmp_path / "hall.sqlite", mosquitto.address).start()
    yield mosquitto.address.url
    assert process.stop() == 0


def test_reception_prints_the_drawn_ticket_as_the_kiosk_would(server, tmp_path):
    raw = tmp_path / "ticket.bin"
    result = vuoro("ticket", "B", "--lang", "fi", "--broker", server, "--printer", f"file://{raw}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("B001") and "printed on file://" in result.stderr
    commands = [c.name for c in parse_escpos(raw.read_bytes())[0]]
    assert "cut" in commands and b"B001" in raw.read_bytes()

    previews = tmp_path / "previews"
    result = vuoro("ticket", "C", "--broker", server, "--printer", f"preview://{previews}?paper=58")
    assert result.returncode == 0, result.stderr
    [png] = list(previews.glob("*.png"))
    assert "C001" in png.name and Image.open(png).width == 384  # 58 mm paper: 48 mm printable at 8 dots/mm


def test_reception_is_told_when_the_ticket_was_drawn_but_not_printed(server):
    with FakeEscposPrinter(serial=False) as printer:
        printer.set_paper(Paper.OUT)
        result = vuoro("ticket", "A", "--broker", server, "--printer", printer.tcp_uri)
        assert result.returncode == 1
        assert result.stdout.startswith("A001")  # the visitor still has a number to be called by
        assert "A001 was issued but NOT printed: paper_out" in result.stderr
        assert b"A001" not in printer.received()


def test_test_print_reports_the_printer_status(tmp_path):
    with FakeEscposPrinter(serial=False) as printer:
        ok = vuoro("kiosk", "--test-print", "--printer", printer.tcp_uri)
        assert ok.returncode == 0, ok.stderr
        assert "online" in ok.stdout and "test ticket printed (80 mm" in ok.stdout
        assert any(c.name == "cut" for c in printer.commands())
        printer.set_paper(Paper.OUT)
        out = vuoro("kiosk", "--test-print", "--printer", printer.tcp_uri)
        assert out.returncode == 1 and "NOT printed: paper_out" in out.stderr


def test_snapshot_shows_the_synced_kiosk_in_the_chosen_language(server, tmp_path):
    path = tmp_path / "kiosk-fi.png"
    result = vuoro("kiosk", "--broker", server, "--snapshot", str(path), "--lang", "fi",
                   "--printer", f"preview://{tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "topic screen written" in result.stdout
    assert Image.open(path).size == (540, 960)


def test_snapshot_without_a_server_shows_out_of_service_and_says_so(tmp_path):
    path = tmp_path / "kiosk-off.png"
    result = vuoro("kiosk", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--snapshot", str(path),
                   "--printer", f"preview://{tmp_path}", timeout=90)
    assert result.returncode == 3
    assert "no hall server" in result.stderr and "out_of_service screen written" in result.stdout
    assert Path(path).is_file()
