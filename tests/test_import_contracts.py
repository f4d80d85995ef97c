"""The map of the house (pyproject's [tool.importlinter]) holds, and the check fails on a planted violation.

lint-imports reads the import graph statically (grimp), so a planted copy of the packages in a temporary folder is
checked without importing any of it; PYTHONPATH puts the copy before the installed (editable) packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("broker", "ui", "kiosk", "counter", "display", "ops", "analytics", "web", "city", "vuoro")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(LINT), "--no-cache", str(root / "pyproject.toml")], cwd=root, env=env,
                          text=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("house")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "static",
                                                                                      "templates", "migrations"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_house_keeps_its_map() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("broker/engine.py", "import time", "pure models"),  # the engine keeps no clock of its own
    ("counter/model.py", "import kivy", "pure models"),  # a model draws nothing
    ("broker/service.py", "from kiosk import ticket", "Layers"),  # the server imports no device
    ("counter/app.py", "from kiosk import printer", "Layers"),  # a device never imports another
    ("analytics/report.py", "from ops import provision", "Layers"),  # analytics uses the server's vocabulary only
    ("ops/doctor.py", "from vuoro import cli", "Layers"),  # only the command line imports it
    ("web/app.py", "import kivy", "never import Kivy"),  # the web server draws no window
])
def test_a_planted_violation_fails_the_check(copy: Path, module: str, line: str, contract: str) -> None:
    target = copy / module
    original = target.read_text(encoding="utf-8")
    target.write_text(original + f"\n{line}  # planted\n", encoding="utf-8")
    try:
        result = _lint(copy)
    finally:
        target.write_text(original, encoding="utf-8")
    assert result.returncode != 0, f"{line} in {module} passed the import contracts"
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract.lower() in broken.lower(), broken[-2000:]
