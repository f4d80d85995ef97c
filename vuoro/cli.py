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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from broker import __version__, runfile, sdnotify
from broker.config import INSTALLED_HALL, ConfigError, HallConfig, find_hall_file, load_hall
from broker.locate import BrokerNotFound, resolve_broker
from broker.mqtt import VERSIONS, BrokerAddress
from vuoro.cli_actions import EXIT_REFUSED  # the exit codes are listed there

if TYPE_CHECKING:
    from broker.embedded import EmbeddedBroker

log = logging.getLogger("vuoro")


# Commands that live beside their own code: each module has add_arguments(parser) and
# run(args, hall, address) -> exit code, and is imported only when its command is used or listed.
APP_COMMANDS: dict[str, tuple[str, str]] = {
    "kiosk": ("kiosk.cli", "run the ticket kiosk (or --snapshot, --test-print)"),
    "counter": ("counter.cli", "run a counter panel (or --snapshot)"),
    "display": ("display.cli", "run a hall display (or --snapshot)"),
    "report": ("vuoro.report_command", "statistics of a hall's event log: CSV, charts and an HTML page"),
    "simulate": ("analytics.simulate_cli", "run the engine over a simulated day; find the staffing for a target wait"),
    "demo": ("vuoro.demo", "the demo hall: server, kiosk, two counters, two displays (or --headless)"),
    "provision": ("ops.provision_cli", "make the broker's accounts, ACL and TLS certificates, and each "
                  "device's credentials file"),
    "doctor": ("vuoro.doctor_command", "check this device's setup and say in plain words what is wrong"),
    "web": ("web.cli", "the visitors' web server: a ticket's live page, its feedback, the web hall display"),
    "collect": ("city.cli", "the city: every hall's events from the central broker into PostgreSQL"),
    "overview": ("city.overview_cli", "the city: a live page of every hall's queues, waits and devices, for staff"),
}
# App commands that never look for the broker on the LAN (doctor looks for it itself, step by step; the demo
# starts its own): they get --broker, the local server's address or the default, at once. A module may also
# say so for some of its uses with `offline(args) -> bool` (`vuoro kiosk --test-print` needs a printer only).
OFFLINE_COMMANDS = frozenset({"report", "simulate", "provision", "doctor", "demo"})
# Commands that run a hall for others: a reader of their output going away (`vuoro demo | head`) must not stop
# the hall, so they keep Python's ignored SIGPIPE; the terminal tools end quietly on it instead.
HALL_RUNNERS = frozenset({"server", "demo"})
START_S = 15.0  # how long the server waits for its broker before saying it is not reachable yet (it keeps trying)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hall", default=None,
                        help=f"hall config file (default: $VUORO_HALL, else {INSTALLED_HALL} when it exists, else "
                        "the demo hall, which `vuoro demo` always uses)")
    parser.add_argument("--broker", default=os.environ.get("VUORO_BROKER"),
                        help="mqtt://HOST:PORT or mqtts://HOST:PORT of the hall's broker (default: the credentials "
                        "file's, else the hall server on this machine, else the hall's server found on the LAN)")
    parser.add_argument("--credentials", default=os.environ.get("VUORO_CREDENTIALS"),
                        help="this device's credentials file from `vuoro provision`: broker account, password and "
                        "CA certificate (default: $VUORO_CREDENTIALS)")
    parser.add_argument("--mqtt-version", choices=list(VERSIONS), default=None,
                        help="3.1.1 or 5 (default: 5 for `vuoro ticket`, `call` and `status` with credentials, "
                        "whose broker then says when its ACL refuses them; else 3.1.1)")
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
    add_advertise_arguments(server)

    ticket = commands.add_parser("ticket", help="draw a ticket, as a kiosk would")
    _add_common(ticket)
    ticket.add_argument("topic", help="topic id or letter")
    ticket.add_argument("--lang", help="the visitor's language (default: the hall's main language)")
    ticket.add_argument("--priority", action="store_true", help="an accessibility (priority) ticket")
    ticket.add_argument("--device", default=None,
                        help="kiosk id to act as (default: the kiosk of the credentials file, else cli)")
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
        if not _installed(module):
            continue
        app = commands.add_parser(name, help=help_text)
        _add_common(app)
        importlib.import_module(module).add_arguments(app)

    status = commands.add_parser("status", help="show the hall: queues, counters, last calls")
    _add_common(status)
    status.add_argument("--json", action="store_true")
    return parser


