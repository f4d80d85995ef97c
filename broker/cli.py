"""`vuoro`: the hall server and the terminal tools (kiosk, counter, observer) in one command."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import __version__, runfile
from .config import DEMO_HALL, ConfigError, HallConfig, load_hall
from .mqtt import VERSIONS, BrokerAddress

log = logging.getLogger("vuoro")


# Commands that live beside their own code: each module has add_arguments(parser) and
# run(args, hall, address) -> exit code, and is imported only when its command is used or listed.
APP_COMMANDS: dict[str, tuple[str, str]] = {
    "kiosk": ("kiosk.cli", "run the ticket kiosk (or --snapshot, --test-print)"),
    "counter": ("counter.cli", "run a counter panel (or --snapshot)"),
    "display": ("display.cli", "run a hall display (or --snapshot)"),
    "report": ("broker.report_cli", "statistics of a hall's event log: CSV, charts and an HTML page"),
    "simulate": ("broker.simulate_cli", "run the engine over a simulated day; find the staffing for a target wait"),
    "demo": ("broker.demo", "the demo hall: server, kiosk, two counters, two displays (or --headless)"),
    "provision": ("broker.provision_cli", "make the broker's accounts, ACL and TLS certificates, and each "
                  "device's credentials file"),
    "doctor": ("broker.doctor", "check this device's setup and say in plain words what is wrong"),
}
# App commands that never look for the broker on the LAN (doctor looks for it itself, step by step; the demo
# starts its own): they get --broker, the local server's address or the default, at once. A module may also
# say so for some of its uses with `offline(args) -> bool` (`vuoro kiosk --test-print` needs a printer only).
OFFLINE_COMMANDS = frozenset({"report", "simulate", "provision", "doctor", "demo"})
DISCOVER_S = 5.0  # how long a device looks for its hall server on the LAN before giving up


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hall", default=os.environ.get("VUORO_HALL", str(DEMO_HALL)),
                        help="hall config file (default: $VUORO_HALL or the demo hall)")
    parser.add_argument("--broker", default=os.environ.get("VUORO_BROKER"),
                        help="mqtt://HOST:PORT or mqtts://HOST:PORT of the hall's broker (default: the credentials "
                        "file's, else the hall server on this machine, else the hall's server found on the LAN)")
    parser.add_argument("--credentials", default=os.environ.get("VUORO_CREDENTIALS"),
                        help="this device's credentials file from `vuoro provision`: broker account, password and "
                        "CA certificate (default: $VUORO_CREDENTIALS)")
    parser.add_argument("--mqtt-version", choices=list(VERSIONS), default="3.1.1")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vuoro", description="Vuoro: kiosk and queue-ticket system")
    parser.add_argument("--version", action="version", version=f"vuoro {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = commands.add_parser("server", help="run the hall server")
    _add_common(server)
    server.set_defaults(log_level="INFO")
    server.add_argument("--db", help="SQLite event log (default: var/<hall>.sqlite)")
    server.add_argument("--listen", default=None,
                        help="HOST:PORT for the embedded broker (default 127.0.0.1:1883, or a free port if taken)")
    server.add_argument("--always-open", action="store_true", help="ignore opening hours (demos, tests)")
    server.add_argument("--advertise", nargs="?", const="auto", metavar="URL",
                        help="advertise the hall on the LAN (zeroconf) so that devices find it: with no URL, the "
                        "broker's port on this machine's addresses; or e.g. mqtts://:8883 for the TLS listener "
                        "(default: advertise unless the broker is on loopback only)")
    server.add_argument("--no-advertise", action="store_true", help="do not advertise the hall on the LAN")

    ticket = commands.add_parser("ticket", help="draw a ticket, as a kiosk would")
    _add_common(ticket)
    ticket.add_argument("topic", help="topic id or letter")
    ticket.add_argument("--lang", help="the visitor's language (default: the hall's main language)")
    ticket.add_argument("--priority", action="store_true", help="an accessibility (priority) ticket")
    ticket.add_argument("--device", default="cli", help="kiosk id to act as (default: cli)")
    ticket.add_argument("--json", action="store_true", help="print the reply as JSON")
    ticket.add_argument("--printer", help="also print it, exactly as the kiosk would (printer URI)")

    call = commands.add_parser("call", help="act as a counter: next, recall, noshow, done, forward...")
    _add_common(call)
    call.add_argument("counter", help="counter id")
    call.add_argument("action", choices=["next", "recall", "noshow", "done", "forward", "pause", "open", "close"])
    call.add_argument("--topic", help="next: only this topic; forward: to this topic")
    call.add_argument("--to-counter", help="forward: to this counter")
    call.add_argument("--note", help="forward: a short note for the next counter")
    call.add_argument("--outcome", choices=["resolved", "handed_on"], default="resolved", help="done: outcome")
    call.add_argument("--matters", help="done: comma-separated topic ids handled in the visit")
    call.add_argument("--reason", help="pause: why")
    call.add_argument("--json", action="store_true")

    for name, (module, help_text) in APP_COMMANDS.items():
        if importlib.util.find_spec(module) is None:
            continue
        app = commands.add_parser(name, help=help_text)
        _add_common(app)
        importlib.import_module(module).add_arguments(app)

    status = commands.add_parser("status", help="show the hall: queues, counters, last calls")
    _add_common(status)
    status.add_argument("--json", action="store_true")
    return parser


def _load(args: argparse.Namespace) -> HallConfig:
    try:
        return load_hall(args.hall)
    except ConfigError as exc:
        print(f"vuoro: hall config refused: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


class BrokerNotFound(Exception):
    """Where the broker is, or how to log in, could not be worked out; `code` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def resolve_broker(args: argparse.Namespace, hall: HallConfig, *,
                   discover_s: float = DISCOVER_S) -> tuple[BrokerAddress, str]:
    """The broker and how it was found: --broker, else the credentials file's `broker`, else the hall
    server on this machine (its runfile: instant, and needs no multicast), else the hall's advert on the
    LAN (zeroconf; discover_s=0 skips it for the old default 127.0.0.1:1883). Credentials come from
    --credentials. Raises BrokerNotFound with a plain message."""
    creds = None
    if getattr(args, "credentials", None):
        from .credentials import CredentialsError, load_credentials

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
    if url is None and discover_s <= 0:
        url, how = "mqtt://127.0.0.1:1883", "default"
    if url is not None:
        try:
            address = BrokerAddress.parse(url)
        except ValueError as exc:
            raise BrokerNotFound(str(exc), 2) from None
    else:
        from . import discovery

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


