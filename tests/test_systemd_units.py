"""The shipped systemd units pass `systemd-analyze verify`, installed the way the README and assets/pi/setup-pi.sh
install them: copied from the package with the venv's path put in, and each template as an instance.

The units name /opt/vuoro/.venv/bin/vuoro; verify refuses a unit whose program does not exist, so the test
renders them for the venv that runs the tests, as the setup script does for another venv (VENV=...)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import assets

VERIFY = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
INSTALLED_VENV = "/opt/vuoro/.venv"
INSTANCES = {"kiosk": "K1", "counter": "3", "display": "entrance"}


def render(unit: Path, venv: str) -> str:
    """A unit as setup-pi.sh writes it into /etc/systemd/system for a venv elsewhere than /opt/vuoro/.venv."""
    return unit.read_text(encoding="utf-8").replace(f"{INSTALLED_VENV}/bin/", f"{venv}/bin/")


def shipped_units() -> list[Path]:
    units = sorted(assets.path("systemd").glob("*.service"))
    assert {u.name for u in units} >= {"vuoro-server.service", "vuoro-kiosk@.service", "vuoro-counter@.service",
                                       "vuoro-display@.service"}
    return units


def test_every_shipped_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if not Path(VERIFY).exists():
        pytest.fail("systemd-analyze is not installed (Debian: the systemd package)")
    venv = str(Path(sys.executable).parent.parent)
    assert Path(venv, "bin", "vuoro").exists(), "the test venv has no vuoro script"
    paths = []
    for unit in shipped_units():
        text = render(unit, venv)
        assert f"{venv}/bin/vuoro " in text
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
        paths.append(tmp_path / unit.name)
        app = unit.name.removeprefix("vuoro-").split("@")[0].split(".")[0]
        if "@" in unit.name:  # a template as systemctl enable vuoro-kiosk@K1 instantiates it
            instance = tmp_path / unit.name.replace("@.", f"@{INSTANCES[app]}.")
            instance.write_text(text, encoding="utf-8")
            paths.append(instance)
    run = subprocess.run([VERIFY, "verify", *map(str, paths)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    ours = [line for line in (run.stdout + run.stderr).splitlines() if "vuoro" in line]
    assert not ours, "\n".join(ours)  # an unknown key is only a warning to verify: none of those either


def test_a_typo_in_a_unit_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key and a program that is not there both show."""
    unit = next(u for u in shipped_units() if u.name == "vuoro-server.service")
    bad = tmp_path / "vuoro-server.service"
    bad.write_text(render(unit, "/nonexistent/venv").replace("Restart=always", "Restart=always\nRestrat=2"))
    run = subprocess.run([VERIFY, "verify", str(bad)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode != 0 and "Restrat" in run.stderr and "/nonexistent/venv/bin/vuoro" in run.stderr


def test_the_units_start_where_the_hall_runs_and_say_when_they_are_ready() -> None:
    """The server is "started" only when ready (Type=notify: sd_notify from `vuoro server`), and a refused
    account does not loop; the screens start on a console boot (multi-user.target, not graphical.target)."""
    texts = {u.name: u.read_text(encoding="utf-8") for u in shipped_units()}
    server = texts["vuoro-server.service"]
    assert "Type=notify" in server and "RestartPreventExitStatus=4" in server
    for name, text in texts.items():
        if "@" in name:
            assert "WantedBy=multi-user.target" in text and "WantedBy=graphical.target" not in text, name
            assert "Environment=KCFG_GRAPHICS_SHOW_CURSOR=0" in text, name