def _installed(module: str) -> bool:
    """Whether an app command's module is there (a package left out of this install is not an error)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package itself is missing
        return False


def add_advertise_arguments(parser: argparse.ArgumentParser) -> None:
    """--advertise and --no-advertise, for every command that runs a hall server (server, demo)."""
    parser.add_argument("--advertise", nargs="?", const="auto", metavar="URL",
                        help="advertise the hall on the LAN (zeroconf) so that devices find it: with no URL, the "
                        "broker's port on this machine's addresses; or e.g. mqtts://:8883 for the TLS listener "
                        "(default: advertise unless the broker is on loopback only)")
    parser.add_argument("--no-advertise", action="store_true", help="do not advertise the hall on the LAN")


def choose_hall_file(args: argparse.Namespace) -> None:
    """Fill in args.hall when --hall was not given (config.find_hall_file), saying so when it is the demo hall."""
    path, note = find_hall_file(args.hall, os.environ, demo=args.command == "demo")
    if note is not None:
        print(f"vuoro: {note}", file=sys.stderr)
    args.hall = str(path)


def _load(args: argparse.Namespace) -> HallConfig:
    try:
        return load_hall(args.hall)
    except ConfigError as exc:
        print(f"vuoro: hall config refused: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def broker_address(args: argparse.Namespace, hall: HallConfig, *, discover: bool = True) -> BrokerAddress:
    try:
        return resolve_broker(args, hall, discover_s=None if discover else 0)[0]
    except BrokerNotFound as exc:
        print(f"vuoro: {exc}", file=sys.stderr)
        raise SystemExit(exc.code) from None


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:  # a library of a role this machine was not installed for
        from broker.extras import missing_extra

        message = missing_extra(exc)
        if message is None:
            raise
        print(f"vuoro: {message}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    choose_hall_file(args)
    if args.mqtt_version is None:  # with credentials the broker is Mosquitto, whose MQTT 5 PUBACK names a refusal
        args.mqtt_version = "5" if args.credentials and args.command in ("ticket", "call", "status") else "3.1.1"
    if args.command == "server":
        return run_server(args)
    if hasattr(signal, "SIGPIPE") and args.command not in HALL_RUNNERS:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `vuoro status | head` ends quietly, as other tools do
    from vuoro import cli_actions

    hall = _load(args)
    if args.command in APP_COMMANDS:
        from broker.extras import missing_for

        missing = missing_for(args)
        if missing is not None:
            print(f"vuoro: {missing}", file=sys.stderr)
            return 2
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
    from broker import discovery

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


@contextmanager
def announced(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> Iterator[None]:
    """While the block runs, the hall server on `address` can be found: by the command line on this machine
    (the runfile) and by devices on the LAN (zeroconf, as `_advertise` decides). `vuoro server` and
    `vuoro demo` both run their hall inside it."""
    runfile.write(hall.id, address.url)
    advertiser = _advertise(args, hall, address)
    try:
        yield
    finally:
        if advertiser is not None:
            advertiser.close()
        runfile.remove(hall.id, address.url)


def run_server(args: argparse.Namespace) -> int:
    """`vuoro server`: the hall on its broker (the one named, else an embedded one it starts and, whatever
    happens, stops here) until SIGINT/SIGTERM. Returns the exit code (cli_actions lists them)."""
    hall = _load(args)
    # the event log's folder also keeps the private Mosquitto's sessions: a restart loses no device's queue
    db = Path(args.db or Path("var") / f"{hall.id}.sqlite")
    embedded: EmbeddedBroker | None = None
    try:
        embedded, address = _server_broker(args, hall, db)
        return _serve(args, hall, db, address)
    finally:
        if embedded is not None:
            embedded.stop()


def _server_broker(args: argparse.Namespace, hall: HallConfig,
                   db: Path) -> tuple[EmbeddedBroker | None, BrokerAddress]:
    """The server's broker: --broker, or the credentials file's (with its login), or else an embedded broker
    started here on --listen (returned, for the caller to stop). Exits with a plain message when it cannot."""
    from broker.embedded import EmbeddedBrokerError, start_embedded

    if args.broker or (args.credentials and not args.listen):  # a broker named, or the credentials' broker
        try:
            address = BrokerAddress.parse(args.broker or "mqtt://127.0.0.1:1883")
            if args.credentials:
                address = resolve_broker(args, hall, discover_s=0)[0]
        except ValueError as exc:
            print(f"vuoro: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except BrokerNotFound as exc:
            print(f"vuoro: {exc}", file=sys.stderr)
            raise SystemExit(exc.code) from None
        return None, address
    host, port, explicit = listen_address(args.listen)
    try:
        embedded = start_embedded(host, port, any_free_port=not explicit, persistence=db.with_suffix(".mosquitto.db"))
    except EmbeddedBrokerError as exc:
        print(f"vuoro: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return embedded, embedded.address


def _serve(args: argparse.Namespace, hall: HallConfig, db: Path, address: BrokerAddress) -> int:
    """Run the hall service on `address` until stopped; "ready" (stdout and systemd) only once it is."""
    from broker.service import HallService
    from broker.store import StoreError

    try:
        service = HallService(hall, db, address, always_open=args.always_open, version=args.mqtt_version)
    except StoreError as exc:
        print(f"vuoro: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    service.start(timeout=0)
    refused: int | None = None
    try:
        with announced(args, hall, address):
            refused = _wait_ready(service, stop, hall, address, args.credentials)
            if refused is None and not stop.is_set() and service.fatal is None:
                print(f"vuoro server: hall {hall.id} ({hall.name[hall.main_language]}) on broker {address.url}, "
                      f"log {db}, seq {service.engine.state.seq}{', always open' if args.always_open else ''}; "
                      "ready", flush=True)
                sdnotify.notify("READY=1", f"STATUS=serving hall {hall.id} on {address.url}")
                while not stop.is_set() and service.fatal is None:
                    stop.wait(0.5)
    finally:
        sdnotify.notify("STOPPING=1")
        service.stop()
    if refused is not None:
        return refused
    if service.fatal is not None:
        print(f"vuoro server: stopped on an error: {service.fatal}", file=sys.stderr)
        return 1
    print("vuoro server: stopped", flush=True)
    return 0


def _wait_ready(service: Any, stop: threading.Event, hall: HallConfig, address: BrokerAddress,
                credentials: str | None) -> int | None:
    """Wait until the server is ready: connected, its online presence taken by the broker, and its log read.
    Returns EXIT_REFUSED when the broker refuses its account (a wrong password, an account the ACL does not
    let read the hall's commands): it would never mend by itself, so the server stops and says why; else None."""
    said_storage = said_unreachable = False
    started = time.monotonic()
    while not stop.is_set() and service.fatal is None:
        link = service.link
        if link.login_refused:
            where = credentials or "the credentials file (--credentials, $VUORO_CREDENTIALS)"
            print(f"vuoro server: {link.refusal_message()}. Check {where} against the broker's accounts: run "
                  "`vuoro provision` again and reload Mosquitto", file=sys.stderr, flush=True)
            return EXIT_REFUSED
        if link.refused_subscriptions:
            print(f"vuoro server: not allowed for this account: the broker {address.url} does not let "
                  f"{address.username or 'an anonymous client'} read {', '.join(link.refused_subscriptions)}. "
                  "The hall server needs its own account (server.toml from `vuoro provision`)",
                  file=sys.stderr, flush=True)
            return EXIT_REFUSED
        if service.online.is_set() and service.serving:
            return None
        if service.online.is_set() and not said_storage:  # a full or failing disk: presence says why
            said_storage = True
            print(f"vuoro server: hall {hall.id} on broker {address.url}: waiting for storage: "
                  f"{service.storage or 'reading the log'}", flush=True)
        if not said_unreachable and not link.connected and time.monotonic() - started > START_S:
            said_unreachable = True
            log.warning("broker %s not reachable yet; retrying in the background", address.url)
        stop.wait(0.05)
    return None


if __name__ == "__main__":
    raise SystemExit(main())
