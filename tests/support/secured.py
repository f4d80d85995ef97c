"""A real Mosquitto running the production config from assets/mosquitto, with accounts, ACL and TLS
made by `vuoro provision`, on free ports of 127.0.0.1: what a hall in production runs."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from broker.config import HallConfig
from broker.credentials import Credentials, load_credentials
from broker.mqtt import BrokerAddress
from ops.provision import provision, render_conf
from tests.support.brokers import MosquittoBroker, free_port


def hall_named(hall: HallConfig, hall_id: str) -> HallConfig:
    """The same hall under another id: a second hall on the same LAN or broker."""
    return replace(hall, id=hall_id)


@dataclass
class SecuredBroker:
    broker: MosquittoBroker
    directory: Path
    port: int
    tls_port: int

    def credentials(self, hall_id: str, name: str) -> Credentials:
        """`name` as provision names the files: server, admin-it, kiosk-K1, counter-1, display-entrance."""
        return load_credentials(self.directory / "credentials" / hall_id / f"{name}.toml")

    def credentials_path(self, hall_id: str, name: str) -> Path:
        return self.directory / "credentials" / hall_id / f"{name}.toml"

    def address(self, hall_id: str, name: str, *, tls: bool = False) -> BrokerAddress:
        creds = self.credentials(hall_id, name)
        base = BrokerAddress("127.0.0.1", self.tls_port, tls=True) if tls else BrokerAddress("127.0.0.1", self.port)
        return base.with_login(creds.username, creds.password, creds.ca_file)

    @property
    def plain(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    def close(self) -> None:
        self.broker.close()


def broker_dir() -> Path:
    """A folder Mosquitto can reach: started as root it drops to its own user, which must traverse the
    path and (as in production) read the files provision gives to its group. Pytest's tmp_path is 0700."""
    directory = Path(tempfile.mkdtemp(prefix="vuoro-secured-"))
    os.chmod(directory, 0o711)
    return directory


def start_secured(directory: Path, halls: list[HallConfig], *, hashers: list[str] | None = None) -> SecuredBroker:
    """Provision `halls` into `directory` (TLS for 127.0.0.1 and localhost) and start Mosquitto on the config
    provision wrote, only moved to free ports of 127.0.0.1. `hashers` per hall: auto (mosquitto_passwd) or python.
    The files get the modes and group of a real install (provision's defaults)."""
    for index, hall in enumerate(halls):
        provision(hall, directory, tls=True, server_names=["127.0.0.1", "localhost"],
                  hasher=hashers[index] if hashers and index < len(hashers) else "auto")
    port, tls_port = free_port(), free_port()
    while tls_port == port:
        tls_port = free_port()
    config = render_conf(directory, tls=True, port=port, tls_port=tls_port, bind="127.0.0.1")
    config += "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
    broker = MosquittoBroker(port, config=config, extra_ports=(tls_port,)).start()
    return SecuredBroker(broker, directory, port, tls_port)
