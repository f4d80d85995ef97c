"""`vuoro demo`: the whole hall from one command, with windows and without."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from broker.client import HallClient
from broker.config import DEMO_HALL, load_hall
from broker.mqtt import BrokerAddress
from tests.support.brokers import free_port

pytestmark = pytest.mark.slow


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER", "DISPLAY")}
    env.update(KIVY_HOME=tempfile.mkdtemp(prefix="vuoro-kivy-"), SDL_AUDIODRIVER="dummy", **extra)
    return env


def test_headless_demo_plays_a_morning_and_sums_it_up_from_the_log(tmp_path):
    db = tmp_path / "demo.sqlite"
    result = subprocess.run([sys.executable, "-m", "broker.cli", "demo", "--headless", "--visitors", "40",
                             "--speed", "3000", "--db", str(db), "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=240, cwd=tmp_path, env=demo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "40 visitors" in out and "40 tickets drawn" in out
    assert " drawn at K1 " in out and " called to counter " in out and " done at counter " in out
    assert "within the printed range" in out
    assert db.is_file()


def test_demo_without_a_screen_says_so_and_runs_headless(tmp_path):
    result = subprocess.run([sys.executable, "-m", "broker.cli", "demo", "--visitors", "5", "--speed", "5000",
                             "--quiet", "--db", str(tmp_path / "d.sqlite"), "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=240, cwd=tmp_path, env=demo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no screen here" in result.stdout and "5 tickets drawn" in result.stdout
    assert " drawn at K1 " not in result.stdout  # --quiet: the summary only


def test_demo_brings_up_five_device_windows_and_stops_them_all_on_ctrl_c(tmp_path):
    port = free_port()
    env = demo_env(DISPLAY=":vuoro-test", SDL_VIDEODRIVER="offscreen")  # windows drawn offscreen
    proc = subprocess.Popen([sys.executable, "-m", "broker.cli", "demo", "--db", str(tmp_path / "demo.sqlite"),
                             "--listen", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hall = load_hall(DEMO_HALL)
    watcher = HallClient(BrokerAddress("127.0.0.1", port), hall.id, "admin", "demo-test", presence=False, watch=True)
    expected = {"device/kiosk/K1", "device/counter/1", "device/counter/4", "device/display/entrance",
                "device/display/upstairs"}
    try:
        deadline = time.monotonic() + 60
        while not watcher.start(timeout=1) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
        assert watcher.wait_for(lambda state: all(state.get(part, {}).get("status") == "online" for part in expected),
                                timeout=90), f"devices online: {sorted(k for k in watcher.snapshot() if 'device' in k)}"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        watcher.close()
    assert proc.returncode == 0, err[-3000:]
    assert "vuoro demo: stopped" in out
    for device in ("kiosk-K1", "counter-1", "counter-4", "display-entrance", "display-upstairs"):
        assert (tmp_path / "var" / "logs" / f"{device}.log").is_file()
