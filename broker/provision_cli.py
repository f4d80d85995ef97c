"""`vuoro provision`: the broker's accounts, ACL and TLS certificates, and each device's credentials.

    sudo vuoro provision --hall /etc/vuoro/hall.toml --tls            # into /etc/mosquitto/vuoro
    sudo vuoro provision --hall /etc/vuoro/hall.toml --rotate kiosk/K1 # a stolen kiosk: new password

Safe to run again: passwords it made before are kept unless rotated; new devices are added and
removed ones dropped. The work is in broker/provision.py.
"""

from __future__ import annotations

import argparse
import sys

from .config import HallConfig
from .mqtt import BrokerAddress
from .provision import provision

DEFAULT_DIR = "/etc/mosquitto/vuoro"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_DIR, help=f"folder for the broker's files (default {DEFAULT_DIR})")
    parser.add_argument("--tls", action="store_true",
                        help="also make a CA and the broker's certificate: devices then use TLS on port 8883")
    parser.add_argument("--server-name", action="append", default=[], metavar="NAME",
                        help="with --tls: a host name or IP address devices reach the broker by (repeatable; "
                        "default: this machine's name, NAME.local, localhost and its IPv4 addresses)")
    parser.add_argument("--admin", action="append", default=[], metavar="NAME",
                        help="an account for IT's terminal (`vuoro call`, `vuoro status`...), repeatable "
                        "(default: it)")
    parser.add_argument("--rotate", action="append", default=[], metavar="ACCOUNT",
                        help="give a new password to ROLE/ID (kiosk/K1, counter/3, display/entrance, admin/it), "
                        "server, or all; repeatable")
    parser.add_argument("--hasher", choices=["auto", "mosquitto_passwd", "python"], default="auto",
                        help="how passwords are hashed (default: mosquitto_passwd if installed, else the same "
                        "PBKDF2-SHA512 in Python)")


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    """`--broker`, when given, is written into the devices' credentials (else they find the hall by zeroconf)."""
    try:
        done = provision(hall, args.out, tls=args.tls, server_names=args.server_name,
                         device_broker=args.broker, admins=args.admin or ["it"], rotate=args.rotate,
                         hasher=args.hasher)
    except (ValueError, RuntimeError) as exc:
        print(f"vuoro provision: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"vuoro provision: {exc.filename}: permission denied (run it with sudo?)", file=sys.stderr)
        return 2
    out = done.directory
    print(f"hall {hall.id}: {len(done.credentials)} accounts in {out}/passwd (hashed with {done.hasher}), "
          f"ACL in {out}/acl, config {out}/vuoro.conf")
    for label, group in (("new", done.created), ("new password", done.rotated), ("unchanged", done.kept)):
        if group:
            print(f"  {label}: {', '.join(str(i) for i in group)}")
    if done.removed:
        print(f"  removed (no longer in the hall file): {', '.join(done.removed)}")
    if args.tls:
        print(f"  TLS: CA {out}/ca.crt, broker certificate for {', '.join(done.server_names)}")
    first = next(iter(done.credentials.values()))
    print(f"\nCredentials, one file per device, in {first.parent}/ (keep them secret).")
    print("Next:")
    print(f"  sudo ln -sf {out}/vuoro.conf /etc/mosquitto/conf.d/vuoro.conf && sudo systemctl restart mosquitto")
    print("  (later runs: sudo systemctl reload mosquitto)")
    extra = " and ca.crt" if done.tls else ""
    print(f"  copy each device's file{extra} to /etc/vuoro/ on that device (credentials.toml, chmod 600)")
    return 0
