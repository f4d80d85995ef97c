"""Vuoro as municipal IT installs it: `python -m build`, the wheel into a fresh virtualenv outside the repository
(not editable), and a hall of their own run from a temporary folder with nothing of the repository in reach.

The hall is not the demo: Myllylä, Finnish first, then Swedish, three topics. `vuoro provision` (plain, then
--tls) makes the accounts; a real Mosquitto runs the config it wrote (only its listeners moved to free ports of
127.0.0.1); the hall server logs in with its own credentials, a kiosk draws and prints a ticket with its own, a
counter calls it with its own, IT looks with `vuoro status`, a display takes a snapshot, the service manager
runs `vuoro report`, and `vuoro doctor` checks the kiosk over TLS. The wheel is built and installed once per
session (pip's cache makes a second run fast; the first one on a new machine downloads from PyPI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.brokers import ROOT, MosquittoBroker, free_port, mosquitto_binary
from tests.support.secured import broker_dir

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto, pytest.mark.timeout(900)]

BUILD_S = 300  # the wheel and the sdist; the first build on a machine fetches setuptools
INSTALL_S = 600  # vuoro[all] into a fresh venv: Kivy and matplotlib, from PyPI on a new machine
COMMAND_S = 120  # one `vuoro ...` from the venv (the display's snapshot starts Kivy)
READY_S = 60  # the hall server up and online
REFUSED_S = 10  # the bound: a wrong password ends `vuoro server` within 10 s

HALL = """\
[hall]
id = "myllyla"
languages = ["fi", "sv"]
timezone = "Europe/Helsinki"
colour = "#23395d"
name = { fi = "Myllylän asiointipiste", sv = "Kvarnby servicepunkt" }

[hours]
mon = "08:00-16:00"
tue = "08:00-16:00"
wed = "08:00-16:00"
thu = "08:00-16:00"
fri = "08:00-16:00"
sat = "closed"
sun = "closed"

[[topics]]
id = "neuvonta"
letter = "A"
colour = "#1d4e89"
target_wait_min = 15
service_time_min = 5
name = { fi = "Yleinen neuvonta", sv = "Allmän rådgivning" }
description = { fi = "Kaikki muut asiat", sv = "Alla andra ärenden" }

[[topics]]
id = "luvat"
letter = "B"
colour = "#1b5e20"
target_wait_min = 20
service_time_min = 12
name = { fi = "Rakennusluvat", sv = "Bygglov" }
description = { fi = "Rakentaminen ja korjaaminen", sv = "Bygga och renovera" }

[[topics]]
id = "pysakointi"
letter = "C"
colour = "#6a1b9a"
target_wait_min = 20
service_time_min = 6
name = { fi = "Pysäköinti", sv = "Parkering" }
description = { fi = "Pysäköintiluvat ja -virheet", sv = "Parkeringstillstånd och -avgifter" }

[[counters]]
id = "1"
tiers = [["neuvonta", "pysakointi"], ["luvat"]]
name = { fi = "Piste 1", sv = "Disk 1" }
location = { fi = "Aula", sv = "Lobbyn" }
wayfinding = { fi = "Suoraan edessä", sv = "Rakt fram" }

[[counters]]
id = "2"
tiers = [["luvat"], ["neuvonta"]]
name = { fi = "Piste 2", sv = "Disk 2" }
location = { fi = "Aula", sv = "Lobbyn" }
wayfinding = { fi = "Vasemmalla", sv = "Till vänster" }

[[kiosks]]
id = "K1"
printer = "file:///dev/null"
name = { fi = "Sisäänkäynti", sv = "Entrén" }