def broker_address(args: argparse.Namespace, hall: HallConfig, *, discover: bool = True) -> BrokerAddress:
    try:
        return resolve_broker(args, hall, discover_s=DISCOVER_S if discover else 0)[0]
    except BrokerNotFound as exc:
        print(f"vuoro: {exc}", file=sys.stderr)
        raise SystemExit(exc.code) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if args.command == "server":
        return run_server(args)
    if hasattr(signal, "SIGPIPE"):  # `vuoro status | head` ends quietly, as other terminal tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    from . import cli_actions

    hall = _load(args)
    if args.command in APP_COMMANDS:
        module = importlib.import_module(APP_COMMANDS[args.command][0])
        offline = args.command in OFFLINE_COMMANDS or getattr(module, "offline", lambda _: False)(args)
        return int(module.run(args, hall, broker_address(args, hall, discover=not offline)))
    return cli_actions.run(args, hall, broker_address(args, hall))


def listen_address(value: str | None) -> tuple[str, int, bool]:
    if value is None:
        return "127.0.0.1", 1883, False
    host, _, port = value.rpartition(":")
    try:
        return host.strip("[]") or "0.0.0.0", int(port), True
    except ValueError:
        print(f"vuoro: --listen {value!r} must be HOST:PORT", file=sys.stderr)
        raise SystemExit(2) from None


def _advertise(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> Any:
    """Advertise the hall with zeroconf (discovery.Advertiser), or None. Without --advertise, a broker on
    loopback only is not advertised: no device elsewhere could reach it (and tests stay off the LAN)."""
    if args.no_advertise:
        return None
    loopback = address.host in ("localhost", "::1") or address.host.startswith("127.")
    if args.advertise is None and loopback:
        return None
    from . import discovery

    port, tls, host = address.port, address.tls, None if loopback or address.host == "0.0.0.0" else address.host
    if args.advertise not in (None, "auto"):
        parts = urlsplit(args.advertise)
        try:
            if parts.scheme not in ("mqtt", "mqtts"):
                raise ValueError("the scheme must be mqtt:// or mqtts://")
            tls = parts.scheme == "mqtts"
            port = parts.port or (8883 if tls else 1883)
            host = parts.hostname or host
        except ValueError as exc:
            print(f"vuoro: --advertise {args.advertise!r}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    try:
        addresses = None if host is None else sorted({str(info[4][0]) for info in socket.getaddrinfo(
            host, port, socket.AF_INET, socket.SOCK_STREAM)})
        return discovery.Advertiser(hall.id, port, tls=tls, addresses=addresses).start(wait=False)
    except (OSError, ValueError) as exc:
        log.warning("cannot advertise hall %s on the network (%s); devices need --broker", hall.id, exc)
        return None


def run_server(args: argparse.Namespace) -> int:
    from .embedded import EmbeddedBroker, EmbeddedBrokerError, start_embedded
    from .service import HallService
    from .store import StoreError

    hall = _load(args)
    embedded: EmbeddedBroker | None = None
    if args.broker:
        try:
            address = BrokerAddress.parse(args.broker)
        except ValueError as exc:
            print(f"vuoro: {exc}", file=sys.stderr)
            return 2
        if args.credentials:
            try:
                address = resolve_broker(args, hall, discover_s=0)[0]
            except BrokerNotFound as exc:
                print(f"vuoro: {exc}", file=sys.stderr)
                return exc.code
    else:
        host, port, explicit = listen_address(args.listen)
        try:
            embedded = start_embedded(host, port, any_free_port=not explicit)
            address = embedded.address
        except EmbeddedBrokerError as exc:
            print(f"vuoro: {exc}", file=sys.stderr)
            return 1
    db = Path(args.db or Path("var") / f"{hall.id}.sqlite")
    try:
        service = HallService(hall, db, address, always_open=args.always_open, version=args.mqtt_version)
    except StoreError as exc:
        print(f"vuoro: {exc}", file=sys.stderr)
        if embedded:
            embedded.stop()
        return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if not service.start(timeout=15):
        log.warning("broker %s not reachable yet; retrying in the background", address.url)
    runfile.write(hall.id, address.url)
    advertiser = _advertise(args, hall, address)
    print(f"vuoro server: hall {hall.id} ({hall.name[hall.main_language]}) on broker {address.url}, "
          f"log {db}, seq {service.engine.state.seq}{', always open' if args.always_open else ''}; "
          "ready", flush=True)
    try:
        while not stop.is_set() and service.fatal is None:
            stop.wait(0.5)
    finally:
        if advertiser is not None:
            advertiser.close()
        runfile.remove(hall.id, address.url)
        service.stop()
        if embedded is not None:
            embedded.stop()
    if service.fatal is not None:
        print(f"vuoro server: stopped on an error: {service.fatal}", file=sys.stderr)
        return 1
    print("vuoro server: stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
