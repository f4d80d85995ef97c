"""A device's credentials file: who it is on the hall's broker, and how to trust the broker.

`vuoro provision` writes one per device (and one for the hall server, one for IT's terminal);
the device is started with `--credentials FILE` (or $VUORO_CREDENTIALS). Like the hall file it is
read strictly: an unknown key or a wrong type is refused with the file and the key, so that a
typo never turns into a silent anonymous login.

    hall = "kvarnby"
    role = "kiosk"
    device = "K1"
    username = "kvarnby/kiosk/K1"
    password = "..."
    ca = "ca.crt"                          # optional: TLS, the hall's CA (relative to this file)
    broker = "mqtts://hall.example:8883"   # optional: otherwise zeroconf finds the hall server
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker import protocol as p

ROLES = ("server", "admin", "kiosk", "counter", "display", "web")
_KEYS = {"hall", "role", "device", "username", "password", "ca", "broker"}


class CredentialsError(ValueError):
    """A credentials file that cannot be used; str() names the file and the problem, for IT."""


def username_for(hall: str, role: str, device: str) -> str:
    """The broker account of one device: `<hall>/<role>/<device>`, or `<hall>/server` for the hall server.

    The hall comes first so that two halls sharing a broker never share an account.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if not p.HALL_ID_RE.match(hall):
        raise ValueError(f"invalid hall id {hall!r}")
    if role == "server":
        return f"{hall}/server"
    if not p.DEVICE_RE.match(device):
        raise ValueError(f"invalid device id {device!r}")
    return f"{hall}/{role}/{device}"


@dataclass(frozen=True)
class Credentials:
    hall: str
    role: str
    device: str
    username: str
    password: str = field(repr=False)
    ca_file: str | None = None  # absolute, once loaded
    broker: str | None = None
    path: Path | None = None

    def dump(self, ca_name: str | None = None) -> str:
        """The file's text; `ca_name` is how the CA is named in it (relative to the file)."""
        what = "the hall server" if self.role == "server" else f"{self.role} {self.device}"
        lines = [
            f"# Vuoro credentials of {what} in hall {self.hall}, made by `vuoro provision`.",
            "# Secret: keep it readable only by the user that runs Vuoro on the device (chmod 600).",
            "# Start the device with --credentials THIS_FILE (the systemd units do).",
            f"hall = {_toml(self.hall)}",
            f"role = {_toml(self.role)}",
            f"device = {_toml(self.device)}",
            f"username = {_toml(self.username)}",
            f"password = {_toml(self.password)}",
        ]
        if ca_name or self.ca_file:
            lines.append(f"ca = {_toml(ca_name or str(self.ca_file))}   # TLS: the broker's certificate must chain "
                         "to this CA")
        if self.broker:
            lines.append(f"broker = {_toml(self.broker)}")
        else:
            lines.append('# broker = "mqtts://HALL-SERVER:8883"  # optional: else zeroconf finds the hall server')
        return "\n".join(lines) + "\n"


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_credentials(path: str | Path) -> Credentials:
    """Read and check a credentials file; CredentialsError says what is wrong in plain words."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredentialsError(f"{path}: no such credentials file (make it with `vuoro provision`)") from None
    except PermissionError:
        raise CredentialsError(f"{path}: not readable by this user (uid {os.getuid()})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{path}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CredentialsError(f"{path}: not valid TOML: {exc}") from None
    return parse_credentials(data, path)


def parse_credentials(data: dict[str, Any], path: Path) -> Credentials:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise CredentialsError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    values: dict[str, str] = {}
    for key in ("hall", "role", "device", "username", "password", "ca", "broker"):
        if key not in data:
            if key in ("ca", "broker") or (key == "device" and data.get("role") == "server"):
                continue
            raise CredentialsError(f"{path}: {key}: missing")
        if not isinstance(data[key], str) or not data[key]:
            raise CredentialsError(f"{path}: {key}: must be a non-empty string")
        values[key] = data[key]
    role, device = values["role"], values.get("device", "server")
    try:
        expected = username_for(values["hall"], role, device)
    except ValueError as exc:
        raise CredentialsError(f"{path}: {exc}") from None
    if values["username"] != expected:
        raise CredentialsError(f"{path}: username: {values['username']!r} does not belong to {role} {device} "
                               f"of hall {values['hall']} (expected {expected!r})")
    ca_file = None
    if "ca" in values:
        ca_path = Path(values["ca"])
        ca_file = str(ca_path if ca_path.is_absolute() else (path.parent / ca_path).resolve())
    broker = values.get("broker")
    if broker is not None and not re.match(r"^mqtts?://", broker):
        raise CredentialsError(f"{path}: broker: must be mqtt://HOST:PORT or mqtts://HOST:PORT, got {broker!r}")
    return Credentials(hall=values["hall"], role=role, device=device, username=values["username"],
                       password=values["password"], ca_file=ca_file, broker=broker, path=path)