[[displays]]
id = "aula"
name = { fi = "Aula", sv = "Lobbyn" }
directions = { "1" = "ahead", "2" = "left" }
"""


# ---------------------------------------------------------------- the wheel and the venv, once per session

def _copy_source(target: Path) -> Path:
    """The source as a clone has it, without this checkout's venv, caches or earlier builds: building in a
    copy leaves the work tree as it was (setuptools writes build/ and *.egg-info beside pyproject.toml)."""
    skip = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__",
                                  ".*_cache", ".hypothesis", "docs", "bench", "tests")
    shutil.copytree(ROOT, target, ignore=skip)
    return target


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`python -m build`: the sdist, and the wheel built from that sdist (so both carry the package data)."""
    work = tmp_path_factory.mktemp("build")
    source = _copy_source(work / "vuoro")
    out = work / "dist"
    run = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                         capture_output=True, text=True, timeout=BUILD_S)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    wheels, sdists = sorted(out.glob("vuoro-*.whl")), sorted(out.glob("vuoro-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing that points back into the repository."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP") and not k.startswith("VUORO_")}
    env["VUORO_MDNS_INTERFACES"] = "127.0.0.1"  # zeroconf stays on this machine, as in every test
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def venv(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the wheel and every role's extra: a one-box hall."""
    home = tmp_path_factory.mktemp("opt") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=120)
    run = subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "-q",
                          f"vuoro[all] @ {built['wheel'].as_uri()}"],
                         capture_output=True, text=True, timeout=INSTALL_S, env=_clean_env(), cwd=home)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return home


# ---------------------------------------------------------------- what is in the wheel

def _package_files(folder: str) -> set[str]:
    """Every file the repository holds in a package folder, except Python caches."""
    base = ROOT / folder
    return {f"{folder}/{p.relative_to(base).as_posix()}" for p in base.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".mo"))}


def test_the_wheel_and_the_sdist_carry_every_file_a_command_reads(built: dict[str, Path]) -> None:
    """Everything under assets/ (halls, catalogues, Mosquitto templates, units, fonts, sounds, Pi files) and the
    web pages' templates and static files: a file added there later and left out of package-data fails here."""
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    expected = _package_files("assets") | _package_files("web")
    missing = sorted(expected - names)
    assert not missing, f"left out of the wheel (pyproject [tool.setuptools.package-data]): {missing}"
    assert "assets/halls/demo.toml" in names and "assets/mosquitto/vuoro.conf" in names
    with tarfile.open(built["sdist"]) as sdist:
        in_sdist = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert "assets/locale/fi/LC_MESSAGES/vuoro.po" in in_sdist and "assets/systemd/vuoro-server.service" in in_sdist


def test_the_roles_install_only_what_they_use(built: dict[str, Path], venv: Path, tmp_path: Path) -> None:
    """pip's own resolver, asked for each role: a display pulls neither matplotlib nor python-escpos, the base
    no Kivy; the kiosk does get its printer and Kivy (so that the check can fail)."""
    def resolved(role: str) -> set[str]:
        report = tmp_path / f"{role}.json"
        spec = built["wheel"].as_uri() if role == "base" else f"vuoro[{role}] @ {built['wheel'].as_uri()}"
        run = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--ignore-installed",
                              "-q", "--report", str(report), spec],
                             capture_output=True, text=True, timeout=INSTALL_S, env=_clean_env(), cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        items = json.loads(report.read_text())["install"]
        return {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower() for item in items}

    display = resolved("display")
    assert "kivy" in display
    assert not display & {"matplotlib", "numpy", "python-escpos", "amqtt", "cryptography"}, display
    kiosk = resolved("kiosk")
    assert {"kivy", "python-escpos", "pillow", "qrcode"} <= kiosk and "matplotlib" not in kiosk
    base = resolved("base")
    assert {"paho-mqtt", "babel"} <= base and not base & {"kivy", "matplotlib", "python-escpos", "amqtt"}


