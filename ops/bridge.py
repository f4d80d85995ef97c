"""A hall's bridge to the city's central broker, and the central broker's accounts and ACL.

`vuoro provision --bridge mqtts://CENTRAL:8883` (ops/provision_cli.py) calls `provision_bridge()` after
the hall's own accounts are written. It adds to the hall's vuoro.conf a Mosquitto bridge that carries, under
the same topics (vuoro/<hall>/...), the hall's

    events         out, QoS 1     (the collector writes them into the city's PostgreSQL)
    retained state out, QoS 1     (queues, counters, today's figures: the overview, Home Assistant, Prometheus)
    server, device presence out   (is each hall and each of its devices up; a kiosk's paper)

and nothing in, except the collector's own `replay` questions on cmd/admin/<collector> (and their answers
out on reply/admin/<collector>): the centre reads a hall and asks it for missed events, but cannot call a
visitor or issue a ticket. `commands=True` (--bridge-commands) carries every command in and every reply out,
for a city that runs counters from the centre on purpose.

The central side is written into its own folder (`central_dir`), merged hall by hall like the hall's files:
a password file and an ACL with one bridge account per hall (`city/bridge/<hall>`, which may publish only
under its own hall and read only the collector's questions to it), the collector's account (reads every
hall, asks any hall to replay, publishes Home Assistant discovery), the overview's and Home Assistant's
(read only), each with an account file (city/account.py), and central.conf; with mqtts:// also the centre's
CA and certificate, whose CA the hall checks.

With mqtts:// the hall's Mosquitto does not speak TLS to the centre itself: its bridge connects in plain MQTT to
a stunnel on loopback (city-tunnel.conf, run by Debian's stunnel@.service), which does. Mosquitto 2.0.11, the
one of Debian 12 and Raspberry Pi OS Bookworm, corrupts its table of connections when a TLS handshake of its
bridge fails and then spins, serving none of the hall's devices (tests/test_bridge.py shows it).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import assets
from broker import protocol as p
from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from ops.provision import (
    PASSWORD_BYTES,
    READ,
    READWRITE,
    WRITE,
    _read,
    _write,
    hash_passwords,
    make_ca,
    make_server_cert,
    merge_acl,
)

BRIDGE_TEMPLATE = assets.path("mosquitto", "bridge.conf")
TUNNEL_TEMPLATE = assets.path("mosquitto", "city-tunnel.conf")
CENTRAL_TEMPLATE = assets.path("mosquitto", "central.conf")
CENTRAL_TLS_TEMPLATE = assets.path("mosquitto", "central-tls.conf")
CENTRAL_TEMPLATE_DIR = "/etc/mosquitto/vuoro-central/"
BRIDGE_FILE = "bridge.toml"  # in the hall's folder: the bridge's settings and password, kept across runs
CENTRAL_CA = "central-ca.crt"  # in the hall's folder: the CA the centre's certificate must chain to
TUNNEL_FILE = "city-tunnel.conf"  # in the hall's folder: stunnel's config for the bridge's TLS (mqtts:// only)
TUNNEL_PORT = 18883  # the tunnel's plain end, on loopback: where the hall's bridge connects with mqtts://
DEFAULT_COLLECTOR = "collector"
CITY_ACCOUNTS = ("collector", "overview", "homeassistant")
HA_PREFIX = "homeassistant"  # Home Assistant's default discovery prefix
_SECTION = re.compile(r"\n# ---- bridge to the city's central broker:.*\Z", re.DOTALL)
CITY_BLOCK = "city"  # the ACL block of the city's own accounts


@dataclass(frozen=True)
class BridgeSettings:
    central: str  # mqtt(s)://host:port of the central broker
    collector: str = DEFAULT_COLLECTOR
    commands: bool = False  # every command in (and every reply out), not only the collector's replay
    password: str = ""


@dataclass
class BridgeProvisioned:
    hall_conf: Path
    central_dir: Path
    username: str
    created: bool
    accounts: dict[str, Path] = field(default_factory=dict)  # city account -> its file
    tls: bool = False
    tunnel: Path | None = None  # stunnel's config for the bridge's TLS (mqtts://)


def bridge_username(hall_id: str) -> str:
    if not p.HALL_ID_RE.match(hall_id):
        raise ValueError(f"invalid hall id {hall_id!r}")
    return f"city/bridge/{hall_id}"


def city_username(name: str) -> str:
    return f"city/{name}"


# ---------------------------------------------------------------- the hall's side

def bridge_topics(hall_id: str, settings: BridgeSettings) -> list[tuple[str, str, int]]:
    """(topic, direction, qos) of the hall's bridge, every topic from protocol.Topics."""
    t = p.Topics(hall_id)
    lines = [(t.all_events(), "out", 1), (t.all_state(), "out", 1), (t.server(), "out", 1),
             (t.all_devices(), "out", 1)]
    if settings.commands:
        lines += [(t.all_commands(), "in", 1), (t.all_replies(), "out", 0)]
    else:
        lines += [(t.cmd("admin", settings.collector), "in", 0), (t.reply("admin", settings.collector), "out", 0)]
    return lines


