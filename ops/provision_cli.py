"""`vuoro provision`: the broker's accounts, ACL and TLS certificates, and each device's credentials.

    sudo vuoro provision --hall /etc/vuoro/hall.toml --tls            # into /etc/mosquitto/vuoro
    sudo vuoro provision --hall /etc/vuoro/hall.toml --rotate kiosk/K1 # a stolen kiosk: new password
    sudo vuoro provision --hall /etc/vuoro/hall.toml --bridge mqtts://central.city.example:8883 \
                         --central-out /srv/vuoro-central    # the hall's bridge to the city (ops/bridge.py)

Safe to run again: passwords it made before are kept unless rotated; new devices are added and
removed ones dropped. The work is in ops/provision.py.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from ops.provision import provision

if TYPE_CHECKING:
    from ops.bridge import BridgeProvisioned

BRIDGE_ROTATION = "bridge"  # --rotate bridge: a new password for the hall's bridge account on the central broker

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
                        "server, all (the hall's accounts), or bridge (the bridge's and the city's accounts); "
                        "repeatable")
    parser.add_argument("--hasher", choices=["auto", "mosquitto_passwd", "python"], default="auto",
                        help="how passwords are hashed (default: mosquitto_passwd if installed, else the same "
                        "PBKDF2-SHA512 in Python)")
    add_bridge_arguments(parser)


def add_bridge_arguments(parser: argparse.ArgumentParser) -> None:
    city = parser.add_argument_group("the bridge to a city's central broker (ops/bridge.py)")
    city.add_argument("--bridge", metavar="URL",
                      help="mqtts://CENTRAL:8883 (or mqtt://): forward this hall's events, state and device presence "
                      "to the city's central broker under vuoro/<hall>/ (kept on later runs)")
    city.add_argument("--no-bridge", action="store_true", help="take the hall's bridge out again")
    city.add_argument("--central-out", metavar="DIR",
                      help="folder for the central broker's accounts, ACL, config and city account files, shared "
                      "by every hall of the city (default: OUT/central)")
    city.add_argument("--collector", default="collector", metavar="ID",
                      help="the id of the city's collector: the only one whose replay questions the bridge carries in "
                      "(default collector)")
    city.add_argument("--bridge-commands", action="store_true",
                      help="carry every command in and every reply out (counters run from the centre); default: "
                      "read-only from the centre")
    city.add_argument("--central-name", action="append", default=[], metavar="NAME",
                      help="with mqtts://: a name of the central broker for its certificate (default: the URL's host)")
    city.add_argument("--central-ca", metavar="FILE",
                      help="with mqtts://: the CA of a central broker whose certificate IT already has (else a city CA "
                      "is made in --central-out)")


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    """`--broker`, when given, is written into the devices' credentials (else they find the hall by zeroconf)."""
    try:
        rotate = [r for r in args.rotate if r != BRIDGE_ROTATION]
        done = provision(hall, args.out, tls=args.tls, server_names=args.server_name,
                         device_broker=args.broker, admins=args.admin or ["it"], rotate=rotate,
                         hasher=args.hasher)
        bridged = run_bridge(args, hall)
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
    devices = [f"{path.name} for {identity.role} {identity.device}" for identity, path in done.credentials.items()
               if identity.role not in ("server", "admin")][:3]
    print(f"  copy each device's file{extra} to /etc/vuoro/ on that device under the same name, chmod 600, owned "
          f"by vuoro: {', '.join(devices)}, ... (the systemd units and the Pi session read "
          "/etc/vuoro/ROLE-ID.toml); the hall server's is /etc/vuoro/server.toml")
    if bridged is not None:
        print_bridge(bridged)
    return 0


def run_bridge(args: argparse.Namespace, hall: HallConfig) -> BridgeProvisioned | None:
    """Add, keep (re-append after provision rewrote vuoro.conf) or drop the hall's bridge."""
    from ops.bridge import drop_bridge, provision_bridge

    if getattr(args, "no_bridge", False):
        if drop_bridge(args.out):
            print(f"hall {hall.id}: bridge to the city's central broker removed from {args.out}/vuoro.conf")
        return None
    rotate = BRIDGE_ROTATION in args.rotate
    return provision_bridge(hall, args.out, getattr(args, "bridge", None), central_dir=args.central_out,
                            collector=args.collector, commands=args.bridge_commands, central_names=args.central_name,
                            central_ca=args.central_ca, rotate=rotate, hasher=args.hasher)


def print_bridge(done: BridgeProvisioned) -> None:
    central = done.central_dir
    state = "added" if done.created else "kept"
    print(f"\nBridge {state}: {done.hall_conf} forwards this hall to the city's central broker as {done.username}"
          f"{' over TLS' if done.tls else ''} (read-only from the centre unless --bridge-commands).")
    print(f"The central broker's files are in {central}/: passwd and acl (one block per hall), central.conf"
          f"{', ca.crt and its certificate' if done.tls else ''}; the city's account files in {central}/accounts/:")
    for name, path in done.accounts.items():
        print(f"  {name}: {path}")
    if done.tunnel is not None:
        print(f"The bridge's TLS goes through stunnel ({done.tunnel}; why: see its comments). On this machine:")
        print(f"  sudo apt-get install -y stunnel4 && sudo ln -sf {done.tunnel} /etc/stunnel/vuoro-city.conf && "
              "sudo systemctl enable --now stunnel@vuoro-city")
    print("On the central machine (after every hall was provisioned, or copy the files again when one is added):")
    print(f"  sudo cp -r {central} /etc/mosquitto/vuoro-central && sudo ln -sf "
          "/etc/mosquitto/vuoro-central/central.conf /etc/mosquitto/conf.d/vuoro-central.conf && "
          "sudo systemctl reload mosquitto")
    print("  vuoro collect --account accounts/collector.toml --db postgresql://vuoro@dbhost/city")
