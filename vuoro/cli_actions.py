"""The terminal kiosk, counter and observer: `vuoro ticket`, `vuoro call`, `vuoro status`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from broker import protocol as p
from broker.client import CommandError, HallClient, ServerUnavailable
from broker.config import HallConfig
from broker.mqtt import BrokerAddress

TIMEOUT_S = 5.0
# Exit codes: 0 done, 1 refused by the hall server, 2 bad arguments or config, 3 server or broker unreachable,
# 4 refused by the broker: a login it does not accept, or an action its ACL does not allow for this account
EXIT_REFUSED = 4
ACTS_FOR_ALL = ("server", "admin")  # the accounts whose ACL lets them send any command of the hall


def acting_as(args: argparse.Namespace) -> tuple[str, str] | str:
    """Who `vuoro ticket`/`vuoro call` send as: (role, device), or why this account may not (a sentence).

    With a device's credentials the command acts as that device, as its ACL allows nothing else: a kiosk's
    credentials draw tickets as that kiosk, a counter's act only for that counter. IT's and the server's
    accounts may act for any kiosk or counter; without credentials (a trial broker) anything goes."""
    creds = None
    if getattr(args, "credentials", None):
        from broker.credentials import CredentialsError, load_credentials

        try:
            creds = load_credentials(args.credentials)
        except CredentialsError:
            creds = None  # resolve_broker already refused a broken file; not reached in practice
    if args.command == "ticket":
        if creds is not None and creds.role == "kiosk":
            if args.device not in (None, creds.device):
                return (f"not allowed for this account: the credentials are kiosk {creds.device}'s "
                        f"({creds.username}), which draws tickets only as kiosk {creds.device}")
            return "kiosk", creds.device
        wanted = ("kiosk", args.device or "cli")
    else:
        wanted = ("counter", str(args.counter))
        if creds is not None and creds.role == "counter" and creds.device != wanted[1]:
            return (f"not allowed for this account: the credentials are counter {creds.device}'s "
                    f"({creds.username}), which acts only for counter {creds.device}")
    if creds is not None and creds.role not in ACTS_FOR_ALL and creds.role != wanted[0]:
        return (f"not allowed for this account: {creds.role} {creds.device} ({creds.username}) may not act as "
                f"a {wanted[0]}; use that device's credentials or IT's (admin-it.toml)")
    return wanted


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    if args.command == "status":
        return _status(args, hall, address)
    who = acting_as(args)
    if isinstance(who, str):
        print(f"vuoro: {who}", file=sys.stderr)
        return EXIT_REFUSED
    role, device = who
    try:
        client = HallClient(address, hall.id, role, device, version=args.mqtt_version, presence=False)
    except ValueError as exc:
        print(f"vuoro: {exc}", file=sys.stderr)
        return 2
    refused = _connect(client, address)
    if refused is not None:
        return refused
    try:
        if args.command == "ticket":
            topic = _topic_id(hall, args.topic)
            result = client.request("issue", TIMEOUT_S, topic=topic, lang=args.lang,
                                    priority=True if args.priority else None)
        else:
            result = client.request(args.action, TIMEOUT_S, **_call_fields(args))
    except ServerUnavailable as exc:
        if client.link.publish_refused:
            print(f"vuoro: not allowed for this account: the broker {address.url} refused what "
                  f"{address.username or 'an anonymous client'} sent as {role} {device} "
                  f"({client.link.publish_refused}; its ACL)", file=sys.stderr)
            return EXIT_REFUSED
        print(f"vuoro: {exc.message}", file=sys.stderr)
        return 3
    except CommandError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": {"code": exc.code, "message": exc.message, **exc.details}},
                             ensure_ascii=False))
        else:
            extra = "".join(f"; {k}: {v}" for k, v in exc.details.items())
            print(f"refused ({exc.code}): {exc.message}{extra}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.command == "ticket":
        from kiosk.ticket import status_url  # the link the paper ticket's QR code carries

        result["url"] = status_url(hall, result["ticket"].get("token"))  # None when the hall has no public_url
    if args.json:
        print(json.dumps({"ok": True, "result": result}, ensure_ascii=False))
    elif args.command == "ticket":
        print(describe_ticket(hall, result["ticket"], args.lang))
        if result["url"]:
            print(f"page: {result['url']}")
    else:
        print(describe_counter(hall, result))
    if args.command == "ticket" and getattr(args, "printer", None):
        return _print_ticket(hall, result["ticket"], args.printer, args.lang)
    return 0


def _connect(client: HallClient, address: BrokerAddress) -> int | None:
    """Connect; None when connected and allowed to hear its answers, else the exit code (said why)."""
    client.start(timeout=0)
    if not client.link.wait_ready_or_refused(TIMEOUT_S):
        client.close()
        if client.link.login_refused:
            print(f"vuoro: {client.link.refusal_message()}", file=sys.stderr)
            return EXIT_REFUSED
        print(f"vuoro: cannot reach the broker at {address.url} (is `vuoro server` running?)", file=sys.stderr)
        return 3
    refused = client.link.refused_subscriptions
    if refused:
        client.close()
        print(f"vuoro: not allowed for this account: the broker {address.url} does not let "
              f"{address.username or 'an anonymous client'} read {', '.join(refused)} (its ACL)", file=sys.stderr)
        return EXIT_REFUSED
    return None


def _print_ticket(hall: HallConfig, ticket: dict[str, Any], uri: str, lang: str | None) -> int:
    """Print a drawn ticket exactly as the kiosk would (kiosk imported lazily: python-escpos is slow to load)."""
    from kiosk.printer import Printer, PrinterError
    from kiosk.ticket import build_ticket
    from ui.i18n import ticket_labels

    lang = _lang(hall, lang or ticket.get("lang"))
    try:
        printer = Printer(uri)
    except ValueError as exc:
        print(f"vuoro: {exc}", file=sys.stderr)
        return 2
    try:
        printer.print_ticket(build_ticket(hall, ticket, lang, ticket_labels(lang), paper=printer.paper))
    except PrinterError as exc:
        print(f"vuoro: {ticket['number']} was issued but NOT printed: {exc.status.state.value} "
              f"({exc.status.message})", file=sys.stderr)
        return 1
    finally:
        printer.close()
    print(f"printed on {uri}", file=sys.stderr)  # stdout stays the ticket (or its JSON)
    return 0


def _topic_id(hall: HallConfig, given: str) -> str:
    if given in hall.topics:
        return given
    topic = hall.topic_by_letter(given.upper()) if len(given) == 1 else None
    return topic.id if topic else given  # let the server refuse an unknown one, with its list


def _call_fields(args: argparse.Namespace) -> dict[str, Any]:
    action = args.action
    if action == "next":
        return {"topic": args.topic}
    if action == "done":
        matters = [m.strip() for m in args.matters.split(",") if m.strip()] if args.matters else None
        return {"outcome": args.outcome, "matters": matters}
    if action == "forward":
        return {"topic": args.topic, "counter": args.to_counter, "note": args.note}
    if action == "pause":
        return {"reason": args.reason}
    return {}


def _lang(hall: HallConfig, lang: str | None) -> str:
    return hall.language(lang)


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return "<1 min" if minutes < 1 else f"{minutes} min"


def _clock(at: str | None) -> str:
    return "" if not at else datetime.fromisoformat(at).strftime("%H:%M")


def describe_ticket(hall: HallConfig, ticket: dict[str, Any], lang: str | None = None) -> str:
    lang = _lang(hall, lang or ticket.get("lang"))
    topic = hall.topics[ticket["topic"]]
    flags = " (priority)" if ticket.get("priority") else ""
    from kiosk.ticket import wait_range_minutes  # the range exactly as the paper ticket prints it

    span = wait_range_minutes(ticket.get("expected_wait_range_s"))
    wait = f"{span[0]}-{span[1]} min" if span else f"~{_minutes(ticket['expected_wait_s'])}"
    return (f"{ticket['number']}{flags}  {topic.name[lang]}  [{ticket['lang']}]  issued {_clock(ticket['issued_at'])}, "
            f"{ticket['ahead']} ahead, expected wait {wait}")


def describe_counter(hall: HallConfig, result: dict[str, Any]) -> str:
    counter = result["counter"]
    lang = hall.main_language
    line = f"counter {counter['counter']}: {counter['status']}"
    if counter.get("reason"):
        line += f" ({counter['reason']})"
    ticket = result.get("ticket")
    if ticket is not None:
        topic = hall.topics[ticket["topic"]].name[lang]
        line += f"; {ticket['number']} {topic} [{ticket['lang']}] is {ticket['state']}"
        if ticket.get("to_counter"):
            line += f" for counter {ticket['to_counter']}"
        if ticket["state"] == p.CALLED and ticket.get("recalls"):
            line += f" (recall {ticket['recalls']})"
    return line


def _watcher(args: argparse.Namespace) -> tuple[str, str]:
    """Who `vuoro status` listens as: a device's own account reads the hall's state under its own name (its
    ACL lets it read only its own replies), IT's and the server's as a passing admin terminal."""
    if getattr(args, "credentials", None):
        from broker.credentials import CredentialsError, load_credentials

        try:
            creds = load_credentials(args.credentials)
        except CredentialsError:
            pass
        else:
            if creds.role not in ACTS_FOR_ALL:
                return creds.role, creds.device
    return "admin", f"status-{p.new_command_id()[:8]}"


def _status(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    role, device = _watcher(args)
    client = HallClient(address, hall.id, role, device, version=args.mqtt_version, presence=False, watch=True)
    refused = _connect(client, address)
    if refused is not None:
        return refused
    try:
        wanted = {p.HALL_PART, p.CALLS_PART, p.SERVER_PART} | {p.queue_part(t) for t in hall.topics} \
            | {p.counter_part(c) for c in hall.counters}
        client.wait_for(lambda s: wanted <= set(s), timeout=2.0)
        state = client.snapshot()
    finally:
        client.close()
    if args.json:
        print(json.dumps(state, ensure_ascii=False, indent=2, sort_keys=True))
        return 0 if p.HALL_PART in state else 3
    print(format_status(hall, state))
    return 0 if p.HALL_PART in state else 3


def format_status(hall: HallConfig, state: dict[str, dict[str, Any]]) -> str:
    lang = hall.main_language
    server = state.get(p.SERVER_PART, {})
    lines = [f"{hall.name[lang]} ({hall.id})   server: {server.get('status', 'unknown')}"
             f" {server.get('version', '')}".rstrip()]
    hall_state = state.get(p.HALL_PART)
    if hall_state is None:
        lines.append("no state from the hall server yet (is `vuoro server` running for this hall?)")
        return "\n".join(lines)
    when = "issuing tickets" if hall_state["accepting"] else f"closed; opens {hall_state.get('next_open') or '?'}"
    lines.append(f"day {hall_state['day']}, {when}, {hall_state['issued_today']} issued, "
                 f"{hall_state['waiting']} waiting, event seq {hall_state['seq']}")
    lines.append("")
    lines.append(f"{'topic':<34}{'waiting':>8}{'longest':>10}{'new ticket waits':>18}")
    now = datetime.now(hall.tz)
    for topic in hall.topics.values():
        queue = state.get(p.queue_part(topic.id), {})
        oldest = queue.get("oldest_issued_at")
        longest = _minutes((now - datetime.fromisoformat(oldest)).total_seconds()) if oldest else "-"
        lines.append(f"{topic.letter} {topic.name[lang]:<32}{queue.get('waiting', 0):>8}{longest:>10}"
                     f"{'~' + _minutes(queue.get('expected_wait_s', 0)):>18}")
    lines.append("")
    lines.append(f"{'counter':<12}{'status':<10}serving")
    for counter in hall.counters.values():
        body = state.get(p.counter_part(counter.id), {})
        ticket = body.get("ticket")
        serving = f"{ticket['number']} [{ticket['lang']}] since {_clock(ticket.get('called_at'))}" if ticket else ""
        if body.get("forwarded"):
            serving += f"  ({len(body['forwarded'])} forwarded here)"
        lines.append(f"{counter.name[lang]:<12}{body.get('status', '?'):<10}{serving}")
    calls = state.get(p.CALLS_PART, {}).get("calls", [])
    if calls:
        lines.append("")
        lines.append("last calls: " + ", ".join(f"{c['number']} -> {c['counter']}" for c in calls[:6]))
    return "\n".join(lines)
