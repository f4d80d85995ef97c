"""Where a device's hall broker is, and how it logs in: --broker, its credentials file, the hall server on this
machine (the runfile) or the hall's advert on the LAN (zeroconf). Used by every command that talks to a hall and
by `vuoro doctor`, which reports each step."""

from __future__ import annotations

import argparse

from broker import runfile
from broker.config import HallConfig
from broker.mqtt import BrokerAddress


class BrokerNotFound(Exception):
    """Where the broker is, or how to log in, could not be worked out; `code` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def resolve_broker(args: argparse.Namespace, hall: HallConfig, *,
                   discover_s: float | None = None) -> tuple[BrokerAddress, str]:
    """The broker and how it was found: --broker, else the credentials file's `broker`, else the hall
    server on this machine (its runfile: instant, and needs no multicast), else the hall's advert on the
    LAN (zeroconf, for discover_s or discovery.DISCOVER_S; discover_s=0 skips it for the old default
    127.0.0.1:1883). Credentials come from
    --credentials. Raises BrokerNotFound with a plain message."""
    creds = None
    if getattr(args, "credentials", None):
        from broker.credentials import CredentialsError, load_credentials

        try:
            creds = load_credentials(args.credentials)
        except CredentialsError as exc:
            raise BrokerNotFound(f"credentials refused: {exc}", 2) from None
        if creds.hall != hall.id:
            raise BrokerNotFound(f"the credentials in {args.credentials} are for hall {creds.hall!r}, "
                                 f"but the hall file {args.hall} is hall {hall.id!r}", 2)
        own = getattr(args, "id", None)
        if args.command == creds.role and own is not None and str(own) != creds.device:
            raise BrokerNotFound(f"the credentials in {args.credentials} are {creds.role} {creds.device}'s, "
                                 f"not {creds.role} {own}'s", 2)
    if args.broker:
        url, how = args.broker, "--broker"
    elif creds is not None and creds.broker:
        url, how = creds.broker, "credentials file"
    else:
        url, how = runfile.read(hall.id), "the hall server on this machine"
        if url is not None and creds is not None and creds.ca_file and creds.role not in ("server", "admin") \
                and not url.startswith("mqtts://"):
            # a device holding the hall's CA sends its password over TLS only: the hall's advert names that
            # listener, the runfile only the server's own plain loopback port
            url = None
    if url is None and discover_s is not None and discover_s <= 0:
        url, how = "mqtt://127.0.0.1:1883", "default"
    if url is not None:
        try:
            address = BrokerAddress.parse(url)
        except ValueError as exc:
            raise BrokerNotFound(str(exc), 2) from None
    else:
        from broker import discovery

        if discover_s is None:
            discover_s = discovery.DISCOVER_S
        try:
            advert = discovery.find_hall(hall.id, discover_s, require_tls=bool(creds and creds.ca_file))
        except (ValueError, OSError) as exc:
            raise BrokerNotFound(f"cannot look for the hall server on the network: {exc}", 3) from None
        if advert is None:
            tls = " with TLS" if creds and creds.ca_file else ""
            raise BrokerNotFound(f"hall {hall.id!r} not found on the network: no hall server advertised it{tls} "
                                 f"within {discover_s:g} s. Is `vuoro server` running, on this network? "
                                 "Or give --broker mqtt://HOST:PORT", 3)
        address, how = advert.address(), f"zeroconf ({advert.name})"
    if creds is not None:
        address = address.with_login(creds.username, creds.password, creds.ca_file)
    return address, how
