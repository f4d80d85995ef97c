"""`vuoro provision`: password hashes Mosquitto reads, the ACL from protocol.py's topics, credentials files,
re-runs that keep what they made, TLS certificates, and the config as Debian's Mosquitto includes it."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker import protocol as p
from broker.config import HallConfig
from broker.credentials import CredentialsError, load_credentials, parse_credentials, username_for
from broker.mqtt import BrokerAddress
from ops.provision import (
    Identity,
    acl_rules,
    hash_password,
    hash_passwords,
    identities,
    make_ca,
    make_server_cert,
    merge_acl,
    merge_password_file,
    mosquitto_passwd,
    provision,
    render_acl_block,
    render_conf,
    verify_password,
)
from tests.support.brokers import ROOT, MosquittoBroker, free_port, mosquitto_binary
from tests.support.secured import broker_dir, hall_named
from tests.support.wait import CONNECT_S, wait_until

HASH_RE = re.compile(r"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")


# ---------------------------------------------------------------- password hashes

def test_our_hash_has_mosquitto_2s_format():
    hashed = hash_password("s3cret", salt=bytes(range(12)))
    assert HASH_RE.match(hashed)
    assert hashed.split("$")[3] == base64.b64encode(bytes(range(12))).decode()
    assert verify_password("s3cret", hashed) and not verify_password("s3cret!", hashed)


@settings(max_examples=30, deadline=None)
@given(password=st.text(min_size=1, max_size=40).filter(lambda s: "\n" not in s and "\x00" not in s),
       other=st.text(min_size=1, max_size=40))
def test_hash_verifies_its_own_password_only(password, other):
    hashed = hash_password(password)
    assert verify_password(password, hashed)
    assert verify_password(other, hashed) == (other == password)


def test_mosquitto_passwd_and_our_hash_read_each_other():
    """The broker's own tool hashes; we verify its lines. (That the broker reads ours: test_acl logs in with
    accounts hashed only by us.)"""
    if mosquitto_passwd() is None:
        pytest.fail("mosquitto_passwd is not installed: apt-get install mosquitto")
    theirs = hash_passwords({"kvarnby/kiosk/K1": "pässword with spaces", "kvarnby/server": "x"},
                            hasher="mosquitto_passwd")
    assert all(HASH_RE.match(h) for h in theirs.values())
    assert verify_password("pässword with spaces", theirs["kvarnby/kiosk/K1"])
    assert not verify_password("password with spaces", theirs["kvarnby/kiosk/K1"])
    ours = hash_passwords({"a/server": "x"}, hasher="python")
    assert verify_password("x", ours["a/server"])


def test_python_hasher_is_the_fallback_without_mosquitto_passwd(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("ops.provision.os.path.exists", lambda path: False)
    assert mosquitto_passwd() is None
    assert verify_password("pw", hash_passwords({"h/server": "pw"})["h/server"])
    with pytest.raises(RuntimeError, match="mosquitto_passwd is not installed"):
        hash_passwords({"h/server": "pw"}, hasher="mosquitto_passwd")


# ---------------------------------------------------------------- accounts and ACL

def test_every_device_of_the_hall_gets_an_account(hall):
    names = [(i.role, i.device) for i in identities(hall)]
    assert names[:2] == [("server", "server"), ("admin", "it")]
    assert {d for r, d in names if r == "kiosk"} == set(hall.kiosks)
    assert {d for r, d in names if r == "counter"} == set(hall.counters)
    assert {d for r, d in names if r == "display"} == set(hall.displays)
    assert len({i.username for i in identities(hall)}) == len(names)
    assert Identity("kvarnby", "kiosk", "K1").username == "kvarnby/kiosk/K1" == username_for("kvarnby", "kiosk", "K1")


def test_acl_rules_are_protocol_topics_of_the_own_hall(hall):
    topics = p.Topics(hall.id)
    for identity in identities(hall):
        rules = acl_rules(identity)
        for access, topic in rules:
            assert access in ("read", "write", "readwrite") and topic.startswith(topics.root)
            if "#" not in topic:
                parsed = topics.parse(topic)  # a real topic of the protocol, nothing invented
                if access != "read":
                    assert parsed.device in (identity.device, None)
        writes = [t for a, t in rules if a != "read"]
        if identity.role in ("kiosk", "counter"):
            assert writes == [topics.cmd(identity.role, identity.device), topics.device(identity.role, identity.device)]
        elif identity.role == "display":
            assert writes == [topics.device("display", identity.device)]
        elif identity.role == "server":
            assert rules == [("readwrite", topics.everything())]


def test_acl_merge_replaces_only_its_own_hall(hall):
    annexe = hall_named(hall, "annexe")
    first = merge_acl("", hall.id, render_acl_block(hall.id, identities(hall)))
    both = merge_acl(first, "annexe", render_acl_block("annexe", identities(annexe)))
    assert both.startswith(first)
    fewer = replace(hall, counters={k: v for k, v in hall.counters.items() if k != "6"})
    again = merge_acl(both, hall.id, render_acl_block(hall.id, identities(fewer)))
    assert "user kvarnby/counter/6" not in again and "user annexe/counter/6" in again
    assert again.count("user ") == both.count("user ") - 1
    assert merge_acl(again, hall.id, render_acl_block(hall.id, identities(fewer))) == again  # idempotent


def test_password_file_merge_keeps_other_halls():
    existing = "annexe/server:$7$101$aaa$bbb\nkvarnby/kiosk/K1:$7$101$old$old\n# a comment\n"
    merged = merge_password_file(existing, "kvarnby", {"kvarnby/kiosk/K2": "$7$101$new$new"})
    assert merged == "annexe/server:$7$101$aaa$bbb\nkvarnby/kiosk/K2:$7$101$new$new\n"


# ---------------------------------------------------------------- provision(): files

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision_writes_credentials_that_load_and_keeps_them_on_a_rerun(hall, tmp_path):
    done = provision(hall, tmp_path, mosquitto_group=None)
    assert len(done.created) == len(identities(hall)) and not done.kept
    kiosk = load_credentials(tmp_path / "credentials" / hall.id / "kiosk-K1.toml")
    assert (kiosk.hall, kiosk.role, kiosk.device, kiosk.username) == (hall.id, "kiosk", "K1", "kvarnby/kiosk/K1")
    assert kiosk.ca_file is None and kiosk.broker is None and len(kiosk.password) >= 32
    server = load_credentials(tmp_path / "credentials" / hall.id / "server.toml")
    assert server.broker == "mqtt://127.0.0.1:1883"
    hashes = dict(line.split(":", 1) for line in (tmp_path / "passwd").read_text().splitlines())
    assert verify_password(kiosk.password, hashes[kiosk.username])
    assert _mode(tmp_path / "credentials" / hall.id / "kiosk-K1.toml") == 0o600
    assert _mode(tmp_path / "passwd") == 0o640 and _mode(tmp_path / "acl") == 0o640

    counter = load_credentials(tmp_path / "credentials" / hall.id / "counter-1.toml")
    again = provision(hall, tmp_path, rotate=["kiosk/K1"], mosquitto_group=None)
    assert [str(i) for i in again.rotated] == ["kiosk K1"] and len(again.kept) == len(identities(hall)) - 1
    assert load_credentials(tmp_path / "credentials" / hall.id / "counter-1.toml").password == counter.password
    new_kiosk = load_credentials(tmp_path / "credentials" / hall.id / "kiosk-K1.toml")
    hashes = dict(line.split(":", 1) for line in (tmp_path / "passwd").read_text().splitlines())
    assert new_kiosk.password != kiosk.password
    assert verify_password(new_kiosk.password, hashes[kiosk.username])
    assert not verify_password(kiosk.password, hashes[kiosk.username])


def test_a_relative_out_folder_gives_a_config_mosquitto_reads_from_anywhere(hall, tmp_path, monkeypatch):
    """`vuoro provision --out broker` from some folder: the config Mosquitto reads (through a link in
    /etc/mosquitto/conf.d) and the paths IT is told all name the folder absolutely."""
    monkeypatch.chdir(tmp_path)
    done = provision(hall, "broker", mosquitto_group=None)
    assert done.directory == tmp_path / "broker"
    paths = [line.split()[-1] for line in (tmp_path / "broker" / "vuoro.conf").read_text().splitlines()
             if line.startswith(("password_file", "acl_file"))]
    assert len(paths) == 2 and all(Path(p).is_absolute() and Path(p).is_file() for p in paths), paths


def test_a_device_removed_from_the_hall_loses_its_account(hall, tmp_path):
    provision(hall, tmp_path, mosquitto_group=None)
    fewer = replace(hall, displays={k: v for k, v in hall.displays.items() if k != "upstairs"})
    done = provision(fewer, tmp_path, mosquitto_group=None)
    assert done.removed == ["display-upstairs.toml"]
    assert "kvarnby/display/upstairs" not in (tmp_path / "passwd").read_text()
    assert "kvarnby/display/upstairs" not in (tmp_path / "acl").read_text()


def test_unknown_rotation_is_refused(hall, tmp_path):
    with pytest.raises(ValueError, match="no such account"):
        provision(hall, tmp_path, rotate=["kiosk/K9"], mosquitto_group=None)


def test_tls_keeps_the_ca_and_signs_a_server_certificate_for_the_names(hall, tmp_path):
    provision(hall, tmp_path, tls=True, server_names=["hall.example", "192.0.2.10"], mosquitto_group=None)
    ca = (tmp_path / "ca.crt").read_bytes()
    assert _mode(tmp_path / "ca.key") == 0o600 and _mode(tmp_path / "server.key") == 0o640
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "server.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["hall.example"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["192.0.2.10"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    assert load_credentials(tmp_path / "credentials" / hall.id / "kiosk-K1.toml").ca_file == \
        str((tmp_path / "credentials" / hall.id / "ca.crt").resolve())
    provision(hall, tmp_path, tls=True, server_names=["other.example"], mosquitto_group=None)
    assert (tmp_path / "ca.crt").read_bytes() == ca  # devices keep trusting the broker
    conf = (tmp_path / "vuoro.conf").read_text()
    assert "listener 1883 127.0.0.1\n" in conf and "listener 8883\n" in conf
    assert f"certfile {tmp_path}/server.crt" in conf and "/etc/mosquitto/vuoro/" not in conf


def test_server_certificate_is_refused_by_a_client_trusting_another_ca(tmp_path):
    key, cert = make_ca("ours")
    server_key, server_cert = make_server_cert(key, cert, ["127.0.0.1"])
    _, stranger = make_ca("theirs")
    (tmp_path / "cert.pem").write_bytes(server_cert)
    (tmp_path / "key.pem").write_bytes(server_key)
    (tmp_path / "ours.pem").write_bytes(cert)
    (tmp_path / "theirs.pem").write_bytes(stranger)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    for trusted, accepted in (("ours.pem", True), ("theirs.pem", False)):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            client_ctx = ssl.create_default_context(cafile=str(tmp_path / trusted))
            client = socket.create_connection(listener.getsockname())
            accepted_sock, _ = listener.accept()
            import threading

            serving = threading.Thread(target=lambda s=accepted_sock: _handshake(server, s))
            serving.start()
            try:
                with client_ctx.wrap_socket(client, server_hostname="127.0.0.1"):
                    ok = True
            except ssl.SSLCertVerificationError:
                ok = False
            serving.join(5)
            assert ok is accepted


def _handshake(context: ssl.SSLContext, sock: socket.socket) -> None:
    try:
        with context.wrap_socket(sock, server_side=True):
            pass
    except (ssl.SSLError, OSError):
        pass


# ---------------------------------------------------------------- credentials files

@pytest.mark.parametrize(("data", "problem"), [
    ({"hall": "kvarnby", "role": "kiosk", "device": "K1", "username": "kvarnby/kiosk/K1", "password": "x",
      "pasword": "y"}, "pasword: unknown key"),
    ({"hall": "kvarnby", "role": "kiosk", "device": "K1", "username": "kvarnby/kiosk/K2", "password": "x"},
     "does not belong to kiosk K1"),
    ({"hall": "kvarnby", "role": "kiosk", "device": "K1", "username": "kvarnby/kiosk/K1"}, "password: missing"),
    ({"hall": "kvarnby", "role": "wizard", "device": "K1", "username": "kvarnby/wizard/K1", "password": "x"},
     "unknown role"),
    ({"hall": "kvarnby", "role": "kiosk", "device": "K1", "username": "kvarnby/kiosk/K1", "password": 5},
     "password: must be a non-empty string"),
    ({"hall": "kvarnby", "role": "kiosk", "device": "K1", "username": "kvarnby/kiosk/K1", "password": "x",
      "broker": "http://x"}, "broker: must be mqtt://"),
])
def test_a_broken_credentials_file_is_refused_with_its_key(data, problem):
    with pytest.raises(CredentialsError, match=re.escape(problem)):
        parse_credentials(data, Path("/etc/vuoro/credentials.toml"))


def test_credentials_round_trip_and_a_relative_ca(tmp_path):
    data = {"hall": "kvarnby", "role": "server", "username": "kvarnby/server", "password": 'q"uote\\',
            "ca": "ca.crt"}
    creds = parse_credentials(data, tmp_path / "server.toml")
    assert creds.device == "server" and creds.ca_file == str(tmp_path / "ca.crt")
    (tmp_path / "again.toml").write_text(creds.dump("ca.crt"))
    again = load_credentials(tmp_path / "again.toml")
    assert again.password == 'q"uote\\' and again.ca_file == creds.ca_file
    assert 'q"uote' not in repr(again)
    address = BrokerAddress.parse("mqtts://hall:8883").with_login(again.username, again.password, again.ca_file)
    assert address.tls and address.port == 8883 and address.ca_file == creds.ca_file
    assert 'q"uote' not in repr(address)


# ---------------------------------------------------------------- the real broker

def test_debian_layout_includes_the_rendered_config_and_enforces_it(hall):
    """Debian's mosquitto.conf (persistence, log file, include_dir conf.d) with our vuoro.conf linked into
    conf.d, as the README says: Mosquitto starts, refuses anonymous clients, and a device logs in."""
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run bin/test, which installs it")
    directory = broker_dir()
    try:
        provision(hall, directory / "vuoro", hasher="python")
        port = free_port()
        conf_d = directory / "conf.d"
        conf_d.mkdir()
        (directory / "vuoro" / "test.conf").write_text(render_conf(directory / "vuoro", tls=False, port=port,
                                                                   bind="127.0.0.1"))
        os.symlink(directory / "vuoro" / "test.conf", conf_d / "vuoro.conf")
        for path in (directory / "vuoro", conf_d, directory):
            os.chmod(path, 0o755)
        (directory / "db").mkdir(mode=0o777)
        os.chmod(directory / "db", 0o777)  # Mosquitto, started as root, runs as its own user
        main = f"persistence true\npersistence_location {directory}/db/\nlog_dest stderr\ninclude_dir {conf_d}\n"
        broker = MosquittoBroker(port, config=main).start()
        try:
            from broker.client import HallClient

            creds = load_credentials(directory / "vuoro" / "credentials" / hall.id / "display-entrance.toml")
            address = BrokerAddress("127.0.0.1", port)
            anonymous = HallClient(address, hall.id, "display", "entrance", presence=False)
            anonymous.start(timeout=0)
            wait_until(lambda: anonymous.link.refusal, CONNECT_S, "the broker to refuse an anonymous client")
            assert not anonymous.connected
            anonymous.close()
            display = HallClient(address.with_login(creds.username, creds.password), hall.id, "display", "entrance")
            assert display.start()
            display.close()
        finally:
            broker.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_vuoro_provision_command(hall, tmp_path):
    out = tmp_path / "broker"
    run = subprocess.run([sys.executable, "-m", "vuoro.cli", "provision", "--out", str(out), "--tls",
                          "--server-name", "127.0.0.1", "--admin", "it", "--admin", "anna"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    accounts = len(identities(hall, ["it", "anna"]))  # the server, two admins and each device of the demo hall
    assert f"hall kvarnby: {accounts} accounts" in run.stdout and "TLS: CA" in run.stdout
    assert (out / "credentials" / "kvarnby" / "admin-anna.toml").exists()
    bad = subprocess.run([sys.executable, "-m", "vuoro.cli", "provision", "--out", str(out), "--rotate", "nobody"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "no such account" in bad.stderr


def test_identity_checks_happen_before_anything_is_written(hall: HallConfig, tmp_path):
    with pytest.raises(ValueError, match="invalid device id"):
        provision(hall, tmp_path / "x", admins=["no spaces please"], mosquitto_group=None)
    assert not (tmp_path / "x" / "passwd").exists()


# ---------------------------------------------------------------- the deployment files

def test_systemd_units_and_the_pi_session_use_real_vuoro_options(hall):
    """Every ExecStart (and the Pi's session script) parses with `vuoro`'s own parser, and its device ids
    and credentials files are the ones provision makes: the units cannot drift from the command."""
    from ops.provision import Identity
    from vuoro.cli import build_parser

    parser = build_parser()
    units = sorted((ROOT / "assets" / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"vuoro-server.service", "vuoro-kiosk@.service", "vuoro-counter@.service",
                                       "vuoro-display@.service"}
    ids = {"kiosk": "K1", "counter": "3", "display": "entrance"}
    for unit in units:
        text = unit.read_text()
        app = unit.name.removeprefix("vuoro-").split("@")[0].split(".")[0]
        device = ids.get(app, "server")
        text = text.replace("%i", device)
        assert "Restart=always" in text
        exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
        words = exec_start.removeprefix("ExecStart=").split()
        assert words[0] == "/opt/vuoro/.venv/bin/vuoro"
        args = parser.parse_args(words[1:])
        assert args.command == app
        credentials = next(line for line in text.splitlines() if "VUORO_CREDENTIALS=" in line).split("=", 2)[2]
        assert Path(credentials).name == Identity(hall.id, app, device).file_name
        if app != "server":
            assert args.id == device
    session = (ROOT / "assets" / "pi" / "vuoro-kiosk-session.sh").read_text()
    assert '"$VUORO" "$APP" --id "$ID"' in session
    assert parser.parse_args(["kiosk", "--id", "K1"]).command == "kiosk"
    desktop = (ROOT / "assets" / "pi" / "vuoro-kiosk.desktop").read_text()
    assert "Exec=/opt/vuoro/vuoro-kiosk-session.sh kiosk K1" in desktop  # where setup-pi.sh installs it
    for script in ("vuoro-kiosk-session.sh", "setup-pi.sh"):
        assert os.access(ROOT / "assets" / "pi" / script, os.X_OK)
        checked = subprocess.run(["sh", "-n", str(ROOT / "assets" / "pi" / script)], capture_output=True)
        assert checked.returncode == 0, checked.stderr


def test_the_pi_setup_script_uses_files_the_package_ships():
    """setup-pi.sh copies from the installed package (assets.path()): every file it names is package data, and
    the desktop entry it rewrites carries the text its sed replaces."""
    import assets

    script = (ROOT / "assets" / "pi" / "setup-pi.sh").read_text()
    named = set(re.findall(r'\$SHARE/([\w./@$-]+)', script))
    assert named, script
    for name in named:
        for role in ("kiosk", "counter", "display"):
            assert assets.path(*name.replace("$ROLE", role).split("/")).is_file(), name
    desktop = assets.path("pi", "vuoro-kiosk.desktop").read_text()
    assert "kiosk K1" in desktop and "Name=Vuoro kiosk" in desktop
    assert '"$PACKAGE[$extra]"' in script and "python3 -m venv" in script  # Bookworm: pip only into a venv
    assert "do_blanking 1" in script and "re" in script and "next login" in script
