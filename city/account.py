"""A city account's file (the collector's, the overview's, Home Assistant's on the central broker), written by
`vuoro provision --bridge` (ops/bridge.py) and read here:

    username = "city/collector"
    password = "..."
    broker = "mqtts://central.example:8883"   # optional
    ca = "ca.crt"                              # optional: relative to this file
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from broker.mqtt import BrokerAddress

_KEYS = {"username", "password", "broker", "ca"}


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    broker: str | None = None
    ca_file: str | None = None

    def address(self, given: BrokerAddress | None) -> BrokerAddress:
        """The broker to use (the one given on the command line, else the file's), logged in as this account."""
        base = given
        if self.broker and (given is None or given.url == "mqtt://127.0.0.1:1883"):
            base = BrokerAddress.parse(self.broker)
        if base is None:
            raise AccountError("no broker: give --broker mqtts://CENTRAL:8883")
        return base.with_login(self.username, self.password, self.ca_file)


def load_account(path: str | Path) -> Account:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AccountError(f"{path}: no such account file (make it with `vuoro provision --bridge`)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AccountError(f"{path}: cannot be read: {exc}") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise AccountError(f"{path}: {unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    for key in ("username", "password"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise AccountError(f"{path}: {key}: must be a non-empty string")
    ca = data.get("ca")
    ca_file = None if not isinstance(ca, str) else str(Path(ca) if Path(ca).is_absolute() else path.parent / ca)
    broker = data.get("broker") if isinstance(data.get("broker"), str) else None
    return Account(data["username"], data["password"], broker, ca_file)