def test_a_machine_without_a_role_s_extra_is_told_which_to_install(built: dict[str, Path],
                                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """The base alone (what `pip install vuoro` gives): the commands of other roles end at once with the extra to
    install, never on an ImportError, and a screen command says so before it looks for its hall on the LAN."""
    home = tmp_path_factory.mktemp("base") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=120)
    work = home.parent
    env = _clean_env(HOME=str(work), XDG_RUNTIME_DIR=str(work))
    run = subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "-q", str(built["wheel"])],
                         capture_output=True, text=True, timeout=INSTALL_S, env=env, cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]

    def vuoro(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(home / "bin" / "vuoro"), *args], capture_output=True, text=True, cwd=work,
                              env=env, timeout=COMMAND_S)

    for args, extra in ((["display", "--id", "entrance"], "ui"), (["provision", "--out", "b", "--tls"], "provision"),
                        (["kiosk", "--test-print", "--printer", (work / "paper").as_uri()], "printer")):
        refused = vuoro(*args)
        assert refused.returncode == 2 and f"pip install 'vuoro[{extra}]'" in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr and "not found on the network" not in refused.stderr
    plain = vuoro("provision", "--out", "b", "--hasher", "python")  # the base can make the accounts
    assert plain.returncode == 0 and "using the demo hall" in plain.stderr, plain.stderr
    doctor = vuoro("doctor", "--credentials", str(work / "b" / "credentials" / "kvarnby" / "kiosk-K1.toml"),
                   "--broker", f"mqtt://127.0.0.1:{free_port()}")  # nobody there: only the local checks run
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr
    lines = doctor.stdout.splitlines()
    assert any(line.startswith("  FAIL  the printer's libraries are not installed here") for line in lines), lines
    assert any(line.startswith("  ok    credentials ") for line in lines), lines  # the checks before it stand


# ---------------------------------------------------------------- a hall of IT's own, from the venv

@dataclass
class Field:
    venv: Path
    work: Path  # the working folder every command runs in
    broker_dir: Path  # what `vuoro provision --out` wrote
    port: int  # Mosquitto's plain listener (the hall server's, on loopback)
    tls_port: int  # the devices' TLS listener
    env: dict[str, str]

    def creds(self, name: str) -> Path:
        return self.broker_dir / "credentials" / "myllyla" / f"{name}.toml"

    def vuoro(self, *args: str, timeout: float = COMMAND_S, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / "vuoro"), *args], capture_output=True, text=True,
                              cwd=self.work, env={**self.env, **env}, timeout=timeout)


def _tls_config(conf: str, port: int, tls_port: int, db: Path) -> str:
    """provision's vuoro.conf with only its listeners moved to free ports of 127.0.0.1, and its database in a
    folder of the test: what a Debian Mosquitto with the file linked into conf.d runs."""
    lines = []
    for line in conf.splitlines():
        if line.startswith("listener 1883"):
            line = f"listener {port} 127.0.0.1"
        elif line.startswith("listener 8883"):
            line = f"listener {tls_port} 127.0.0.1"
        lines.append(line)
    assert sum(line.startswith("listener ") for line in lines) == 2, conf
    return "\n".join(lines) + f"\npersistence_location {db}/\nlog_dest stderr\nlog_type error\nlog_type warning\n"