def render_bridge(hall_id: str, settings: BridgeSettings, *, template: Path = BRIDGE_TEMPLATE,
                  tunnel_port: int = TUNNEL_PORT) -> str:
    """The bridge section of the hall's Mosquitto config. With mqtts:// the bridge connects in plain MQTT to the
    hall's own TLS tunnel on loopback (render_tunnel), never with Mosquitto's TLS: see city-tunnel.conf for why."""
    central = BrokerAddress.parse(settings.central)
    address = f"127.0.0.1:{tunnel_port}" if central.tls else _host_port(central)
    text = template.read_text(encoding="utf-8").format(
        connection=f"vuoro-{hall_id}-central", address=address, clientid=f"vuoro-bridge-{hall_id}",
        username=bridge_username(hall_id), password=settings.password)
    lines = [text.rstrip("\n")]
    lines += [f"topic {topic} {direction} {qos}" for topic, direction, qos in bridge_topics(hall_id, settings)]
    return "\n".join(lines) + "\n"


def render_tunnel(settings: BridgeSettings, conf_path: Path, *, ca_file: Path | None = None,
                  accept_port: int = TUNNEL_PORT, template: Path = TUNNEL_TEMPLATE) -> str:
    """stunnel's config for an mqtts:// centre: plain on 127.0.0.1:accept_port, TLS to the centre, whose
    certificate must chain to `ca_file` (else to a public CA) and name the URL's host."""
    central = BrokerAddress.parse(settings.central)
    if not central.tls:
        raise ValueError(f"{settings.central}: only an mqtts:// centre goes through the tunnel")
    text = template.read_text(encoding="utf-8").format(conf_path=conf_path, accept_port=accept_port,
                                                       central=_host_port(central))
    lines = [text.rstrip("\n"), f"CAfile = {ca_file}" if ca_file is not None else "CApath = /etc/ssl/certs"]
    lines.append(f"checkIP = {central.host}" if _is_ip(central.host) else f"checkHost = {central.host}")
    return "\n".join(lines) + "\n"


def _host_port(address: BrokerAddress) -> str:
    """host:port as Mosquitto and stunnel write an address (an IPv6 host in brackets)."""
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def with_bridge(conf: str, section: str | None) -> str:
    """The hall's config with its bridge section replaced (or dropped with None)."""
    base = _SECTION.sub("", conf).rstrip("\n") + "\n"
    return base if section is None else base + section


