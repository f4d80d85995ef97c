"""`vuoro demo`: the whole hall from one command, with windows and without."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from broker.client import HallClient
from broker.config import DEMO_HALL, load_hall
from broker.mqtt import BrokerAddress
from tests.support.brokers import free_port
from tests.support.wait import CONNECT_S, wait_until

pytestmark = pytest.mark.slow

STOP_S = 60.0  # how long a stopping demo gets: its server, broker and devices each stop in turn


def demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The demo's environment: no screen unless given, and a runtime folder of its own, so that its runfile is
    not the one of a demo or server the developer runs."""
    env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER", "DISPLAY")}
    (tmp_path / "kivy").mkdir(exist_ok=True)
    env.update(KIVY_HOME=str(tmp_path / "kivy"), SDL_AUDIODRIVER="dummy", XDG_RUNTIME_DIR=str(tmp_path), **extra)
    return env


def runfile_in(tmp_path: Path) -> Path:
    return tmp_path / f"vuoro-{os.getuid()}" / "kvarnby.broker"


class Lines:
    """A process's output, read line by line as it comes, so a test can wait for one."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), name="demo-output", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def close(self) -> None:
        self._thread.join(timeout=STOP_S)

    def __str__(self) -> str:
        return "".join(self.lines[-40:])


def test_headless_demo_plays_a_morning_and_sums_it_up_from_the_log(tmp_path):
    db = tmp_path / "demo.sqlite"
    result = subprocess.run([sys.executable, "-m", "vuoro.cli", "demo", "--headless", "--visitors", "40",
                             "--speed", "3000", "--db", str(db), "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=240, cwd=tmp_path, env=demo_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "40 visitors" in out and "40 tickets drawn" in out
    assert " drawn at K1 " in out and " called to counter " in out and " done at counter " in out
    assert "within the printed range" in out
    assert db.is_file()


def test_demo_without_a_screen_says_so_and_runs_headless(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vuoro.cli", "demo", "--visitors", "5", "--speed", "5000",
                             "--quiet", "--db", str(tmp_path / "d.sqlite"), "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=240, cwd=tmp_path, env=demo_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no screen here" in result.stdout and "5 tickets drawn" in result.stdout
    assert " drawn at K1 " not in result.stdout  # --quiet: the summary only


def test_demo_brings_up_five_device_windows_and_stops_them_all_on_ctrl_c(tmp_path):
    port = free_port()
    env = demo_env(tmp_path, DISPLAY=":vuoro-test", SDL_VIDEODRIVER="offscreen")  # windows drawn offscreen
    proc = subprocess.Popen([sys.executable, "-m", "vuoro.cli", "demo", "--db", str(tmp_path / "demo.sqlite"),
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


def vuoro(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A command in a second terminal: no --broker, so it must find the demo by itself."""
    return subprocess.run([sys.executable, "-m", "vuoro.cli", *argv], capture_output=True, text=True,
                           timeout=STOP_S, cwd=tmp_path, env=demo_env(tmp_path))


def test_the_command_line_in_a_second_terminal_finds_the_demo(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vuoro.cli", "demo", "--headless", "--keep-running",
                             "--visitors", "5", "--speed", "5000", "--quiet", "--db", str(tmp_path / "d.sqlite"),
                             "--listen", f"127.0.0.1:{port}"], cwd=tmp_path, env=demo_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = Lines(proc.stdout)
    try:
        wait_until(lambda: out.has("keeps running") or proc.poll() is not None, STOP_S + CONNECT_S,
                   lambda: f"the demo to play its morning and keep running:\n{out}")
        assert proc.poll() is None, str(out)
        assert runfile_in(tmp_path).read_text().strip() == f"mqtt://127.0.0.1:{port}"
        status = vuoro("status", tmp_path=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "(kvarnby)" in status.stdout and "server: online" in status.stdout, status.stdout
        ticket = vuoro("ticket", "general", tmp_path=tmp_path)
        assert ticket.returncode == 0, ticket.stderr
        assert re.match(r"A\d{3} ", ticket.stdout), ticket.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=STOP_S)
        out.close()
    assert proc.returncode == 0, str(out)
    assert "vuoro demo: stopped" in str(out)
    assert not runfile_in(tmp_path).exists()  # gone with the demo: the next command looks elsewhere


def test_a_reader_going_away_does_not_stop_the_demo(tmp_path):
    """`vuoro demo --headless | head -1`: the demo runs on, quietly, and stops cleanly when asked."""
    proc = subprocess.Popen([sys.executable, "-m", "vuoro.cli", "demo", "--headless", "--keep-running",
                             "--visitors", "40", "--speed", "3000", "--db", str(tmp_path / "d.sqlite"),
                             "--listen", f"127.0.0.1:{free_port()}"], cwd=tmp_path, env=demo_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    err = Lines(proc.stderr)
    try:
        first = proc.stdout.readline()
        assert first.startswith("vuoro demo --headless: hall kvarnby"), first + str(err)
        proc.stdout.close()  # as `head -1` does: every line after this one goes into a closed pipe
        wait_until(lambda: "40 issued" in vuoro("status", tmp_path=tmp_path).stdout or proc.poll() is not None,
                   STOP_S, "the demo to play on after its reader left, until all 40 visitors have drawn tickets")
        assert proc.poll() is None, str(err)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=STOP_S)
        err.close()
    assert proc.returncode == 0, str(err)
    assert "Traceback" not in str(err) and "BrokenPipe" not in str(err), str(err)


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for whoever adopted it to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_device_processes_die_with_a_demo_killed_outright(tmp_path):
    """SIGKILL leaves the demo no time to stop its devices: the kernel does, for those it spawned with
    broker.children.spawn (as run_windows does). A child started plainly stays: the contrast that shows the
    test can see a survivor."""
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from broker.children import spawn\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(600)']\n"
        "kids = [spawn(sleeper, start_new_session=True) for _ in range(3)]\n"
        "plain = subprocess.Popen(sleeper, start_new_session=True)\n"
        "print(plain.pid, *(k.pid for k in kids), flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert parent.stdout is not None
    plain, *kids = (int(pid) for pid in parent.stdout.readline().split())
    try:
        assert kids and not any(gone(pid) for pid in [plain, *kids])
        parent.kill()
        parent.wait(timeout=STOP_S)
        wait_until(lambda: all(gone(pid) for pid in kids), STOP_S,
                   lambda: f"the spawned children to die with their parent: {[p for p in kids if not gone(p)]} live")
        assert not gone(plain)
    finally:
        for pid in [plain, *kids]:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