@pytest.fixture(scope="module")
def field(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Field]:
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run bin/test, which installs it")
    work = tmp_path_factory.mktemp("myllyla")
    (work / "hall.toml").write_text(HALL, encoding="utf-8")
    out = broker_dir()  # Mosquitto, started as root, reads its files as its own user
    port, tls_port = free_port(), free_port()
    while tls_port == port:
        tls_port = free_port()
    env = _clean_env(VUORO_HALL=str(work / "hall.toml"), XDG_RUNTIME_DIR=str(work),
                     KIVY_HOME=str(work / "kivy"), HOME=str(work))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    f = Field(venv, work, out, port, tls_port, env)
    plain = f.vuoro("provision", "--out", str(out), "--hasher", "python")
    assert plain.returncode == 0, plain.stderr
    assert "hall myllyla: " in plain.stdout and "kiosk-K1.toml" in plain.stdout  # the name the units read
    assert f.creds("kiosk-K1").is_file() and f.creds("server").is_file()
    secured = f.vuoro("provision", "--out", str(out), "--tls", "--server-name", "127.0.0.1",
                      "--broker", f"mqtts://127.0.0.1:{tls_port}")
    assert secured.returncode == 0, secured.stderr
    assert "TLS: CA" in secured.stdout and "unchanged: " in secured.stdout  # the plain run's passwords kept
    db = out / "db"
    db.mkdir(mode=0o777)
    os.chmod(db, 0o777)
    broker = MosquittoBroker(port, config=_tls_config((out / "vuoro.conf").read_text(), port, tls_port, db),
                             extra_ports=(tls_port,)).start()
    server = subprocess.Popen([str(venv / "bin" / "vuoro"), "server", "--credentials", str(f.creds("server")),
                               "--broker", f"mqtt://127.0.0.1:{port}", "--db", str(work / "myllyla.sqlite"),
                               "--always-open"],
                              cwd=work, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                              stderr=open(work / "server.log", "w"), text=True)  # noqa: SIM115
    try:
        assert server.stdout is not None
        line = _read_line(server, READY_S)
        assert line.endswith("ready"), f"{line!r}\n{(work / 'server.log').read_text()}"
        yield f
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        broker.close()
        shutil.rmtree(out, ignore_errors=True)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The server's first line on stdout (its "ready"), or what it said on stderr when it ended instead."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return "(nothing within the deadline)"
    return proc.stdout.readline().strip()


