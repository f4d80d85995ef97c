"""`vuoro doctor`: check a device's setup, one step after the other, and say in plain words what is wrong.

    vuoro doctor --credentials /etc/vuoro/kiosk-K1.toml        # as the device would start
    vuoro doctor --role kiosk --id K1 --broker mqtt://hall:1883  # without credentials (an open broker)

The steps follow the way a device comes up: the hall file, its credentials, where the hall server
is (--broker, the credentials, this machine, or zeroconf on the LAN), whether the broker answers,
TLS, the login, the hall server itself (a harmless command that it must refuse), and for the device
apps the printer (kiosk) and the screen. A step that cannot be checked because an earlier one
failed says so. Exit code 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import socket
import ssl
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker import protocol as p
from broker.config import HallConfig
from broker.credentials import Credentials, CredentialsError, load_credentials
from broker.mqtt import BrokerAddress

NEEDS_SCREEN = ("kiosk", "counter", "display")
CONNECT_S = 3.0
ANSWER_S = 4.0
PROBE_OP = "doctor-probe"  # no such op: the server refuses it with unknown_op, which proves the whole path
X11_DIR = "/tmp/.X11-unix"
DRI_GLOB = "/dev/dri/card*"

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "--"


@dataclass
class Finding:
    level: str
    what: str
    fix: str = ""


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: str, what: str, fix: str = "") -> Finding:
        finding = Finding(level, what, fix)
        self.findings.append(finding)
        return finding

    @property
    def failed(self) -> bool:
        return any(f.level == FAIL for f in self.findings)

    def text(self) -> str:
        lines = []
        for f in self.findings:
            lines.append(f"  {f.level:<5} {f.what}")
            if f.fix:
                lines.append(f"        fix: {f.fix}")
        return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", choices=["kiosk", "counter", "display", "server", "admin", "web"],
                        help="what this machine runs (default: the credentials file's role)")
    parser.add_argument("--id", help="the device id (default: the credentials file's)")
    parser.add_argument("--printer", default=os.environ.get("VUORO_PRINTER"),
                        help="kiosk: the printer URI to check (default: the kiosk's printer in the hall file)")
    parser.add_argument("--discover-timeout", type=float, default=None, metavar="S",
                        help="how long to look for the hall server on the LAN (default: as long as a device "
                        "looks, 5 s)")


# Asks the printer at a URI for its state: (kiosk.printer_status.PrinterState's value, message). The command
# line hands it in (vuoro/doctor_command.py): ops may not import a device's code.
AskPrinter = Callable[[str], tuple[str, str]]


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress, *,
        ask_printer: AskPrinter | None = None) -> int:
    """`address` is not used: doctor finds the broker itself, so that it can tell how it went."""
    if args.log_level == "WARNING":  # the link's own warnings would repeat, less plainly, what the report says
        logging.getLogger("broker.mqtt").setLevel(logging.ERROR)
    doctor = Doctor(args, hall, ask_printer)
    report = doctor.check()
    who = "the hall server" if doctor.role == "server" else " ".join(filter(None, [doctor.role, doctor.device])) \
        or "this machine"
    print(f"vuoro doctor: {who}, hall {hall.id}")
    print(report.text(), flush=True)
    print("vuoro doctor: " + ("problems found (see FAIL above)" if report.failed else "all checks passed"))
    return 1 if report.failed else 0


class Doctor:
    def __init__(self, args: argparse.Namespace, hall: HallConfig, ask_printer: AskPrinter | None = None) -> None:
        self.args, self.hall = args, hall
        self.ask_printer = ask_printer
        self.report = Report()
        self.creds: Credentials | None = None
        self.role: str | None = args.role
        self.device: str | None = args.id
        self.presence: dict[str, dict[str, Any]] = {}

    def check(self) -> Report:
        hall, r = self.hall, self.report
        r.add(OK, f"hall file {self.args.hall}: hall {hall.id} ({hall.name[hall.main_language]}), "
                  f"{len(hall.topics)} topics, {len(hall.counters)} counters")
        if not self._credentials():
            self._skip("broker, login and hall server", "the credentials file is not usable")
        else:
            address = self._locate()
            if address is None:
                self._skip("broker, login and hall server", "the hall server was not found")
            elif self._reachable(address) and (not address.tls or self._tls(address)):
                self._hall_server(address)
            else:
                self._skip("login and hall server", "the broker cannot be reached")
        if self.role == "kiosk":
            self._printer()
        if self.role in NEEDS_SCREEN:
            level, what, fix = check_display(os.environ)
            r.add(level, what, fix)
        return r

    def _skip(self, what: str, why: str) -> None:
        self.report.add(SKIP, f"{what}: not checked, {why}")

    # ------------------------------------------------------------ credentials

    def _credentials(self) -> bool:
        path = self.args.credentials
        if not path:
            self.report.add(WARN, "no credentials file: this device logs in anonymously, which only the demo's "
                            "broker allows", "give it --credentials FILE (made by `vuoro provision`), or set "
                            "$VUORO_CREDENTIALS")
            return True
        try:
            creds = load_credentials(path)
        except CredentialsError as exc:
            self.report.add(FAIL, f"credentials refused: {exc}",
                            "copy this device's file from the folder `vuoro provision` wrote (credentials/<hall>/)")
            return False
        if creds.hall != self.hall.id:
            self.report.add(FAIL, f"the credentials {path} are for hall {creds.hall}, but the hall file is "
                            f"hall {self.hall.id}", "use this hall's credentials, or the right --hall file")
            return False
        self.creds = creds
        if self.role is None:
            self.role = creds.role
        if self.device is None and creds.role != "server":
            self.device = creds.device
        if self.role == creds.role and self.device not in (None, creds.device):
            self.report.add(FAIL, f"the credentials are {creds.role} {creds.device}'s, not {self.role} "
                            f"{self.device}'s: the broker would refuse everything this device sends",
                            f"use credentials/{self.hall.id}/{self.role}-{self.device}.toml")
            return False
        mode = Path(path).stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            self.report.add(WARN, f"{path} is readable by other users: anyone on this machine can act as "
                            f"{creds.role} {creds.device}", f"chmod 600 {path}")
        if creds.ca_file and not Path(creds.ca_file).is_file():
            self.report.add(FAIL, f"the CA certificate {creds.ca_file} named in {path} is missing",
                            "copy ca.crt from the hall server's credentials folder beside the credentials file")
            return False
        self.report.add(OK, f"credentials {path}: account {creds.username}"
                        + (", TLS with the hall's CA" if creds.ca_file else ""))
        return True

    # ------------------------------------------------------------ where is the hall server

    def _locate(self) -> BrokerAddress | None:
        from broker import discovery
        from broker.locate import BrokerNotFound, resolve_broker

        # a device's own patience (discovery.DISCOVER_S): what doctor reports is what the device would see
        timeout = discovery.DISCOVER_S if self.args.discover_timeout is None else self.args.discover_timeout
        try:
            address, how = resolve_broker(self.args, self.hall, discover_s=timeout)
        except BrokerNotFound as exc:
            if exc.code != 3:
                self.report.add(FAIL, str(exc))
                return None
            try:
                heard = discovery.browse(min(timeout, 2.0))
            except (OSError, ValueError):
                heard = []
            mine = [a for a in heard if a.hall == self.hall.id]
            others = sorted({a.hall for a in heard if a.hall != self.hall.id})
            if mine and self.creds and self.creds.ca_file and not any(a.tls for a in mine):
                self.report.add(FAIL, f"hall {self.hall.id} is advertised only without TLS ({mine[0].describe()}), "
                                "and this device holds a CA, so it will not send its password in the clear",
                                "run the hall server with --advertise mqtts://:8883 (the TLS listener)")
            elif mine and all(a.protocol != p.VERSION for a in mine):
                self.report.add(FAIL, f"hall {self.hall.id} is advertised with protocol v{mine[0].protocol}; this "
                                f"device speaks v{p.VERSION}", "install the same Vuoro version on both")
            else:
                heard_text = f" (heard instead: hall {', '.join(others)}: is --hall the right file?)" if others else ""
                self.report.add(FAIL, f"hall not found: no hall server advertises hall {self.hall.id} on this "
                                f"network within {timeout:g} s{heard_text}",
                                "start `vuoro server` for this hall (it advertises itself), check that this device "
                                "is on the hall's network, or give --broker mqtt://HOST:PORT")
            return None
        self.report.add(OK, f"hall server's broker: {address.url} (from {how})")
        loopback = address.host in ("localhost", "::1") or address.host.startswith("127.")
        if self.creds and self.creds.ca_file and not address.tls and not loopback:
            self.report.add(WARN, f"the credentials hold the hall's CA, but {address.url} is plain MQTT: the "
                            "password would cross the network unencrypted",
                            "use the TLS listener: --broker mqtts://HOST:8883 (or broker = ... in the credentials)")
        if how.startswith("zeroconf"):
            try:
                same = [a for a in discovery.browse(0.5) if a.hall == self.hall.id]
            except (OSError, ValueError):
                same = []
            if len({(a.addresses, a.port) for a in same}) > 1:
                self.report.add(WARN, f"{len(same)} servers advertise hall {self.hall.id}: "
                                + "; ".join(a.describe() for a in same),
                                "run one hall server per hall; stop the others")
        return address

    # ------------------------------------------------------------ the broker

    def _reachable(self, address: BrokerAddress) -> bool:
        where = f"{address.host}:{address.port}"
        try:
            with socket.create_connection((address.host, address.port), timeout=CONNECT_S):
                pass
        except socket.gaierror:
            self.report.add(FAIL, f"broker unreachable: the name {address.host!r} does not resolve",
                            "check the host name, or use the server's IP address")
            return False
        except ConnectionRefusedError:
            self.report.add(FAIL, f"broker unreachable: nothing listens on {where}",
                            "start Mosquitto (systemctl status mosquitto) or `vuoro server`, and check the port")
            return False
        except OSError as exc:
            self.report.add(FAIL, f"broker unreachable: no answer from {where} ({exc.strerror or exc})",
                            "check the address, the network cable or Wi-Fi, and any firewall on the way")
            return False
        self.report.add(OK, f"broker {where} answers")
        return True

    def _tls(self, address: BrokerAddress) -> bool:
        context = ssl.create_default_context(cafile=address.ca_file)
        where = f"{address.host}:{address.port}"
        try:
            with socket.create_connection((address.host, address.port), timeout=CONNECT_S) as raw, \
                    context.wrap_socket(raw, server_hostname=address.host):
                pass
        except ssl.SSLCertVerificationError as exc:
            message = exc.verify_message or str(exc)
            if "mismatch" in message.lower() or "doesn't match" in str(exc).lower():
                self.report.add(FAIL, f"TLS: the broker's certificate does not name {address.host}",
                                f"on the server: vuoro provision --tls --server-name {address.host} (with the "
                                "names and addresses devices use), then reload Mosquitto")
            elif "expired" in message.lower():
                self.report.add(FAIL, "TLS: the broker's certificate has expired",
                                "on the server: vuoro provision --tls, then reload Mosquitto")
            else:
                ca = address.ca_file or "the system's CAs"
                self.report.add(FAIL, f"TLS: the broker's certificate is not signed by {ca} ({message})",
                                "copy the hall's current ca.crt from the server's credentials folder")
            return False
        except (ssl.SSLError, ConnectionResetError) as exc:
            self.report.add(FAIL, f"TLS: {where} does not speak TLS ({exc.__class__.__name__}: {exc})",
                            "use the TLS port (8883) with mqtts://, or mqtt:// for the plain port")
            return False
        except OSError as exc:
            self.report.add(FAIL, f"TLS: the connection to {where} failed ({exc})")
            return False
        self.report.add(OK, f"TLS: the broker's certificate is signed by the hall's CA and names {address.host}")
        return True

    def _hall_server(self, address: BrokerAddress) -> None:
        from broker.client import CommandError, HallClient, ServerUnavailable

        role = self.role if self.role in p.COMMAND_ROLES else "admin" if self.role in ("server", None) else None
        device = self.device if role == self.role and self.device else f"doctor-{p.new_command_id()[:8]}"
        client = HallClient(address, self.hall.id, role or "display", device, version=self.args.mqtt_version,
                            presence=False, watch=True)
        try:
            if not client.start(timeout=CONNECT_S):
                self._login_failed(address, client.link.refusal)
                return
            who = address.username or "an anonymous client"
            self.report.add(OK, f"login: the broker accepted {who}")
            if not client.wait_for(lambda s: p.SERVER_PART in s, timeout=ANSWER_S):
                self.report.add(FAIL, f"hall not found on this broker: it holds no status of hall {self.hall.id}'s "
                                "server, so no hall server for this hall has ever run against it (or this account "
                                "may not read it)", f"run `vuoro server --hall FILE` for hall {self.hall.id} against "
                                f"{address.url}; check that the hall file's id is {self.hall.id}")
                return
            status = client.snapshot()[p.SERVER_PART].get("status")
            if status != p.ONLINE:
                self.report.add(FAIL, f"the hall server of hall {self.hall.id} is {status} (its last word on the "
                                "broker)", "start it: systemctl start vuoro-server (journalctl -u vuoro-server says "
                                "why it stopped)")
                return
            self.presence = client.snapshot()
            if role is None:
                seen = client.wait_for(lambda s: p.HALL_PART in s, timeout=ANSWER_S)
                self.report.add(OK if seen else FAIL, "the hall server is online; this display receives the hall's "
                                "state" if seen else "the hall server is online, but this display receives no hall "
                                "state", "" if seen else "re-run vuoro provision and reload Mosquitto (the ACL)")
                return
            try:
                client.request(PROBE_OP, timeout=ANSWER_S)
                self.report.add(WARN, "the hall server accepted a command it should not know")
            except CommandError as exc:
                if isinstance(exc, ServerUnavailable):
                    self.report.add(FAIL, f"the hall server is online but did not answer {role} {device} within "
                                    f"{ANSWER_S:g} s: the broker may not let this account publish on "
                                    f"{client.topics.cmd(role, device)}",
                                    "re-run vuoro provision (it writes the ACL) and reload Mosquitto")
                else:
                    self.report.add(OK, f"the hall server is online and answers {role} {device}")
        finally:
            client.close()

    def _login_failed(self, address: BrokerAddress, refusal: str | None) -> None:
        if refusal is None:
            self.report.add(FAIL, f"the broker at {address.url} took the connection but never answered the login",
                            "is this an MQTT port? (TLS listeners need mqtts://)")
        elif address.username is None:
            self.report.add(FAIL, f"the broker refuses clients without an account ({refusal})",
                            "give this device its credentials file: --credentials FILE from `vuoro provision`")
        elif "authori" in refusal.lower() or "password" in refusal.lower():
            self.report.add(FAIL, f"wrong credentials: the broker refused the user name or password of "
                            f"{address.username} ({refusal})",
                            "copy this device's current credentials file from the server (after --rotate the old "
                            "one no longer works), and reload Mosquitto after every `vuoro provision`")
        else:
            self.report.add(FAIL, f"the broker refused the connection: {refusal}")

    # ------------------------------------------------------------ the kiosk's printer

    def _printer(self) -> None:
        kiosk = self.hall.kiosks.get(self.device or "")
        uri = self.args.printer or (kiosk.printer if kiosk else None)
        if uri is None:
            self.report.add(WARN, f"kiosk {self.device} has no printer in the hall file",
                            "add [[kiosks]] id = ..., printer = \"usb://VID:PID\" (or --printer URI)")
            return
        live = self.presence.get(p.device_part("kiosk", self.device or ""), {})
        if live.get("status") == p.ONLINE and isinstance(live.get("printer"), Mapping):
            state = str(live["printer"].get("state"))
            message = str(live["printer"].get("message", ""))
            self.report.add(*printer_finding(uri, state, message, running=True))
            return
        if self.ask_printer is None:
            self.report.add(WARN, f"printer {uri}: not asked", "run `vuoro doctor`, which knows the kiosk's printers")
            return
        try:
            state, message = self.ask_printer(uri)
        except ModuleNotFoundError as exc:  # a kiosk installed without its printer extra: the other checks stand
            from broker.extras import missing_extra

            if missing_extra(exc) is None:
                raise
            self.report.add(FAIL, f"the printer's libraries are not installed here ({exc.name} is missing)",
                            "pip install 'vuoro[kiosk]' into Vuoro's virtualenv")
            return
        except ValueError as exc:
            self.report.add(FAIL, f"printer: {exc}", "fix the printer URI in the hall file ([[kiosks]] printer)")
            return
        self.report.add(*printer_finding(uri, state, message, running=False))


def printer_finding(uri: str, state: str, message: str, *, running: bool) -> tuple[str, str, str]:
    """A printer state (kiosk.printer_status.PrinterState's values) in plain words, with what to do."""
    who = "the running kiosk reports" if running else "asked now:"
    scheme = uri.split(":", 1)[0]
    if state == "online":
        return OK, f"printer {uri}: {who} {message}", ""
    if state == "paper_near_end":
        return WARN, f"printer {uri}: {who} the paper is running out", "put in a new roll soon"
    if state == "paper_out":
        return FAIL, f"printer {uri}: out of paper ({who} {message})", \
            "put in a new paper roll (the kiosk shows numbers on screen meanwhile)"
    if state == "offline":
        fix = {"usb": "check the cable and power; `lsusb` must list the printer, and this user must be allowed to "
                      "use it (a udev rule, see the README)",
               "serial": "check the port name (ls /dev/ttyUSB* /dev/ttyACM*) and that this user is in group dialout",
               "tcp": "check that the printer is on and has this address (print its self-test page)",
               "file": "check that the device node exists and this user may write it"}.get(scheme, "")
        return FAIL, f"printer not found: {uri}: {message}", fix
    return WARN, f"printer {uri}: {who} no status ({message})", \
        "this printer cannot report paper; print a test ticket: vuoro kiosk --test-print"


def check_display(env: Mapping[str, str], *, x11_dir: str = X11_DIR, dri_glob: str = DRI_GLOB) -> tuple[str, str, str]:
    """Is there a screen for a Kivy window: an X server, a Wayland compositor, or KMS/DRM for SDL?"""
    display = env.get("DISPLAY", "")
    if display:
        host, _, rest = display.rpartition(":")
        number = rest.split(".")[0]
        try:
            if host in ("", "unix"):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(CONNECT_S)
                    sock.connect(os.path.join(x11_dir, f"X{number}"))
            else:
                with socket.create_connection((host, 6000 + int(number)), timeout=CONNECT_S):
                    pass
        except (OSError, ValueError) as exc:
            return FAIL, f"no display: DISPLAY is {display!r} but no X server answers ({exc})", \
                "start the desktop session (see assets/pi/), or unset DISPLAY to draw with KMS/DRM"
        return OK, f"display: X server {display}", ""
    wayland = env.get("WAYLAND_DISPLAY", "")
    if wayland:
        path = wayland if os.path.isabs(wayland) else os.path.join(env.get("XDG_RUNTIME_DIR", ""), wayland)
        if os.path.exists(path):
            return OK, f"display: Wayland {wayland}", ""
        return FAIL, f"no display: WAYLAND_DISPLAY is {wayland!r} but {path} does not exist", \
            "start the desktop session (see assets/pi/)"
    cards = sorted(glob.glob(dri_glob))
    usable = [c for c in cards if os.access(c, os.R_OK | os.W_OK)]
    if usable:
        return OK, f"display: no desktop, but KMS/DRM on {usable[0]} (SDL_VIDEODRIVER=kmsdrm)", ""
    if cards:
        return FAIL, f"no display: {cards[0]} exists but this user may not use it", \
            "add the user to groups video and render (sudo usermod -aG video,render USER), then log in again"
    return FAIL, "no display: no X server (DISPLAY), no Wayland (WAYLAND_DISPLAY) and no graphics device (/dev/dri)", \
        "run it on the machine with the screen, in its desktop session (see assets/pi/), or attach a screen"
