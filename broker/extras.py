"""Which pip extra brings which library: a device installs only its role's (pyproject.toml), so a command that
needs another role's library says which extra to install instead of ending on an ImportError.

The libraries are imported lazily, inside the code that uses them; `vuoro` catches the ModuleNotFoundError at
the top (vuoro/cli.py) and turns it into one line with the command to run.
"""

from __future__ import annotations

import argparse
import importlib.util

# top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF: dict[str, str] = {
    "kivy": "ui",
    "bidi": "ui",
    "arabic_reshaper": "ui",
    "pyphen": "ui",
    "escpos": "printer",
    "PIL": "printer",
    "qrcode": "printer",
    "serial": "printer",
    "usb": "usb",
    "cryptography": "provision",
    "matplotlib": "report",
    "amqtt": "server",
    "aiohttp": "web",
    "jinja2": "web",
    "psycopg": "city",
    "prometheus_client": "city",
}


# The commands that draw a screen: Kivy is looked up (not imported) before they look for their hall server, so
# that a machine installed without the ui extra hears so at once, not after the search on the LAN.
SCREEN_COMMANDS = frozenset({"kiosk", "counter", "display"})


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The message for a library of an extra that is not installed; None for any other missing module (a bug
    or a broken install, which must show as it is)."""
    return _message((exc.name or "").split(".")[0])


def missing_for(args: argparse.Namespace) -> str | None:
    """The message when the command about to run draws a screen and Kivy is not installed, else None
    (`vuoro kiosk --test-print` needs the printer only: its own import says so)."""
    if args.command not in SCREEN_COMMANDS or getattr(args, "test_print", False):
        return None
    return _message("kivy") if importlib.util.find_spec("kivy") is None else None


def _message(top: str) -> str | None:
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return (f"this needs the {extra!r} extra, which is not installed here ({top} is missing): "
            f"pip install 'vuoro[{extra}]' into Vuoro's virtualenv (e.g. /opt/vuoro/.venv/bin/pip install "
            f"'vuoro[{extra}]')")
