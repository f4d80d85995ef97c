"""Run a test file as a process of its own with a Kivy window (its `__main__` part draws and measures), and read the
JSON report it prints last: Kivy's window lives once per process, and a test process must not keep one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHILD_S = 300.0  # only bounds a child that hangs


def run_window_child(argv: list[str], kivy_home: Path, timeout_s: float = CHILD_S) -> dict[str, Any]:
    """`python ARGV...` (a test file's path and its arguments, or -m and a module)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIVY_HOME": str(kivy_home), "KIVY_NO_ARGS": "1",
           "KIVY_NO_CONSOLELOG": "1"}
    done = subprocess.run([sys.executable, *argv], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)
    log = "".join(path.read_text(errors="replace") for path in sorted(kivy_home.glob("logs/*.txt")))
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n--- Kivy log\n{log[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report
