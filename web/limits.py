"""Who is asking, and how often: rate limits per client address, behind a trusted reverse proxy or not.

Pure: the caller passes the monotonic time in. A client is its address; behind a reverse proxy the
address is taken from X-Forwarded-For only when the connection comes from a proxy named as trusted
(else anyone could claim any address and never be limited).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

KEEP_CLIENTS = 20000  # buckets remembered; the oldest are forgotten first (a forgotten client starts full)


@dataclass(frozen=True)
class Rate:
    per_minute: float
    burst: int


# A visitor opens a page, its stream, maybe switches language and reconnects a few times: far below these.
LOOKUP = Rate(per_minute=60, burst=40)
FEEDBACK = Rate(per_minute=6, burst=8)  # a visitor fixing a too-long comment tries a few times


class Limiter:
    """Token buckets per (client, kind)."""

    def __init__(self, rates: dict[str, Rate]) -> None:
        self.rates = rates
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def allow(self, client: str, kind: str, now: float) -> float:
        """0.0 when allowed (and counted), else the seconds until it would be."""
        rate = self.rates[kind]
        key = (client, kind)
        tokens, at = self._buckets.pop(key, (float(rate.burst), now))
        tokens = min(float(rate.burst), tokens + (now - at) * rate.per_minute / 60)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) * 60 / rate.per_minute
        self._buckets[key] = (tokens - 1.0, now)
        while len(self._buckets) > KEEP_CLIENTS:
            self._buckets.popitem(last=False)
        return 0.0


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """`--trusted-proxy` values: addresses or networks (10.0.0.5, 10.0.0.0/24, ::1). ValueError if not."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip())


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The client's address: the peer's, or behind trusted proxies the last X-Forwarded-For hop that is not
    one of them (proxies append, so the entries left of a trusted hop are only as good as that hop)."""
    address = peer or "unknown"
    if not forwarded_for or not _trusted(address, proxies):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",")][-16:]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # a mangled header: the proxy itself is the client we know
        if not _trusted(hop, proxies):
            return hop
        address = hop
    return address
