"""Zeroconf discovery on 127.0.0.1: the hall server advertises, devices find their own hall, two halls
never cross. Real Zeroconf instances on loopback (IPv4 only), as python-zeroconf's own tests run, and a
test that leaks a thread fails, as there (tests/conftest.py's no_leaked_threads).

Every look for a hall takes the product's own time (DISCOVER_S, what a device gives it): on a loaded machine
an answer on loopback takes seconds, and a short window would call a hall missing that is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker import discovery
from broker.discovery import DISCOVER_S, Advertiser, HallAdvert, browse, choose, find_hall, parse_advert
from tests.support.brokers import DEMO_HALL, ROOT, AmqttBroker, MosquittoBroker, ServerProcess

LOOPBACK = ["127.0.0.1"]


# ---------------------------------------------------------------- pure: adverts

def test_a_vuoro_advert_is_read_from_its_txt_record():
    advert = parse_advert("Vuoro kvarnby._vuoro._tcp.local.", {b"hall": b"kvarnby", b"v": b"1", b"tls": b"1",
                                                                 b"vuoro": b"0.1.0"}, 8883,
                          ["fe80::1", "192.0.2.10"], "hall-server.local.")
    assert advert == HallAdvert(name="Vuoro kvarnby._vuoro._tcp.local.", hall="kvarnby", protocol=1, port=8883,
                                tls=True, addresses=("192.0.2.10",), server="hall-server.local.", app_version="0.1.0")
    assert advert.address().url == "mqtts://192.0.2.10:8883"


@pytest.mark.parametrize(("properties", "port", "addresses"), [
    ({b"v": b"1"}, 1883, ["192.0.2.1"]),                              # no hall
    ({b"hall": b"Kvarnby!", b"v": b"1"}, 1883, ["192.0.2.1"]),        # not a hall id
    ({b"hall": b"kvarnby"}, 1883, ["192.0.2.1"]),                     # no protocol version
    ({b"hall": b"kvarnby", b"v": b"one"}, 1883, ["192.0.2.1"]),
    ({b"hall": b"kvarnby", b"v": b"1"}, 0, ["192.0.2.1"]),             # no port
    ({b"hall": b"kvarnby", b"v": b"1"}, 1883, ["fe80::1"]),            # no IPv4 address
    ({b"hall": None, b"v": b"1"}, 1883, ["192.0.2.1"]),
])
def test_an_unusable_advert_is_ignored(properties, port, addresses):
    assert parse_advert("x._vuoro._tcp.local.", properties, port, addresses) is None


@given(properties=st.dictionaries(st.binary(max_size=10), st.one_of(st.none(), st.binary(max_size=20)), max_size=6),
       port=st.one_of(st.none(), st.integers(-5, 70000)), addresses=st.lists(st.text(max_size=16), max_size=3))
def test_any_txt_record_gives_an_advert_or_none(properties, port, addresses):
    advert = parse_advert("x._vuoro._tcp.local.", properties, port, addresses)
    assert advert is None or (0 < advert.port < 65536 and advert.addresses)


def _advert(hall: str, *, name: str = "", protocol: int = 1, tls: bool = False, port: int = 1883) -> HallAdvert:
    return HallAdvert(name or f"Vuoro {hall}", hall, protocol, port, tls, ("192.0.2.1",))


def test_a_device_chooses_only_its_own_hall_and_protocol():
    adverts = [_advert("annexe"), _advert("kvarnby", protocol=2), _advert("kvarnby", name="b", port=2),
               _advert("kvarnby", name="a", port=1)]
    assert choose(adverts, "kvarnby").port == 1  # stable among duplicates
    assert choose(adverts, "annexe").hall == "annexe"
    assert choose(adverts, "nowhere") is None
    assert choose([_advert("kvarnby", protocol=2)], "kvarnby") is None


def test_a_device_holding_a_ca_takes_only_tls_adverts():
    plain, tls = _advert("kvarnby", name="a"), _advert("kvarnby", name="b", tls=True, port=8883)
    assert choose([plain, tls], "kvarnby", require_tls=True) == tls
    assert choose([plain], "kvarnby", require_tls=True) is None


def test_interfaces_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(discovery.INTERFACES_ENV, "127.0.0.1, 127.0.0.2")
    assert discovery.interfaces_from_env() == ["127.0.0.1", "127.0.0.2"]
    monkeypatch.setenv(discovery.INTERFACES_ENV, "eth0")
    with pytest.raises(ValueError, match="not an IPv4 address"):
        discovery.interfaces_from_env()


# ---------------------------------------------------------------- real Zeroconf on loopback

def test_two_halls_advertised_at_once_are_each_found_by_their_own_devices():
    zc = discovery.make_zeroconf(LOOPBACK)
    try:
        with Advertiser("kvarnby", 21883, addresses=LOOPBACK, zeroconf=zc), \
                Advertiser("annexe", 22883, tls=True, addresses=LOOPBACK, zeroconf=zc):
            kvarnby = find_hall("kvarnby", DISCOVER_S, interfaces=LOOPBACK)
            annexe = find_hall("annexe", DISCOVER_S, interfaces=LOOPBACK)
            assert kvarnby is not None and (kvarnby.port, kvarnby.tls) == (21883, False)
            assert annexe is not None and (annexe.port, annexe.tls) == (22883, True)
            # an absence is only shown by looking as long as a device would
            assert find_hall("kvarnby", DISCOVER_S, require_tls=True, interfaces=LOOPBACK) is None
            assert find_hall("elsewhere", DISCOVER_S, interfaces=LOOPBACK) is None
            everything = browse(DISCOVER_S, interfaces=LOOPBACK)
            assert {a.hall for a in everything} >= {"kvarnby", "annexe"}
    finally:
        zc.close()


def test_a_closed_advert_is_gone():
    advert = Advertiser("gone", 21999, addresses=LOOPBACK, interfaces=LOOPBACK).start()
    assert find_hall("gone", DISCOVER_S, interfaces=LOOPBACK) is not None
    advert.close()
    assert find_hall("gone", DISCOVER_S, interfaces=LOOPBACK) is None


def test_an_advert_still_probing_can_be_closed():
    Advertiser("early", 21998, addresses=LOOPBACK, interfaces=LOOPBACK).start(wait=False).close()


# ---------------------------------------------------------------- real servers, real devices

def _hall_file(directory: Path, hall_id: str) -> Path:
    text = DEMO_HALL.read_text(encoding="utf-8").replace('id = "kvarnby"', f'id = "{hall_id}"', 1)
    path = directory / f"{hall_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _device_env(runtime: str = "/nonexistent/vuoro-device") -> dict[str, str]:
    """A device on another machine: no runfile of a local server to find (an XDG_RUNTIME_DIR of its own)."""
    return {**os.environ, "XDG_RUNTIME_DIR": runtime, "PYTHONPATH": str(ROOT)}


def _vuoro(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vuoro.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


@pytest.fixture
def two_halls(tmp_path: Path) -> Iterator[dict[str, tuple[Path, MosquittoBroker | AmqttBroker]]]:
    """Kvarnby on a Mosquitto, the annexe on the embedded broker: two real hall servers advertising at once."""
    halls = {"kvarnby": (DEMO_HALL, MosquittoBroker().start()),
             "annexe": (_hall_file(tmp_path, "annexe"), AmqttBroker().start())}
    servers = []
    try:
        for hall_id, (path, broker) in halls.items():
            server = ServerProcess(tmp_path / f"{hall_id}.sqlite", broker.address, hall=path, extra=["--advertise"])
            servers.append(server)
            server.start()
        yield halls
    finally:
        for server in servers:
            server.stop()
        for _, broker in halls.values():
            broker.close()


def test_devices_without_broker_find_their_own_hall_among_two(two_halls, tmp_path):
    env = _device_env()
    annexe_file, annexe_broker = two_halls["annexe"]
    kvarnby_file, kvarnby_broker = two_halls["kvarnby"]
    drawn = _vuoro("ticket", "permits", "--hall", str(annexe_file), "--json", env=env)
    assert drawn.returncode == 0, drawn.stderr
    assert json.loads(drawn.stdout)["result"]["ticket"]["number"] == "B001"
    called = _vuoro("call", "4", "open", "--hall", str(kvarnby_file), env=env)
    assert called.returncode == 0, called.stderr
    annexe = json.loads(_vuoro("status", "--json", "--hall", str(annexe_file), "--broker", annexe_broker.address.url,
                               env=env).stdout)
    kvarnby = json.loads(_vuoro("status", "--json", "--hall", str(kvarnby_file), "--broker",
                                kvarnby_broker.address.url, env=env).stdout)
    assert annexe["hall"]["issued_today"] == 1 and kvarnby["hall"]["issued_today"] == 0
    assert kvarnby["counter/4"]["status"] == "open" and annexe["counter/4"]["status"] == "closed"


def test_the_kiosk_window_finds_its_hall_without_broker(two_halls, tmp_path):
    """The real kiosk app (Kivy, offscreen), started as on a Pi with no --broker: it syncs with its hall."""
    (tmp_path / "run").mkdir(mode=0o700)
    env = {**_device_env(str(tmp_path / "run")), "KIVY_HOME": str(tmp_path / "kivy"), "SDL_VIDEODRIVER": "offscreen",
           "SDL_AUDIODRIVER": "dummy", "KIVY_NO_ARGS": "1"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    shot = tmp_path / "kiosk.png"
    annexe_file, _ = two_halls["annexe"]
    run = _vuoro("kiosk", "--hall", str(annexe_file), "--snapshot", str(shot), "--printer",
                 f"preview://{tmp_path / 'tickets'}", env=env, timeout=90)
    assert run.returncode == 0, run.stderr[-3000:]
    assert shot.stat().st_size > 10_000


def test_a_hall_nobody_advertises_is_reported_plainly(tmp_path):
    run = _vuoro("ticket", "general", "--hall", str(_hall_file(tmp_path, "nowhere")), env=_device_env())
    assert run.returncode == 3
    assert "hall 'nowhere' not found on the network" in run.stderr


def test_the_server_advertises_what_devices_can_reach(hall):
    """A broker on loopback only is not advertised unless asked; --advertise mqtts://:8883 advertises the TLS
    listener on this machine's addresses (here: $VUORO_MDNS_INTERFACES, 127.0.0.1)."""
    from broker.mqtt import BrokerAddress
    from vuoro.cli import _advertise, build_parser

    def args(*extra: str):
        return build_parser().parse_args(["server", "--broker", "mqtt://127.0.0.1:1883", *extra])

    local = BrokerAddress.parse("mqtt://127.0.0.1:1883")
    assert _advertise(args(), hall, local) is None
    assert _advertise(args("--advertise", "--no-advertise"), hall, local) is None
    advert = _advertise(args("--advertise", "mqtts://:8883"), hall, local)
    try:
        assert (advert.port, advert.tls, advert.addresses) == (8883, True, ["127.0.0.1"])
        found = find_hall(hall.id, DISCOVER_S, require_tls=True)
        assert found is not None and found.port == 8883
    finally:
        advert.close()
    with pytest.raises(SystemExit):
        _advertise(args("--advertise", "http://:80"), hall, local)
