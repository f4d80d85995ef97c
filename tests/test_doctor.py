"""`vuoro doctor` against the real production broker (Mosquitto, provisioned accounts, TLS), a real hall
server, a fake ESC/POS printer on TCP and a socket standing in for the X server: every problem it must
name, named in plain words. Doctor looks for the hall as long as it does by default (as a device does):
a short --discover-timeout would call an advert on a loaded machine missing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.config import HallConfig
from broker.discovery import Advertiser
from broker.service import HallService
from kiosk.fake_printer import FakeEscposPrinter
from ops.doctor import FAIL, OK, check_display, printer_finding
from tests.support.brokers import ROOT, free_port, mosquitto_binary
from tests.support.secured import SecuredBroker, broker_dir, start_secured

pytestmark = pytest.mark.mosquitto


@pytest.fixture
def secured(hall: HallConfig) -> Iterator[SecuredBroker]:
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run bin/test, which installs it")
    directory = broker_dir()
    broker = start_secured(directory, [hall])
    yield broker
    broker.close()
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server(secured: SecuredBroker, hall: HallConfig, tmp_path: Path) -> Iterator[HallService]:
    service = HallService(hall, tmp_path / "hall.sqlite", secured.address(hall.id, "server"), always_open=True)
    assert service.start()
    yield service
    service.stop()


@pytest.fixture
def screen() -> Iterator[str]:
    """Something that answers where an X server would (DISPLAY=127.0.0.1:N is TCP port 6000+N)."""
    with socket.create_server(("127.0.0.1", free_port())) as listener:
        yield f"127.0.0.1:{listener.getsockname()[1] - 6000}"


@pytest.fixture
def printer() -> Iterator[FakeEscposPrinter]:
    with FakeEscposPrinter(serial=False, tcp=True) as fake:
        yield fake


def doctor(*args: str, display: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["XDG_RUNTIME_DIR"] = "/nonexistent/vuoro-doctor"  # no local server's runfile to find
    if display:
        env["DISPLAY"] = display
    return subprocess.run([sys.executable, "-m", "vuoro.cli", "doctor", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)


def lines(run: subprocess.CompletedProcess[str], level: str) -> list[str]:
    return [line.strip()[len(level):].strip() for line in run.stdout.splitlines() if line.strip().startswith(level)]


def test_a_healthy_kiosk_passes_every_check(secured, server, screen, printer):
    run = doctor("--credentials", str(secured.credentials_path("kvarnby", "kiosk-K1")),
                 "--broker", f"mqtts://127.0.0.1:{secured.tls_port}", "--printer", printer.tcp_uri, display=screen)
    assert run.returncode == 0, run.stdout + run.stderr
    ok = " | ".join(lines(run, OK))
    for expected in ("account kvarnby/kiosk/K1", "answers", "TLS: the broker's certificate is signed",
                     "login: the broker accepted kvarnby/kiosk/K1", "the hall server is online and answers kiosk K1",
                     "online, paper ok", "display: X server"):
        assert expected in ok
    assert "vuoro doctor: kiosk K1, hall kvarnby" in run.stdout and "all checks passed" in run.stdout


def test_wrong_credentials_are_named(secured, server, tmp_path):
    creds = secured.credentials_path("kvarnby", "counter-1").read_text()
    stale = tmp_path / "credentials.toml"
    stale.write_text("\n".join('password = "an old password"' if line.startswith("password") else line
                               for line in creds.splitlines()) + "\n")
    stale.chmod(0o600)
    (tmp_path / "ca.crt").write_bytes((secured.credentials_path("kvarnby", "counter-1").parent / "ca.crt").read_bytes())
    run = doctor("--credentials", str(stale), "--broker", secured.plain.url, "--role", "counter")
    assert run.returncode == 1
    failed = lines(run, FAIL)
    assert failed[0].startswith("wrong credentials: the broker refused the user name or password of kvarnby/counter/1")
    assert "fix: copy this device's current credentials file" in run.stdout


def test_no_credentials_on_a_production_broker(secured, server):
    run = doctor("--broker", secured.plain.url)
    assert run.returncode == 1
    assert lines(run, FAIL) == ["the broker refuses clients without an account (Not authorized)"]


def test_broker_unreachable(secured):
    run = doctor("--credentials", str(secured.credentials_path("kvarnby", "display-entrance")),
                 "--broker", f"mqtt://127.0.0.1:{free_port()}")
    assert run.returncode == 1
    assert any(f.startswith("broker unreachable: nothing listens on 127.0.0.1:") for f in lines(run, FAIL))
    assert "login and hall server: not checked" in run.stdout


def test_hall_not_found_on_the_network_names_the_halls_it_heard(secured, screen):
    with Advertiser("annexe", secured.port, addresses=["127.0.0.1"], interfaces=["127.0.0.1"]):
        run = doctor("--credentials", str(secured.credentials_path("kvarnby", "display-entrance")), display=screen)
    assert run.returncode == 1
    failed = lines(run, FAIL)[0]
    assert failed.startswith("hall not found: no hall server advertises hall kvarnby on this network")
    assert "heard instead: hall annexe" in failed


def test_hall_found_by_zeroconf_but_its_server_not_running(secured, screen):
    with Advertiser("kvarnby", secured.tls_port, tls=True, addresses=["127.0.0.1"], interfaces=["127.0.0.1"]):
        run = doctor("--credentials", str(secured.credentials_path("kvarnby", "display-entrance")), display=screen)
    assert run.returncode == 1
    assert any("(from zeroconf (Vuoro kvarnby._vuoro._tcp.local.))" in line for line in lines(run, OK))
    assert lines(run, FAIL)[0].startswith("hall not found on this broker: it holds no status of hall kvarnby's server")


def test_a_device_with_a_ca_will_not_take_a_plain_advert(secured, screen):
    with Advertiser("kvarnby", secured.port, addresses=["127.0.0.1"], interfaces=["127.0.0.1"]):
        run = doctor("--credentials", str(secured.credentials_path("kvarnby", "display-entrance")), display=screen)
    assert run.returncode == 1
    assert "advertised only without TLS" in lines(run, FAIL)[0]


def test_printer_out_of_paper_and_printer_not_found(secured, server, screen, printer):
    printer.set_paper("out")
    creds = str(secured.credentials_path("kvarnby", "kiosk-K1"))
    run = doctor("--credentials", creds, "--broker", secured.plain.url, "--printer", printer.tcp_uri, display=screen)
    assert run.returncode == 1
    assert next(f for f in lines(run, FAIL) if "printer" in f).startswith(f"printer {printer.tcp_uri}: out of paper")
    gone = f"tcp://127.0.0.1:{free_port()}"
    run = doctor("--credentials", creds, "--broker", secured.plain.url, "--printer", gone, display=screen)
    assert next(f for f in lines(run, FAIL) if "printer" in f).startswith(f"printer not found: {gone}")


def test_a_running_kiosk_is_asked_for_its_printer_not_the_printer(secured, server, screen):
    """The kiosk app holds its printer; doctor reads the printer status the app publishes instead."""
    from broker.client import HallClient

    empty = {"state": "paper_out", "paper": "out", "message": "the roll is empty"}
    kiosk = HallClient(secured.address("kvarnby", "kiosk-K1"), "kvarnby", "kiosk", "K1",
                       presence_fields={"printer": empty})
    assert kiosk.start()
    try:
        run = doctor("--credentials", str(secured.credentials_path("kvarnby", "kiosk-K1")), "--broker",
                     secured.plain.url, "--printer", "usb://04b8:0e15", display=screen)
    finally:
        kiosk.close()
    assert "out of paper (the running kiosk reports the roll is empty)" in run.stdout


def test_tls_with_another_hall_s_ca_is_refused_plainly(secured, server, tmp_path):
    from ops.provision import make_ca

    _, stranger = make_ca("another hall")
    creds = secured.credentials_path("kvarnby", "display-entrance").read_text()
    (tmp_path / "ca.crt").write_bytes(stranger)
    (tmp_path / "creds.toml").write_text(creds)
    (tmp_path / "creds.toml").chmod(0o600)
    run = doctor("--credentials", str(tmp_path / "creds.toml"), "--broker", f"mqtts://127.0.0.1:{secured.tls_port}")
    assert lines(run, FAIL)[0].startswith(f"TLS: the broker's certificate is not signed by {tmp_path / 'ca.crt'}")


def test_credentials_of_another_hall_or_device(secured, tmp_path):
    run = doctor("--credentials", str(secured.credentials_path("kvarnby", "kiosk-K1")), "--id", "K7",
                 "--broker", secured.plain.url)
    assert "the credentials are kiosk K1's, not kiosk K7's" in lines(run, FAIL)[0]


def test_a_readable_credentials_file_is_a_warning(secured, server, tmp_path):
    loose = tmp_path / "creds.toml"
    loose.write_text(secured.credentials_path("kvarnby", "admin-it").read_text())
    (tmp_path / "ca.crt").write_bytes((secured.credentials_path("kvarnby", "admin-it").parent / "ca.crt").read_bytes())
    loose.chmod(0o644)
    run = doctor("--credentials", str(loose), "--broker", secured.plain.url)
    assert run.returncode == 0, run.stdout
    assert f"chmod 600 {loose}" in run.stdout


# ---------------------------------------------------------------- the screen, and printer words

def test_display_found_by_x_socket_wayland_or_drm(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as x0:
        x0.bind(str(tmp_path / "X3"))
        x0.listen(1)
        assert check_display({"DISPLAY": ":3"}, x11_dir=str(tmp_path))[0] == OK
    assert check_display({"DISPLAY": ":4"}, x11_dir=str(tmp_path))[:2] == (
        FAIL, "no display: DISPLAY is ':4' but no X server answers ([Errno 2] No such file or directory)")
    (tmp_path / "wayland-1").touch()
    assert check_display({"WAYLAND_DISPLAY": "wayland-1", "XDG_RUNTIME_DIR": str(tmp_path)})[0] == OK
    assert check_display({"WAYLAND_DISPLAY": "wayland-9", "XDG_RUNTIME_DIR": str(tmp_path)})[0] == FAIL
    nothing = check_display({}, dri_glob=str(tmp_path / "dri" / "card*"))
    assert nothing[0] == FAIL and nothing[1].startswith("no display: no X server")
    (tmp_path / "dri").mkdir()
    (tmp_path / "dri" / "card0").touch()
    assert check_display({}, dri_glob=str(tmp_path / "dri" / "card*"))[0] == OK


@pytest.mark.parametrize(("state", "level", "words"), [
    ("online", OK, "asked now: message"), ("paper_near_end", "warn", "running out"),
    ("paper_out", FAIL, "out of paper"), ("offline", FAIL, "printer not found"), ("unknown", "warn", "no status"),
])
def test_every_printer_state_has_plain_words(state, level, words):
    found = printer_finding("serial:///dev/ttyUSB0", state, "message", running=False)
    assert found[0] == level and words in found[1]
    if level == FAIL:
        assert found[2]
