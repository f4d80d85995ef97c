"""Zeroconf (mDNS / DNS-SD): the hall server advertises its broker, devices find their own hall's.

The server registers `_vuoro._tcp.local.` with the broker's port and a TXT record naming the hall
(`hall=kvarnby`), the protocol version (`v=1`) and whether the port speaks TLS (`tls=1`). A kiosk,
counter or display started without `--broker` browses for that service and keeps only the advert
of its own hall and protocol version: two halls on one LAN never cross, whatever their instance
names. A device that holds a CA certificate takes only TLS adverts, so that a forged plain advert
on the LAN can never make it send its password in the clear.

$VUORO_MDNS_INTERFACES picks the interfaces (comma-separated IPv4 addresses; default: all). Tests
set it to 127.0.0.1, so that nothing they do is multicast beyond this machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import logging
import os
import queue
import re
import socket
import time
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from broker import __version__
from broker import protocol as p
from broker.mqtt import BrokerAddress

log = logging.getLogger(__name__)

SERVICE_TYPE = "_vuoro._tcp.local."
INTERFACES_ENV = "VUORO_MDNS_INTERFACES"
RESOLVE_MS = 1500
REGISTER_S = 10.0
DISCOVER_S = 5.0  # how long a device (and doctor) looks for its hall server on the LAN before giving up
Interfaces = InterfaceChoice | list[str]


@dataclass(frozen=True)
class HallAdvert:
    """One hall server's advertisement, as read from the LAN."""

    name: str  # the DNS-SD instance name
    hall: str
    protocol: int
    port: int
    tls: bool
    addresses: tuple[str, ...]
    server: str = ""  # the advertising host's mDNS name
    app_version: str = ""

    def address(self) -> BrokerAddress:
        """The broker to connect to: the first advertised address (IPv4, as advertised)."""
        return BrokerAddress(self.addresses[0], self.port, tls=self.tls)

    def describe(self) -> str:
        where = ", ".join(f"{a}:{self.port}" for a in self.addresses)
        return f"hall {self.hall} at {where}{' (TLS)' if self.tls else ''}, protocol v{self.protocol}"


# ---------------------------------------------------------------- pure: TXT records

def advert_properties(hall_id: str, *, tls: bool) -> dict[str, str]:
    """The TXT record of a hall server."""
    p.Topics(hall_id)  # the same check as the topic root: a hall id that cannot be a topic is refused here too
    return {"hall": hall_id, "v": str(p.VERSION), "tls": "1" if tls else "0", "vuoro": __version__}


def parse_advert(name: str, properties: Mapping[bytes, bytes | None], port: int | None,
                 addresses: Sequence[str], server: str = "") -> HallAdvert | None:
    """A HallAdvert, or None for anything that is not a usable Vuoro hall advert (foreign, malformed,
    no address). Pure, so that every odd TXT record is tested without a network."""
    text = {k.decode("utf-8", "replace").lower(): (v or b"").decode("utf-8", "replace") for k, v in properties.items()}
    hall, version = text.get("hall", ""), text.get("v", "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", hall) or not version.isdigit():
        return None
    if not port or not 0 < port < 65536:
        return None
    ipv4 = tuple(a for a in addresses if _is_ipv4(a))
    if not ipv4:
        return None
    return HallAdvert(name=name, hall=hall, protocol=int(version), port=port, tls=text.get("tls") == "1",
                      addresses=ipv4, server=server, app_version=text.get("vuoro", ""))


def choose(adverts: Sequence[HallAdvert], hall_id: str, *, require_tls: bool = False) -> HallAdvert | None:
    """The advert a device of `hall_id` connects to: its hall, its protocol version, TLS when it must.
    Several servers advertising one hall is a mistake that doctor reports; the choice is stable (by name)."""
    fitting = [a for a in adverts if a.hall == hall_id and a.protocol == p.VERSION and (a.tls or not require_tls)]
    return min(fitting, key=lambda a: a.name) if fitting else None


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


# ---------------------------------------------------------------- the network

def interfaces_from_env() -> Interfaces:
    value = os.environ.get(INTERFACES_ENV, "").strip()
    if not value or value.lower() == "all":
        return InterfaceChoice.All
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    bad = [a for a in chosen if not _is_ipv4(a)]
    if bad:
        raise ValueError(f"${INTERFACES_ENV}: {bad[0]!r} is not an IPv4 address (give addresses, comma-separated, "
                         "or 'all')")
    return chosen


def make_zeroconf(interfaces: Interfaces | None = None) -> Zeroconf:
    """A Zeroconf on the chosen interfaces, IPv4 only (what the hall's devices and brokers speak)."""
    return Zeroconf(interfaces=interfaces if interfaces is not None else interfaces_from_env(),
                    ip_version=IPVersion.V4Only)


def local_addresses(interfaces: Interfaces | None = None) -> list[str]:
    """The IPv4 addresses a hall server advertises: those of the chosen interfaces, else every
    non-loopback address of this machine (loopback only if it has nothing else)."""
    interfaces = interfaces if interfaces is not None else interfaces_from_env()
    if isinstance(interfaces, list):
        return list(interfaces)
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and _is_ipv4(ip.ip) and not ipaddress.ip_address(ip.ip).is_loopback:
                found.append(ip.ip)
    return sorted(set(found)) or ["127.0.0.1"]