def test_the_commands_run_from_the_venv_with_nothing_of_the_repository(field: Field) -> None:
    """cwd a temporary folder, no PYTHONPATH: every module, and the package data, come from site-packages."""
    purelib = Path(subprocess.run([str(field.venv / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True, cwd=field.work,
                                  env=field.env).stdout.strip())
    where = subprocess.run([str(field.venv / "bin" / "python"), "-c",
                            "import assets, vuoro.cli, broker.config, ui.i18n, display.audio, counter\n"
                            "for m in (assets, vuoro.cli, ui.i18n, display.audio, counter):\n"
                            "    print(m.__file__)\n"
                            "print(broker.config.DEMO_HALL); print(ui.i18n.LOCALE_DIR)"],
                           capture_output=True, text=True, cwd=field.work, env=field.env, timeout=COMMAND_S)
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert Path(path).is_relative_to(purelib), f"{path} is not in the venv's site-packages {purelib}"
        assert not Path(path).resolve().is_relative_to(ROOT.resolve()), path
    assert purelib.is_relative_to(field.venv)


def test_a_kiosk_draws_and_prints_a_ticket_with_its_own_credentials(field: Field) -> None:
    """`vuoro ticket` acts as the kiosk of its credentials (kiosk K1, over TLS to the broker they name), in the
    hall's main language, Finnish; and prints it to a file exactly as the kiosk would."""
    paper = field.work / "ticket.bin"
    run = field.vuoro("ticket", "neuvonta", "--credentials", str(field.creds("kiosk-K1")),
                      "--printer", paper.as_uri())
    assert run.returncode == 0, run.stderr
    assert re.match(r"A\d{3}  Yleinen neuvonta  \[fi\]", run.stdout), run.stdout
    assert paper.stat().st_size > 200 and b"A0" in paper.read_bytes()
    other = field.vuoro("ticket", "neuvonta", "--device", "K9", "--credentials", str(field.creds("kiosk-K1")))
    assert other.returncode == 4 and "not allowed for this account" in other.stderr, other.stderr


def test_a_counter_calls_with_its_own_credentials_and_only_for_itself(field: Field) -> None:
    creds = str(field.creds("counter-1"))
    assert field.vuoro("ticket", "B", "--credentials", str(field.creds("kiosk-K1"))).returncode == 0
    opened = field.vuoro("call", "1", "open", "--credentials", creds)
    assert opened.returncode == 0 and "counter 1: open" in opened.stdout, opened.stderr
    called = field.vuoro("call", "1", "next", "--credentials", creds)
    assert called.returncode == 0 and " is called" in called.stdout, called.stderr
    done = field.vuoro("call", "1", "done", "--credentials", creds)
    assert done.returncode == 0, done.stderr
    foreign = field.vuoro("call", "2", "open", "--credentials", creds)
    assert foreign.returncode == 4 and "not allowed for this account" in foreign.stderr, foreign.stderr


def test_it_sees_the_hall_with_status(field: Field) -> None:
    run = field.vuoro("status", "--credentials", str(field.creds("admin-it")), "--broker",
                      f"mqtt://127.0.0.1:{field.port}")
    assert run.returncode == 0, run.stderr
    assert "Myllylän asiointipiste (myllyla)   server: online" in run.stdout
    assert "demo hall" not in run.stderr  # $VUORO_HALL was used, and nothing fell back to Kvarnby


def test_a_display_takes_a_snapshot_with_its_own_credentials(field: Field) -> None:
    png = field.work / "aula.png"
    run = field.vuoro("display", "--id", "aula", "--credentials", str(field.creds("display-aula")), "--mute",
                      "--size", "960x540", "--snapshot", str(png), SDL_VIDEODRIVER="offscreen",
                      SDL_AUDIODRIVER="dummy")
    assert run.returncode == 0, run.stderr[-3000:]
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_is_written_from_the_event_log(field: Field) -> None:
    assert field.vuoro("ticket", "C", "--credentials", str(field.creds("kiosk-K1"))).returncode == 0
    out = field.work / "report"
    run = field.vuoro("report", "--db", str(field.work / "myllyla.sqlite"), "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and list(out.glob("*.csv"))


def test_doctor_checks_the_broker_the_credentials_name_with_tls(field: Field) -> None:
    """The kiosk's credentials name mqtts://127.0.0.1:TLS_PORT and the hall's CA: doctor goes there, checks the
    certificate, logs in, and the hall server answers. No screen here: that one line fails, nothing else."""
    run = field.vuoro("doctor", "--credentials", str(field.creds("kiosk-K1")))
    lines = run.stdout.splitlines()
    assert f"  ok    hall server's broker: mqtts://127.0.0.1:{field.tls_port} (from credentials file)" in lines, \
        run.stdout
    assert any(line.startswith("  ok    TLS: the broker's certificate is signed by the hall's CA") for line in lines)
    assert "  ok    the hall server is online and answers kiosk K1" in lines, run.stdout
    failed = [line for line in lines if line.startswith("  FAIL")]
    assert [line.split(":")[0] for line in failed] == ["  FAIL  no display"], run.stdout
    admin = field.vuoro("doctor", "--credentials", str(field.creds("admin-it")), "--broker",
                        f"mqtts://127.0.0.1:{field.tls_port}")
    assert admin.returncode == 0, admin.stdout


def test_a_wrong_password_stops_the_server_with_the_account_named(field: Field) -> None:
    """Not "not reachable yet", not "ready": the refusal, naming the account, and its own exit code."""
    text = field.creds("server").read_text()
    wrong = field.work / "server-wrong.toml"
    wrong.write_text(re.sub(r'password = ".*"', 'password = "not-the-password"', text))
    wrong.chmod(0o600)
    run = field.vuoro("server", "--credentials", str(wrong), "--broker", f"mqtt://127.0.0.1:{field.port}",
                      "--db", str(field.work / "wrong.sqlite"), timeout=REFUSED_S)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "refused the login of myllyla/server" in run.stderr and "ready" not in run.stdout
    assert f"Check {wrong} against the broker's accounts" in run.stderr  # the file to fix, by name
