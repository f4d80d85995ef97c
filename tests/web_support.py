"""What the web tests share: `vuoro web` as a real process, the terminal tools, and a real Chromium.

`vuoro web` is started through the CLI module's own `main`, so the test runs the same code path as the
installed command (a launcher registers the app command if the CLI does not list it yet).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from broker.mqtt import BrokerAddress
from tests.support.brokers import ROOT, free_port

LAUNCH = ("import sys\n"
          "try:\n    from vuoro import cli\nexcept ImportError:\n    from broker import cli\n"
          "cli.APP_COMMANDS.setdefault('web', ('web.cli', 'the visitors web server'))\n"
          "sys.exit(cli.main(['web', *sys.argv[1:]]))")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
START_S = 30.0  # a web process on a loaded two-core machine: imports, connect, read the log


class WebProcess:
    """`vuoro web` on a free port of 127.0.0.1, as IT runs it behind a proxy."""

    def __init__(self, broker: BrokerAddress, log_dir: Path, *, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"web-{self.port}.log"
        self.args = [sys.executable, "-c", LAUNCH, "--broker", broker.url, "--listen", f"127.0.0.1:{self.port}",
                     "--log-level", "INFO", *(extra or [])]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> WebProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER")}
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=open(self.log, "a"),  # noqa: SIM115
                                     text=True, env={**env, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("vuoro web:"), f"vuoro web did not start: {line!r} {self.log.read_text()[-2000:]}"
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.get("/healthz")[0] == 200:
                return self
            time.sleep(0.1)
        raise AssertionError(f"vuoro web never synced with the hall: {self.log.read_text()[-2000:]}")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        return request(self.url + path, headers=headers)

    def post(self, path: str, form: dict[str, str], headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], str]:
        body = urllib.parse.urlencode(form).encode("utf-8")
        return request(self.url + path, data=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                             **(headers or {})})

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of one HTTP request; redirects are returned, not followed."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=15) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode("utf-8", "replace")


class EventStream:
    """One Server-Sent Events stream, read as a browser's EventSource reads it: (event, data) messages."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        import http.client

        parts = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        self.connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                                headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())

    def next(self) -> tuple[str, Any]:
        """The next message (keep-alive comments skipped); blocks up to the socket's timeout."""
        event, data = "message", ""
        while True:
            line = self.response.readline().decode("utf-8")
            if not line:
                raise AssertionError("the event stream ended")
            line = line.rstrip("\r\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                data += line[len("data: "):]
            elif not line and data:
                return event, json.loads(data)

    def until(self, wanted: Any, deadline_s: float = 20.0) -> tuple[str, Any]:
        """The first message for which `wanted(event, data)` is true."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            event, data = self.next()
            if wanted(event, data):
                return event, data
        raise AssertionError("the awaited message never came")

    def close(self) -> None:
        self.connection.close()


def vuoro(broker: BrokerAddress, *args: str) -> dict[str, Any]:
    """A terminal command with --json (`vuoro ticket`, `vuoro call`): its parsed answer."""
    env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER")}
    done = subprocess.run([sys.executable, "-m", "vuoro.cli", *args, "--json", "--broker", broker.url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert done.stdout, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def screenshot_dir(fallback: Path) -> Path:
    """$VUORO_SCREENSHOTS/web when `bin/screenshots` asks for the docs' pictures, else the test's own folder."""
    base = os.environ.get("VUORO_SCREENSHOTS")
    folder = Path(base) / "web" if base else fallback
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium(*, javascript: bool = True) -> Any:
    """A headless Chromium with a fresh profile, driven by Debian's chromedriver (no download of any driver).
    Its console is kept (`console_errors`); `javascript=False` is a visitor whose browser runs no scripts."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert binary and driver_path, "chromium and chromium-driver are not installed: run bin/test, which installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="vuoro-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=412,915")  # a phone
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver._vuoro_profile = profile  # removed by close_chromium
    return driver


def close_chromium(driver: Any) -> None:
    profile = getattr(driver, "_vuoro_profile", None)
    driver.quit()
    if profile:
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    """What the page's console said at level SEVERE since the last look: a CSP refusal, a script error."""
    return [str(entry.get("message")) for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
