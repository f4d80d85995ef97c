"""Accounts for a hall's broker: who may log in, what each may publish and read, and TLS.

`vuoro provision` (ops/provision_cli.py) calls `provision()`, which writes into one folder
(usually /etc/mosquitto/vuoro): Mosquitto's password file, its ACL, a ready vuoro.conf, and with
TLS a CA and the listener's certificate; and for every device of the hall config a small
credentials file (broker/credentials.py). Running it again keeps every password it made before
(devices keep working), adds the new devices, drops the removed ones, and rotates only what it is
asked to. Other halls' accounts in the same files are left as they are.

The ACL is derived from broker/protocol.py's topics, one account per device:

    server        reads and writes everything under vuoro/<hall>/
    kiosk K       publishes cmd/kiosk/K only; reads reply/kiosk/K, state, events, presence
    counter C     publishes cmd/counter/C only; reads reply/counter/C, state, events, presence
    display D     reads state, events, presence; publishes only its own presence
    web W         `vuoro web`, the visitors' pages: publishes cmd/web/W only (feedback, replay); reads
                  reply/web/W, state, events, presence
    admin (IT)    publishes any command of the hall (the terminal's `vuoro call`...); reads all replies

and every device also publishes its own retained presence, device/<role>/<id> (its Last Will).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import assets
from broker import protocol as p
from broker.config import HallConfig
from broker.credentials import Credentials, CredentialsError, load_credentials, username_for

CONF_TEMPLATE = assets.path("mosquitto", "vuoro.conf")
TLS_TEMPLATE = assets.path("mosquitto", "vuoro-tls.conf")
TEMPLATE_DIR = "/etc/mosquitto/vuoro/"
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes; the broker reads the count from each line
SALT_BYTES = 12
PASSWORD_BYTES = 24
READ, WRITE, READWRITE = "read", "write", "readwrite"
WEB_DEVICE = "web"  # the account of a hall's `vuoro web` (its --device): one visitor web server per hall


# ---------------------------------------------------------------- who and what

@dataclass(frozen=True)
class Identity:
    hall: str
    role: str  # server, admin, kiosk, counter, display, web
    device: str

    @property
    def username(self) -> str:
        return username_for(self.hall, self.role, self.device)

    @property
    def file_name(self) -> str:
        return "server.toml" if self.role == "server" else f"{self.role}-{self.device}.toml"

    def __str__(self) -> str:
        return "the hall server" if self.role == "server" else f"{self.role} {self.device}"


def identities(hall: HallConfig, admins: Iterable[str] = ("it",)) -> list[Identity]:
    """Every account a hall needs: its server, IT's terminal(s), each kiosk, counter and display, and the
    visitors' web server."""
    found = [Identity(hall.id, "server", "server")]
    found += [Identity(hall.id, "admin", name) for name in admins]
    found += [Identity(hall.id, "kiosk", k) for k in hall.kiosks]
    found += [Identity(hall.id, "counter", c) for c in hall.counters]
    found += [Identity(hall.id, "display", d) for d in hall.displays]
    found.append(Identity(hall.id, "web", WEB_DEVICE))
    for identity in found:
        identity.username  # noqa: B018 -- checks the ids now, with a clear error, not halfway through writing
    return found


def acl_rules(identity: Identity) -> list[tuple[str, str]]:
    """(access, topic) pairs of one account, every topic built by protocol.Topics."""
    topics = p.Topics(identity.hall)
    if identity.role == "server":
        return [(READWRITE, topics.everything())]
    watch = [(READ, topics.all_state()), (READ, topics.all_events()), (READ, topics.server()),
             (READ, topics.all_devices())]
    own = [(WRITE, topics.device(identity.role, identity.device))]
    if identity.role == "admin":
        return [(WRITE, topics.all_commands()), (READ, topics.all_replies()), *own, *watch]
    if identity.role == "display":
        return own + watch
    return [(WRITE, topics.cmd(identity.role, identity.device)),
            (READ, topics.reply(identity.role, identity.device)), *own, *watch]


def render_acl_block(hall_id: str, accounts: Sequence[Identity]) -> str:
    lines = [_begin(hall_id)]
    for identity in accounts:
        lines.append(f"user {identity.username}")
        lines += [f"topic {access} {topic}" for access, topic in acl_rules(identity)]
        lines.append("")
    lines.append(_end(hall_id))
    return "\n".join(lines) + "\n"


