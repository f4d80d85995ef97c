"""`vuoro overview`: the live city overview for staff (city/overview.py), its own small aiohttp app.

    vuoro overview --account /etc/vuoro/city/overview.toml --broker mqtts://central:8883 \\
                   --staff /etc/vuoro/city/staff.passwd --listen 127.0.0.1:8090

Imported whenever `vuoro` lists its commands: the web stack (aiohttp, the `city` extra) only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.config import HallConfig
from broker.mqtt import BrokerAddress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", help="the overview's account file on the central broker (from `vuoro "
                        "provision --bridge`: central/accounts/overview.toml)")
    parser.add_argument("--staff", help="who may see it: a password file in Mosquitto's format "
                        "(mosquitto_passwd -c FILE NAME)")
    parser.add_argument("--listen", default="127.0.0.1:8090", metavar="HOST:PORT",
                        help="where to serve the page (default 127.0.0.1:8090: put the city's TLS proxy in front)")
    parser.add_argument("--lang", metavar="LANG", help="the page's language when neither ?lang= nor the browser "
                        "names a shipped one (default: the --hall file's first language)")


def offline(args: argparse.Namespace) -> bool:
    return True  # the central broker comes from --broker or the account file, never from the LAN


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    from city.account import AccountError, load_account

    if not args.staff:
        print("vuoro overview: give --staff FILE (mosquitto_passwd -c FILE NAME): the page is for staff only",
              file=sys.stderr)
        return 2
    try:
        central = load_account(args.account).address(address) if args.account else address
        staff = Path(args.staff)
        staff.stat()
        host, _, port = args.listen.rpartition(":")
        port_number = int(port)
    except (AccountError, OSError, ValueError) as exc:
        print(f"vuoro overview: {exc}", file=sys.stderr)
        return 2
    from city.overview import serve

    return serve(central, staff, host or "127.0.0.1", port_number, version=args.mqtt_version,
                 lang=args.lang or hall.main_language)