def load_settings(directory: Path) -> BridgeSettings | None:
    try:
        data = tomllib.loads((directory / BRIDGE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return BridgeSettings(central=str(data["central"]), collector=str(data.get("collector", DEFAULT_COLLECTOR)),
                          commands=bool(data.get("commands", False)), password=str(data["password"]))


def _dump_account(username: str, password: str) -> str:
    """A city account's file, as city/account.py reads it (`vuoro collect --account FILE`...)."""
    return ("# A Vuoro city account on the central broker, made by `vuoro provision --bridge`. Secret: chmod 600.\n"
            f"username = {_q(username)}\npassword = {_q(password)}\n"
            "# broker = \"mqtt://127.0.0.1:1883\"   # optional: where the central broker is\n")


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dump_settings(settings: BridgeSettings) -> str:
    q = _q
    return ("# The hall's bridge to the city's central broker, kept by `vuoro provision --bridge`. Secret: its "
            "password is the bridge account's.\n"
            f"central = {q(settings.central)}\ncollector = {q(settings.collector)}\n"
            f"commands = {'true' if settings.commands else 'false'}\npassword = {q(settings.password)}\n")


# ---------------------------------------------------------------- the centre's side

def central_acl_block(hall_id: str, settings: BridgeSettings) -> str:
    """The ACL of one hall's bridge account on the central broker: the mirror image of its bridge topics."""
    lines = [f"user {bridge_username(hall_id)}"]
    for topic, direction, _ in bridge_topics(hall_id, settings):
        lines.append(f"topic {WRITE if direction == 'out' else READ} {topic}")
    return "\n".join(lines) + "\n"


def city_acl_block(collector: str) -> str:
    """The city's own accounts: they read every hall (`+` for the hall), and only the collector asks."""
    watch = p.CITY_WATCH
    rules = {
        "collector": [(READ, p.every_hall("event", "#")), *((READ, w) for w in watch),
                      (READ, p.every_hall("reply", "admin", collector)),
                      (WRITE, p.every_hall("cmd", "admin", collector)),
                      (READWRITE, f"{HA_PREFIX}/#")],
        "overview": [(READ, w) for w in watch],
        "homeassistant": [(READ, f"{HA_PREFIX}/#"), (WRITE, f"{HA_PREFIX}/status"), *((READ, w) for w in watch)],
    }
    out = []
    for name in CITY_ACCOUNTS:
        out.append(f"user {city_username(name)}")
        out += [f"topic {access} {topic}" for access, topic in rules[name]]
        out.append("")
    return "\n".join(out)


def _block(name: str, body: str) -> str:
    return (f"# ---- vuoro hall {name}: written by `vuoro provision`; edits here are overwritten\n"
            f"{body.rstrip()}\n\n# ---- end of vuoro hall {name}\n")


def merge_passwords(existing: str, hashed: dict[str, str]) -> str:
    """Replace the lines of these accounts; keep every other line as it was."""
    kept = []
    for line in existing.splitlines():
        user = line.rpartition(":")[0]
        if line.strip() and not line.startswith("#") and user not in hashed:
            kept.append(line)
    return "".join(f"{line}\n" for line in kept) + "".join(f"{u}:{h}\n" for u, h in sorted(hashed.items()))


def render_central_conf(directory: Path, *, tls: bool, port: int | None = None, tls_port: int | None = None,
                        bind: str | None = None) -> str:
    """central.conf with its paths pointing into `directory`; `port`, `tls_port` and `bind` let tests run the
    same config on free ports of 127.0.0.1."""
    text = CENTRAL_TEMPLATE.read_text(encoding="utf-8")
    if tls:
        text += "\n" + CENTRAL_TLS_TEMPLATE.read_text(encoding="utf-8")
    lines, listeners = [], 0
    for line in text.replace(CENTRAL_TEMPLATE_DIR, str(directory).rstrip("/") + "/").splitlines():
        if line.startswith("listener "):
            words = line.split()
            chosen = (tls_port if listeners else port) or int(words[1])
            host = bind or (words[2] if len(words) > 2 else None)
            line = f"listener {chosen}" + (f" {host}" if host else "")
            listeners += 1
        lines.append(line)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing it all

def provision_bridge(hall: HallConfig, directory: str | Path, central: str | None, *,
                     central_dir: str | Path | None = None, collector: str = DEFAULT_COLLECTOR,
                     commands: bool = False, central_names: Sequence[str] = (), central_ca: str | Path | None = None,
                     rotate: bool = False, hasher: str = "auto",
                     mosquitto_group: str | None = "mosquitto") -> BridgeProvisioned | None:
    """Add (or update) the hall's bridge and the centre's accounts. `central` None keeps the bridge the hall has
    (re-appending it to the vuoro.conf that provision() just rewrote), or does nothing when it has none.

    `central_ca`: the CA of a centre whose certificate IT already has (else, for mqtts://, a CA of the city is
    made in central_dir and the centre's certificate for `central_names`, default the URL's host)."""
    directory = Path(directory)
    old = load_settings(directory)
    if central is None and old is None:
        return None
    address = BrokerAddress.parse(central or (old.central if old else ""))
    if not p.DEVICE_RE.match(collector):
        raise ValueError(f"invalid collector id {collector!r}")
    password = old.password if old is not None and not rotate else secrets.token_urlsafe(PASSWORD_BYTES)
    if central is None and old is not None:  # a plain `vuoro provision` run: the bridge stays as it was
        collector, commands = old.collector, old.commands
    settings = BridgeSettings(central=address.url, collector=collector, commands=commands, password=password)
    central_dir = Path(central_dir) if central_dir is not None else directory / "central"
    central_dir.mkdir(parents=True, exist_ok=True)
    done = BridgeProvisioned(directory / "vuoro.conf", central_dir, bridge_username(hall.id), created=old is None,
                             tls=address.tls)

    tunnel = directory / TUNNEL_FILE
    if address.tls:
        ca_pem = Path(central_ca).read_bytes() if central_ca is not None else _central_certificate(
            central_dir, list(central_names) or [address.host], mosquitto_group)
        ca_file = directory / CENTRAL_CA
        _write(ca_file, ca_pem, 0o644)
        _write(tunnel, render_tunnel(settings, tunnel, ca_file=ca_file).encode("utf-8"), 0o644)
        done.tunnel = tunnel
    else:
        tunnel.unlink(missing_ok=True)

    _write(directory / BRIDGE_FILE, _dump_settings(settings).encode("utf-8"), 0o600)
    conf = directory / "vuoro.conf"
    # the bridge's password is in it now: readable by Mosquitto's group only
    _write(conf, with_bridge(_read(conf), render_bridge(hall.id, settings)).encode("utf-8"),
           0o640, group=mosquitto_group)

    # the centre: this hall's bridge account and the city's accounts
    passwords = {bridge_username(hall.id): password, **_city_accounts(central_dir, rotate, done.accounts)}
    hashed = hash_passwords(passwords, hasher=hasher)
    passwd = central_dir / "passwd"
    _write(passwd, merge_passwords(_read(passwd), hashed).encode("utf-8"), 0o640, group=mosquitto_group)
    acl = central_dir / "acl"
    text = merge_acl(_read(acl), CITY_BLOCK, _block(CITY_BLOCK, city_acl_block(settings.collector)))
    text = merge_acl(text, f"bridge-{hall.id}", _block(f"bridge-{hall.id}", central_acl_block(hall.id, settings)))
    _write(acl, text.encode("utf-8"), 0o640, group=mosquitto_group)
    tls_ready = (central_dir / "server.crt").exists() and (central_dir / "server.key").exists()
    _write(central_dir / "central.conf", render_central_conf(central_dir, tls=tls_ready).encode("utf-8"), 0o644)
    return done


def _central_certificate(central_dir: Path, names: list[str], mosquitto_group: str | None) -> bytes:
    """The city's CA (made once) and the centre's certificate for `names` (made once); returns the CA's PEM."""
    ca_key_path, ca_path = central_dir / "ca.key", central_dir / "ca.crt"
    if not (ca_key_path.exists() and ca_path.exists()):
        key_pem, cert_pem = make_ca("Vuoro city CA")
        _write(ca_key_path, key_pem, 0o600)
        _write(ca_path, cert_pem, 0o644)
    if not (central_dir / "server.crt").exists():
        key_pem, cert_pem = make_server_cert(ca_key_path.read_bytes(), ca_path.read_bytes(), names)
        _write(central_dir / "server.key", key_pem, 0o640, group=mosquitto_group)
        _write(central_dir / "server.crt", cert_pem, 0o644)
    return ca_path.read_bytes()


def _city_accounts(central_dir: Path, rotate: bool, files: dict[str, Path]) -> dict[str, str]:
    """The city's own accounts (collector, overview, Home Assistant), each with its account file: their
    passwords, kept across runs unless rotated. `files` gets each account's file."""
    passwords = {}
    accounts_dir = central_dir / "accounts"
    accounts_dir.mkdir(exist_ok=True)
    for name in CITY_ACCOUNTS:
        path = accounts_dir / f"{name}.toml"
        try:
            kept = tomllib.loads(path.read_text(encoding="utf-8"))["password"]
        except (OSError, ValueError, KeyError):
            kept = None
        if not isinstance(kept, str) or not kept or rotate:
            kept = secrets.token_urlsafe(PASSWORD_BYTES)
            _write(path, _dump_account(city_username(name), kept).encode("utf-8"), 0o600)
        passwords[city_username(name)] = kept
        files[name] = path
    return passwords


def drop_bridge(directory: str | Path, *, mosquitto_group: str | None = "mosquitto") -> bool:
    """Take the bridge out of the hall's config (the centre's account stays until IT removes it)."""
    directory = Path(directory)
    if load_settings(directory) is None:
        return False
    (directory / BRIDGE_FILE).unlink()
    (directory / TUNNEL_FILE).unlink(missing_ok=True)
    conf = directory / "vuoro.conf"
    _write(conf, with_bridge(_read(conf), None).encode("utf-8"), 0o640, group=mosquitto_group)
    return True
