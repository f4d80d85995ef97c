"""`vuoro web`: the visitors' web server, behind the city's reverse proxy.

Its own process with its own broker account (role web), so that the hall server never faces the public
internet. The web stack (aiohttp, Jinja2) is the `web` extra, imported only when this command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from broker.config import HallConfig
from broker.mqtt import BrokerAddress

DEFAULT_LISTEN = "127.0.0.1:8080"  # the reverse proxy in front of it speaks HTTPS to the visitors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The web server's own options (the common --hall, --broker, --credentials... are added by the CLI)."""
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"where to serve HTTP (default {DEFAULT_LISTEN}; port 0: any free port)")
    parser.add_argument("--device", default="web", help="this web server's id: its broker account is web/<id> "
                        "(default: web, as `vuoro provision` makes it)")
    parser.add_argument("--grace-min", type=int, default=120, metavar="MIN",
                        help="how long after closing time a ticket's page still opens (default 120)")
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS",
                        help="a reverse proxy whose X-Forwarded-For is believed (an address or a network; "
                        "repeat for more). Without one, the connection's own address is the client's")


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    try:
        import aiohttp  # noqa: F401 -- only to say which extra is missing
        import jinja2  # noqa: F401
    except ImportError as exc:
        print(f"vuoro web: the web server needs the `web` extra ({exc.name} is missing): "
              "pip install 'vuoro[web]'", file=sys.stderr)
        return 2
    from web.limits import parse_proxies

    try:
        host, port = _listen(args.listen)
        proxies = parse_proxies(args.trusted_proxy)
    except ValueError as exc:
        print(f"vuoro web: {exc}", file=sys.stderr)
        return 2
    if args.grace_min < 0:
        print("vuoro web: --grace-min must not be negative", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args, hall, address, host, port, proxies))


async def _serve(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress, host: str, port: int,
                 proxies: tuple) -> int:
    from aiohttp import web

    from web.app import Settings, WebApp
    from web.hub import Hub

    hub = Hub(hall, address, device=args.device, grace_min=args.grace_min, version=args.mqtt_version)
    synced = await hub.start()
    app = WebApp(hall, hub, Settings(trusted_proxies=proxies)).build()
    runner = web.AppRunner(app, access_log=None)  # no access log: a ticket's link is its secret
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=1.0)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []  # the port actually bound (for port 0)
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    print(f"vuoro web: hall {hall.id} on http://{shown}:{bound}/ (broker {address.url}"
          f"{'' if synced else ', not synced with the hall server yet: retrying'})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await hub.close()
    await runner.cleanup()
    return 0
