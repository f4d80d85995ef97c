"""The live city overview for staff (`vuoro overview`, city/overview_cli.py): its own small aiohttp app beside
the central broker.

Every hall's queues (waiting, the wait a new ticket is told, the oldest ticket), counters, today's figures and
devices (online, offline since, a kiosk's paper low or out), updated live (server-sent events) from the central
broker's retained messages, read with the overview's read-only account. Staff log in with HTTP Basic auth
against a password file in Mosquitto's format (`mosquitto_passwd -c staff.passwd NAME`); put it behind the
city's TLS proxy, or keep the default 127.0.0.1. /metrics gives the same figures to Prometheus (city/metrics.py).
Imports aiohttp (the `city` extra), broker's vocabulary and city/live.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from broker import protocol as p
from broker.mqtt import BrokerAddress, MqttLink
from city.live import CityState
from city.overview_texts import page_language, render_page
from ops.provision import verify_password

log = logging.getLogger(__name__)
STREAMS_MAX = 200  # open live pages at once
KEEPALIVE_S = 15.0
FAILS_MAX, FAILS_WINDOW_S = 10, 60.0  # wrong passwords from one address before it waits


class Feed:
    """The central broker's retained state of every hall, kept in a CityState; wakes the live pages."""

    def __init__(self, address: BrokerAddress, *, version: str = "3.1.1") -> None:
        self.state = CityState()
        self.lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        subscriptions = list(p.CITY_WATCH)
        self.link = MqttLink(address, client_id=f"vuoro-overview-{secrets.token_hex(3)}", version=version,
                             subscriptions=subscriptions,
                             on_message=self._arrived)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._changed = loop, asyncio.Event()

    def _arrived(self, topic: str, payload: bytes, retained: bool) -> None:
        with self.lock:
            changed = self.state.apply(topic, payload, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if changed is not None and self._loop is not None and self._changed is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.state.snapshot()

    async def changed(self, timeout: float) -> None:
        assert self._changed is not None
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return
        self._changed.clear()


class Staff:
    """Who may see the overview: a Mosquitto-format password file (name:$7$...), read again when it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._mtime = -1.0
        self._hashes: dict[str, str] = {}
        self._good: set[bytes] = set()  # digests of name:password pairs already checked (PBKDF2 is slow)
        self._fails: dict[str, list[float]] = {}
        self._load()

    def _load(self) -> None:
        mtime = self.path.stat().st_mtime
        if mtime != self._mtime:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            self._hashes = dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))
            self._good.clear()
            self._mtime = mtime

    def allowed(self, header: str | None, remote: str) -> bool | None:
        """True: let in; False: ask for a login; None: too many wrong ones from this address, wait."""
        now = time.monotonic()
        fails = [t for t in self._fails.get(remote, []) if now - t < FAILS_WINDOW_S]
        self._fails[remote] = fails
        if len(fails) >= FAILS_MAX:
            return None
        name, password = _basic(header)
        if name is None or password is None:
            return False
        self._load()
        digest = hashlib.sha256(f"{name}\0{password}".encode()).digest()
        if digest in self._good:
            return True
        hashed = self._hashes.get(name)
        if hashed is not None and verify_password(password, hashed):
            self._good.add(digest)
            return True
        fails.append(now)
        if len(self._fails) > 10_000:
            self._fails.pop(next(iter(self._fails)))
        return False


def _basic(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.startswith("Basic ") or len(header) > 1024:
        return None, None
    try:
        name, sep, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return (name, password) if sep else (None, None)


def make_app(feed: Feed, staff: Staff, default_lang: str = "en") -> web.Application:
    @web.middleware
    async def staff_only(request: web.Request, handler: Any) -> web.StreamResponse:
        verdict = staff.allowed(request.headers.get("Authorization"), request.remote or "")
        if verdict is None:
            return web.Response(status=429, text="too many wrong passwords; try again in a minute")
        if not verdict:
            return web.Response(status=401, text="staff only",
                                headers={"WWW-Authenticate": 'Basic realm="Vuoro city", charset="UTF-8"'})
        return await handler(request)

    app = web.Application(middlewares=[staff_only], client_max_size=4096)
    app["streams"] = 0

    async def page(request: web.Request) -> web.StreamResponse:
        lang = page_language(request.query.get("lang"), request.headers.get("Accept-Language"), default_lang)
        return web.Response(text=render_page(lang), content_type="text/html",
                            headers={"Cache-Control": "no-store", "Content-Language": lang})

    async def state(_: web.Request) -> web.StreamResponse:
        return web.json_response(feed.snapshot())

    async def events(request: web.Request) -> web.StreamResponse:
        return await _stream(request, feed)

    async def metrics(_: web.Request) -> web.StreamResponse:
        return await _metrics(feed)

    for path, handler in (("/", page), ("/state.json", state), ("/events", events), ("/metrics", metrics)):
        app.router.add_get(path, handler)
    return app


async def _metrics(feed: Feed) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from city.metrics import registry_for

    body = generate_latest(registry_for(feed.snapshot))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _stream(request: web.Request, feed: Feed) -> web.StreamResponse:
    """Server-sent events: the whole picture whenever it changed (a city is a few kB), a comment otherwise."""
    app = request.app
    if app["streams"] >= STREAMS_MAX:
        return web.Response(status=503, text="too many open overview pages")
    app["streams"] += 1
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    try:
        await response.prepare(request)
        sent = -1
        while True:
            snapshot = feed.snapshot()
            if snapshot["version"] != sent:
                sent = snapshot["version"]
                await response.write(f"data: {json.dumps(snapshot, separators=(',', ':'))}\n\n".encode())
            else:
                await response.write(b": still here\n\n")
            await feed.changed(KEEPALIVE_S)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        app["streams"] -= 1
    return response


def serve(central: BrokerAddress, staff_file: Path, host: str, port: int, *, version: str = "3.1.1",
          lang: str = "en") -> int:
    """Run the overview until SIGINT/SIGTERM."""
    staff = Staff(staff_file)
    feed = Feed(central, version=version)

    async def started(app: web.Application) -> None:
        feed.bind(asyncio.get_running_loop())
        feed.link.start(timeout=0)

    async def stopped(app: web.Application) -> None:
        feed.link.stop()

    app = make_app(feed, staff, lang)
    app.on_startup.append(started)
    app.on_cleanup.append(stopped)
    print(f"vuoro overview: {central.url} -> http://{host}:{port}/ ready", flush=True)
    web.run_app(app, host=host, port=port, print=None)
    return 0
