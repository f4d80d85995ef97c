"""A private Mosquitto that the hall server starts, watches and stops itself: the default broker.

Mosquitto routes by the book (amqtt 0.12 did not: tests/test_broker_routing.py), carries several
thousand durable issues a second on a small machine, and persists QoS 1 sessions. It runs as a child
process on a config written into a private runtime folder (removed once it listens), dies with the
thread that started it (broker/children.py: start it from the main thread), and its log lines go
to Python logging as `broker.mosquitto`.

Anonymous clients are allowed: this broker is the no-accounts trial and demo mode, reachable only
where --listen binds it (127.0.0.1 unless told otherwise). A hall with accounts, ACL and TLS runs
its own Mosquitto from assets/mosquitto and starts the server with --broker.
"""

from __future__ import annotations

import collections
import contextlib
import getpass
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from broker import children
from broker.children import spawn
from broker.embedded_common import EmbeddedBroker, EmbeddedBrokerError, port_is_free
from broker.mqtt import BrokerAddress

log = logging.getLogger(__name__)
broker_log = logging.getLogger("broker.mosquitto")

SEARCH_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
STOP_S = 5.0  # SIGTERM, then this long to write its persistence file and go, then SIGKILL
LOG_LINES = 200  # the last lines kept for error messages

# As the production config (assets/mosquitto/vuoro.conf) for queues and sessions, so that a trial behaves
# like the hall it becomes: a device away for a while gets what it missed, a burst of commands for a busy
# server waits in its queue instead of being dropped at Mosquitto's default of 1,000.
CONFIG = """\
# Written by Vuoro for its private broker at each start; edits are lost.
per_listener_settings false
listener {port} {host}
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 100000
max_inflight_messages 1000
persistent_client_expiration 2d
{persistence}
user {user}
log_dest stderr
log_type error
log_type warning
log_timestamp false
connection_messages false
"""


def mosquitto_binary() -> str | None:
    """The mosquitto binary: on PATH, else where Debian (sbin is not on a user's PATH) and others put it."""
    return shutil.which("mosquitto") or next((p for p in SEARCH_PATHS if os.access(p, os.X_OK)), None)


def mosquitto_version(binary: str) -> str:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5).stdout
        found = re.search(r"version (\S+)", out)
        if found:
            return found.group(1)
    return "unknown"


def render_config(host: str, port: int, persistence: Path | None) -> str:
    if persistence is None:
        stored = "persistence false"
    else:  # a folder with a trailing slash, and a file name: Mosquitto's two settings
        stored = (f"persistence true\npersistence_location {persistence.parent.resolve()}/\n"
                  f"persistence_file {persistence.name}\nautosave_interval 30")
    # `user` only matters when run as root (Mosquitto would switch to the `mosquitto` user, who cannot
    # write our folders): stay who we are
    return CONFIG.format(host=host, port=port, persistence=stored, user=getpass.getuser())


class PrivateMosquitto(EmbeddedBroker):
    """Mosquitto as a child process on host:port; `persistence` is its database file (sessions, retained
    messages and queued QoS 1 messages survive a restart), or None for none."""

    kind = "mosquitto"

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, binary: str | None = None,
                 persistence: Path | None = None) -> None:
        super().__init__(host, port)
        found = binary or mosquitto_binary()
        if found is None:
            raise EmbeddedBrokerError("no mosquitto binary found (PATH, /usr/sbin/mosquitto): "
                                      "install the mosquitto package (apt-get install mosquitto)")
        self.binary = found
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.folder: Path | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def log_text(self) -> str:
        """Mosquitto's last log lines (errors and warnings)."""
        return "\n".join(self._lines)

    def start(self, timeout: float = 10.0) -> BrokerAddress:
        where = f"{self.host}:{self.port}"
        if not port_is_free(self.host, self.port):
            raise EmbeddedBrokerError(f"port {self.port} on {self.host} is taken (another broker or hall server?): "
                                      "choose another with --listen HOST:PORT, or use that broker with --broker URL")
        if self.persistence is not None:
            self.persistence.parent.mkdir(parents=True, exist_ok=True)
        base = os.environ.get("XDG_RUNTIME_DIR")
        self.folder = Path(tempfile.mkdtemp(prefix="vuoro-mosquitto-", dir=base if base and os.path.isdir(base)
                                            else None))
        conf = self.folder / "mosquitto.conf"
        conf_text = render_config(self.host, self.port, self.persistence)
        conf.write_text(conf_text, encoding="utf-8")
        try:
            # its own session: a Ctrl-C at the terminal reaches the server, which says goodbye on this broker
            # before it stops it; PR_SET_PDEATHSIG still takes it down with us
            # Mosquitto tells $NOTIFY_SOCKET "READY=1" itself: only the hall server may say when the hall is ready
            env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
            self.proc = spawn([self.binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True, env=env)
        except (OSError, subprocess.SubprocessError) as exc:
            self._cleanup()
            raise EmbeddedBrokerError(f"cannot run {self.binary}: {exc}") from exc
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read_log, args=(self.proc.stdout,), daemon=True,
                                        name="vuoro-mosquitto-log")
        self._reader.start()
        try:
            self._wait_listening(timeout)
        except EmbeddedBrokerError:
            self.stop()
            raise
        # read once and not needed again (we never ask it to reload): gone now, nothing is left behind
        # even when we are killed
        self._cleanup()
        log.info("private Mosquitto %s (pid %d) listening on %s%s", mosquitto_version(self.binary), self.proc.pid,
                 where, f", sessions kept in {self.persistence}" if self.persistence else "")
        log.debug("its config:\n%s", conf_text)
        return self.address

    def _wait_listening(self, timeout: float) -> None:
        assert self.proc is not None
        address, deadline = self.address, time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                if self._reader is not None:
                    self._reader.join(2)  # its last words are the reason
                said = self.log_text.strip()
                taken = " (port taken)" if "in use" in said else ""
                raise EmbeddedBrokerError(f"mosquitto could not listen on {self.host}:{self.port}{taken}: it exited "
                                          f"with {code}: {said[-1500:] or 'no message'}")
            try:
                with socket.create_connection((address.host, address.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise EmbeddedBrokerError(f"mosquitto did not accept connections on {self.host}:{self.port} within "
                                          f"{timeout:g}s: {self.log_text[-1500:] or 'no message'}")
            time.sleep(0.02)

    def _read_log(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._lines.append(line)
                # as root we stay root on purpose (see render_config): its advice against that is no news
                broker_log.log(logging.INFO if "run as root" in line else logging.WARNING, "%s", line)
        stream.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if children.stop(proc, STOP_S) == -signal.SIGKILL:
            log.warning("mosquitto (pid %d) ignored SIGTERM for %gs and was killed", proc.pid if proc else 0, STOP_S)
        if self._reader is not None:
            self._reader.join(2)
            self._reader = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