def _host_name() -> str:
    name = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]).strip("-")
    return f"{name or 'vuoro'}.local."


class Advertiser:
    """Keeps one hall server's advert on the LAN from start() to close()."""

    def __init__(self, hall_id: str, port: int, *, tls: bool = False, addresses: Sequence[str] | None = None,
                 zeroconf: Zeroconf | None = None, interfaces: Interfaces | None = None) -> None:
        self.hall_id, self.port, self.tls = hall_id, port, tls
        self.addresses = list(addresses) if addresses else local_addresses(interfaces)
        bad = [a for a in self.addresses if not _is_ipv4(a)]
        if bad:
            raise ValueError(f"cannot advertise {bad[0]!r}: an IPv4 address is needed")
        self._own = zeroconf is None
        self._interfaces = interfaces
        self._zeroconf = zeroconf
        self._registering: concurrent.futures.Future[None] | None = None
        self.info = ServiceInfo(
            SERVICE_TYPE, f"Vuoro {hall_id}.{SERVICE_TYPE}", port=port,
            properties=advert_properties(hall_id, tls=tls),
            addresses=[socket.inet_aton(a) for a in self.addresses], server=_host_name())

    def start(self, *, wait: bool = True) -> Advertiser:
        """Register (with a changed instance name if another host already has ours).

        Probing the LAN for a clash takes mDNS about 1.7 s; with wait=False it goes on in Zeroconf's own
        event loop, so that a hall server is ready at once and its advert follows (devices browsing
        meanwhile hear the announcement when it comes).
        """
        if self._zeroconf is None:
            self._zeroconf = make_zeroconf(self._interfaces)
        zc = self._zeroconf
        assert zc.loop is not None
        self._registering = asyncio.run_coroutine_threadsafe(
            _awaited(zc.async_register_service(self.info, allow_name_change=True)), zc.loop)
        if wait:
            self._registering.result(REGISTER_S)
        log.info("advertising hall %s on %s port %d%s", self.hall_id, ", ".join(self.addresses), self.port,
                 " (TLS)" if self.tls else "")
        return self

    @property
    def name(self) -> str:
        return str(self.info.name)

    def close(self) -> None:
        """Say goodbye (devices drop the advert at once) and stop our Zeroconf, if it is ours."""
        zc, self._zeroconf = self._zeroconf, None
        if zc is None:
            return
        try:
            if self._registering is not None:
                with contextlib.suppress(Exception):  # still probing, or it failed: either way it ends here
                    self._registering.result(REGISTER_S)
            zc.unregister_service(self.info)
        finally:
            if self._own:
                zc.close()

    def __enter__(self) -> Advertiser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _awaited(registration: Coroutine[Any, Any, Awaitable[Any]]) -> None:
    """Zeroconf's async_register_service returns, once probing is done, an awaitable of the announcements."""
    await (await registration)


def browse(timeout: float, *, hall_id: str | None = None, require_tls: bool = False,
           zeroconf: Zeroconf | None = None, interfaces: Interfaces | None = None) -> list[HallAdvert]:
    """Every Vuoro advert heard within `timeout`; with `hall_id`, return as soon as that hall's is heard."""
    zc = zeroconf or make_zeroconf(interfaces)
    names: queue.Queue[str] = queue.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.put(name)  # resolved on the caller's thread: the browser's thread must not block

    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    found: dict[str, HallAdvert] = {}
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                name = names.get(timeout=left)
            except queue.Empty:
                break
            advert = resolve(zc, name, timeout_ms=min(RESOLVE_MS, max(100, int(left * 1000))))
            if advert is None:
                continue
            found[name] = advert
            if hall_id is not None and choose([advert], hall_id, require_tls=require_tls) is not None:
                break
    finally:
        browser.cancel()
        if zeroconf is None:
            zc.close()
    return sorted(found.values(), key=lambda a: a.name)


def resolve(zc: Zeroconf, name: str, *, timeout_ms: int = RESOLVE_MS) -> HallAdvert | None:
    info = zc.get_service_info(SERVICE_TYPE, name, timeout=timeout_ms)
    if info is None:
        return None
    advert = parse_advert(name, info.properties, info.port, info.parsed_addresses(IPVersion.V4Only),
                          info.server or "")
    if advert is None:
        log.info("ignored an advert that is not a usable Vuoro hall: %s", name)
    return advert


def find_hall(hall_id: str, timeout: float, *, require_tls: bool = False,
              zeroconf: Zeroconf | None = None, interfaces: Interfaces | None = None) -> HallAdvert | None:
    """The hall server of `hall_id` on the LAN, or None if none answers within `timeout` seconds."""
    adverts = browse(timeout, hall_id=hall_id, require_tls=require_tls, zeroconf=zeroconf, interfaces=interfaces)
    chosen = choose(adverts, hall_id, require_tls=require_tls)
    if chosen is None:
        others = [a.describe() for a in adverts]
        log.info("hall %s not advertised%s", hall_id, f" (heard: {'; '.join(others)})" if others else "")
    return chosen