def _begin(hall_id: str) -> str:
    return f"# ---- vuoro hall {hall_id}: written by `vuoro provision`; edits here are overwritten"


def _end(hall_id: str) -> str:
    return f"# ---- end of vuoro hall {hall_id}"


ACL_HEADER = """\
# Mosquitto ACL for Vuoro halls, one block per hall (see ops/provision.py for the rules).
# No topic line stands before the first `user` line, so a client without an account may do nothing.

"""


def merge_acl(existing: str, hall_id: str, block: str) -> str:
    """Replace this hall's block in an ACL file (or add it), keeping other halls' blocks as they are."""
    pattern = re.compile(re.escape(_begin(hall_id)) + r".*?" + re.escape(_end(hall_id)) + r"\n?", re.DOTALL)
    if pattern.search(existing):
        return pattern.sub(lambda _: block, existing, count=1)
    text = existing if existing.strip() else ACL_HEADER
    return text + ("" if text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n") + block


# ---------------------------------------------------------------- Mosquitto's password hashes

def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto 2's password file format: $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Does `password` match a $7$ (PBKDF2-SHA512) or $6$ (salted SHA512) line of a Mosquitto password file?"""
    parts = hashed.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            actual = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
        elif len(parts) == 4 and parts[1] == "6":
            salt, expected = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            actual = hashlib.sha512(password.encode("utf-8") + salt).digest()
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def mosquitto_passwd() -> str | None:
    return shutil.which("mosquitto_passwd") or next(
        (c for c in ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd") if os.path.exists(c)), None)


def hash_passwords(passwords: dict[str, str], *, hasher: str = "auto") -> dict[str, str]:
    """{username: password} -> {username: hash}. `auto` uses the broker's own mosquitto_passwd when it is
    installed (so the format is the broker's by construction), else the same PBKDF2-SHA512 in Python.
    mosquitto_passwd gets the passwords in a private file (-U), never on its command line."""
    tool = mosquitto_passwd() if hasher in ("auto", "mosquitto_passwd") else None
    if hasher == "mosquitto_passwd" and tool is None:
        raise RuntimeError("mosquitto_passwd is not installed (apt-get install mosquitto)")
    if hasher not in ("auto", "mosquitto_passwd", "python"):
        raise ValueError(f"unknown hasher {hasher!r}")
    if tool is None or not passwords:
        return {user: hash_password(pw) for user, pw in passwords.items()}
    with tempfile.TemporaryDirectory(prefix="vuoro-passwd-") as tmp:
        plain = Path(tmp) / "passwd"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(f"{user}:{pw}\n" for user, pw in passwords.items())
        result = subprocess.run([tool, "-U", str(plain)], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"mosquitto_passwd -U failed: {result.stderr.strip() or result.stdout.strip()}")
        hashed = dict(_password_lines(plain.read_text(encoding="utf-8")))
    missing = set(passwords) - set(hashed)
    if missing:
        raise RuntimeError(f"mosquitto_passwd left out {sorted(missing)}")
    return {user: hashed[user] for user in passwords}


def _password_lines(text: str) -> list[tuple[str, str]]:
    entries = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            user, _, hashed = line.rpartition(":")
            entries.append((user, hashed))
    return entries


def merge_password_file(existing: str, hall_id: str, hashed: dict[str, str]) -> str:
    """This hall's accounts replaced by `hashed`; other halls' lines kept as they were."""
    mine = f"{hall_id}/"
    kept = [(u, h) for u, h in _password_lines(existing) if not u.startswith(mine)]
    return "".join(f"{u}:{h}\n" for u, h in [*kept, *sorted(hashed.items())])


# ---------------------------------------------------------------- Mosquitto's config

def render_conf(directory: Path, *, tls: bool, port: int | None = None, tls_port: int | None = None,
                bind: str | None = None, template: Path = CONF_TEMPLATE, tls_template: Path = TLS_TEMPLATE) -> str:
    """The production config with its paths pointing into `directory`. With TLS the plain listener is
    bound to 127.0.0.1 (only the hall server on this machine uses it). `port`, `tls_port` and `bind` let
    tests run the very same config on a free port of 127.0.0.1."""
    text = template.read_text(encoding="utf-8")
    if tls:
        text += "\n" + tls_template.read_text(encoding="utf-8")
    lines, listeners = [], 0
    for line in text.replace(TEMPLATE_DIR, str(directory).rstrip("/") + "/").splitlines():
        if line.startswith("listener "):
            default_port = int(line.split()[1])
            is_tls = listeners > 0
            listeners += 1
            chosen = (tls_port if is_tls else port) or default_port
            host = bind or ("127.0.0.1" if tls and not is_tls else None)
            line = f"listener {chosen}" + (f" {host}" if host else "")
        lines.append(line)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- TLS

def make_ca(common_name: str, *, days: int = 3650) -> tuple[bytes, bytes]:
    """A new CA: (private key PEM, certificate PEM). ECDSA P-256, signs only certificates."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vuoro")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def make_server_cert(ca_key_pem: bytes, ca_cert_pem: bytes, names: Sequence[str], *,
                     days: int = 825) -> tuple[bytes, bytes]:
    """The broker's certificate for `names` (host names and IP addresses), signed by the CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not names:
        raise ValueError("the server certificate needs at least one host name or address")
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not the ECDSA key `vuoro provision` makes")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    sans: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def default_server_names() -> list[str]:
    """What the broker's certificate names when IT names nothing: this machine's host name, its .local
    name (mDNS), localhost, and its IPv4 addresses (discovery hands devices an address)."""
    import socket

    from broker.discovery import local_addresses

    host = socket.gethostname().split(".")[0]
    return list(dict.fromkeys([host, f"{host}.local", "localhost", "127.0.0.1", *local_addresses()]))


# ---------------------------------------------------------------- writing it all

@dataclass
class Provisioned:
    """What provision() did, for the command to tell IT."""

    directory: Path
    created: list[Identity] = field(default_factory=list)
    kept: list[Identity] = field(default_factory=list)
    rotated: list[Identity] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # credentials files of devices no longer in the hall
    credentials: dict[Identity, Path] = field(default_factory=dict)
    tls: bool = False
    server_names: list[str] = field(default_factory=list)
    hasher: str = ""


def credentials_dir(directory: Path, hall_id: str) -> Path:
    return directory / "credentials" / hall_id


def provision(hall: HallConfig, directory: str | Path, *, tls: bool = False,
              server_names: Sequence[str] = (), device_broker: str | None = None,
              admins: Sequence[str] = ("it",), rotate: Iterable[str] = (), hasher: str = "auto",
              mosquitto_group: str | None = "mosquitto") -> Provisioned:
    """Write (or update) everything a hall's broker and devices need into `directory`.

    `rotate` names accounts to give new passwords ("kiosk/K1", "server", or "all"). `device_broker`, when
    given, is written into the devices' credentials (else they find the hall by zeroconf).
    """
    accounts = identities(hall, admins)
    rotate = set(rotate)
    _check_rotations(hall, accounts, rotate)  # before anything is written
    directory = Path(directory).absolute()  # vuoro.conf and the hints name it for Mosquitto and IT, from anywhere
    directory.mkdir(parents=True, exist_ok=True)
    creds_dir = credentials_dir(directory, hall.id)
    creds_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(creds_dir, 0o700)
    done = Provisioned(directory, tls=tls)
    if tls:
        done.server_names = _write_certificates(hall, directory, creds_dir, server_names, mosquitto_group)
    # provisioned with TLS before: the devices keep checking the broker's certificate
    ca_name = "ca.crt" if (creds_dir / "ca.crt").exists() else None
    passwords = _write_credentials(hall, accounts, creds_dir, rotate, device_broker, ca_name, done)
    _write_broker_files(hall, accounts, directory, passwords, hasher, mosquitto_group, done)
    done.tls = tls or ((directory / "server.crt").exists() and (directory / "server.key").exists())
    _write(directory / "vuoro.conf", render_conf(directory, tls=done.tls).encode("utf-8"), 0o644)
    return done


def _check_rotations(hall: HallConfig, accounts: Sequence[Identity], rotate: set[str]) -> None:
    """Raises ValueError for a --rotate that names no account of the hall."""
    known_rotations = {"all", *(f"{i.role}/{i.device}" for i in accounts), "server"}
    unknown = sorted(rotate - known_rotations)
    if unknown:
        raise ValueError(f"--rotate {unknown[0]!r}: no such account in hall {hall.id} "
                         "(give ROLE/ID such as kiosk/K1, or server, or all)")


def _write_certificates(hall: HallConfig, directory: Path, creds_dir: Path, server_names: Sequence[str],
                        mosquitto_group: str | None) -> list[str]:
    """The hall's CA (made once, then kept), a broker certificate signed by it for the names (new each run),
    and the CA's certificate beside the devices' credentials. Returns the names."""
    ca_key_path, ca_path = directory / "ca.key", directory / "ca.crt"
    if not (ca_key_path.exists() and ca_path.exists()):
        key_pem, cert_pem = make_ca(f"Vuoro CA ({hall.id})")
        _write(ca_key_path, key_pem, 0o600)
        _write(ca_path, cert_pem, 0o644)
    names = list(server_names) or default_server_names()
    key_pem, cert_pem = make_server_cert(ca_key_path.read_bytes(), ca_path.read_bytes(), names)
    _write(directory / "server.key", key_pem, 0o640, group=mosquitto_group)
    _write(directory / "server.crt", cert_pem, 0o644)
    _write(creds_dir / "ca.crt", ca_path.read_bytes(), 0o644)
    return names


def _write_credentials(hall: HallConfig, accounts: Sequence[Identity], creds_dir: Path, rotate: set[str],
                       device_broker: str | None, ca_name: str | None, done: Provisioned) -> dict[str, str]:
    """Each account's credentials file (its password kept unless rotated), and the files of accounts the hall no
    longer has removed. Returns the passwords by user name, for the broker's password file."""
    passwords: dict[str, str] = {}
    wanted = {creds_dir / i.file_name for i in accounts}
    for identity in accounts:
        path = creds_dir / identity.file_name
        old = _old_password(path, identity)
        if old is not None and not ({"all", f"{identity.role}/{identity.device}"} & rotate
                                    or (identity.role == "server" and "server" in rotate)):
            password, bucket = old, done.kept
        else:
            password = secrets.token_urlsafe(PASSWORD_BYTES)
            bucket = done.rotated if old is not None else done.created
        bucket.append(identity)
        passwords[identity.username] = password
        local = identity.role in ("server", "admin")  # on the broker's own machine, on its loopback listener
        creds = Credentials(hall=hall.id, role=identity.role, device=identity.device, username=identity.username,
                            password=password, broker="mqtt://127.0.0.1:1883" if local else device_broker)
        _write(path, creds.dump(ca_name).encode("utf-8"), 0o600)
        done.credentials[identity] = path
    for stale in sorted(creds_dir.glob("*.toml")):
        if stale not in wanted:
            stale.unlink()
            done.removed.append(stale.name)
    return passwords


def _write_broker_files(hall: HallConfig, accounts: Sequence[Identity], directory: Path, passwords: dict[str, str],
                        hasher: str, mosquitto_group: str | None, done: Provisioned) -> None:
    """The broker's password file and ACL, this hall's part replaced and other halls' kept."""
    hashed = hash_passwords(passwords, hasher=hasher)
    done.hasher = "mosquitto_passwd" if hasher != "python" and mosquitto_passwd() else "python"
    passwd = directory / "passwd"
    _write(passwd, merge_password_file(_read(passwd), hall.id, hashed).encode("utf-8"), 0o640,
           group=mosquitto_group)
    acl = directory / "acl"
    _write(acl, merge_acl(_read(acl), hall.id, render_acl_block(hall.id, accounts)).encode("utf-8"), 0o640,
           group=mosquitto_group)


def _old_password(path: Path, identity: Identity) -> str | None:
    try:
        creds = load_credentials(path)
    except CredentialsError:
        return None
    return creds.password if creds.username == identity.username else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _write(path: Path, data: bytes, mode: int, *, group: str | None = None) -> None:
    """Write atomically with `mode` from the first byte (a secret is never briefly world-readable); give
    the file to `group` (Mosquitto's) when we are root and it exists, so the broker can read it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    if group and os.geteuid() == 0:
        import grp

        with contextlib.suppress(KeyError):  # no such group: a broker run by hand as root reads it anyway
            os.chown(tmp, 0, grp.getgrnam(group).gr_gid)
    tmp.replace(path)
