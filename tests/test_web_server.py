"""`vuoro web` facing the internet: every bad request gets its clear answer, and the web server and the hall run on.

Real processes (hall server, Mosquitto, `vuoro web`) and plain HTTP from the test, as a phone or an attacker
would send it. The web server trusts 127.0.0.1 as its reverse proxy here, so the test can speak for many
client addresses through X-Forwarded-For.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from broker import protocol as p
from tests.support.brokers import ServerProcess
from tests.web_support import EventStream, WebProcess, request, vuoro

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

PROXY = ["--trusted-proxy", "127.0.0.1"]


@contextmanager
def web_over_a_hall(broker: Any, folder: Path,
                    extra: list[str] | None = None) -> Iterator[tuple[WebProcess, ServerProcess]]:
    """A hall server (its log: folder/hall.sqlite) and `vuoro web` on `broker`; the web stops first."""
    server = ServerProcess(folder / "hall.sqlite", broker.address).start()
    web = WebProcess(broker.address, folder, extra=extra)
    try:
        web.start()
        yield web, server
    finally:
        web.stop()
        server.stop()


@pytest.fixture
def hall_running(mosquitto: Any, tmp_path: Path) -> Iterator[tuple[Any, WebProcess, ServerProcess]]:
    with web_over_a_hall(mosquitto, tmp_path, PROXY) as (web, server):
        yield mosquitto.address, web, server


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def _page_shows(web: WebProcess, token: str, text: str, deadline_s: float = 20.0) -> str:
    """The page once it shows `text` (the web learns of events a moment after the terminal's reply)."""
    end = time.monotonic() + deadline_s
    body = ""
    while time.monotonic() < end:
        status, _, body = web.get(f"/t/{token}")
        if status == 200 and text in body:
            return body
        time.sleep(0.05)
    raise AssertionError(f"the page never showed {text!r}: {body[-500:]}")


def test_a_page_is_small_strict_and_cookie_free(hall_running):
    broker, web, _ = hall_running
    ticket = vuoro(broker, "ticket", "A", "--lang", "fi")["result"]["ticket"]
    assert len(ticket["token"]) >= 22  # 128 bits, URL-safe
    status, headers, body = web.get(f"/t/{ticket['token']}")
    assert status == 200 and 'lang="fi"' in body and ticket["number"] in body
    assert "Set-Cookie" not in headers
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert "<script>" not in body and "http://" not in body.replace(web.url, "") and "https://" not in body
    total = len(body.encode())
    for name in ("web.css", "chime.js", "ticket.js"):
        code, _, asset = web.get(f"/static/{name}")
        assert code == 200
        total += len(asset.encode())
    assert total < 30 * 1024, f"a ticket page weighs {total} bytes"


@pytest.mark.parametrize("token", ["x" * 22, "AAAAAAAAAAAAAAAAAAAAAA", "..%2F..%2Fetc%2Fpasswd", "a" * 300, "short"])
def test_a_token_that_opens_nothing_is_a_plain_404(hall_running, token):
    broker, web, _ = hall_running
    real = vuoro(broker, "ticket", "A")["result"]["ticket"]
    for path in (f"/t/{token}", f"/t/{token}/events"):
        status, headers, body = web.get(path)
        assert status == 404, path
        assert real["number"] not in body and "kvarnby" not in body.lower() and "token" not in body.lower()
        assert headers["Content-Security-Policy"]
    status, _, body = web.post(f"/t/{token}/feedback", {"score": "5"})
    assert status == 404


def test_feedback_once_after_the_visit_with_clear_answers_for_everything_else(hall_running):
    broker, web, _ = hall_running
    ticket = vuoro(broker, "ticket", "A", "--lang", "en")["result"]["ticket"]
    _page_shows(web, ticket["token"], "Please wait")
    status, _, body = web.post(f"/t/{ticket['token']}/feedback", {"score": "4", "lang": "en"})
    assert status == 409  # the visit is not done: nothing to rate yet
    vuoro(broker, "call", "1", "open")
    vuoro(broker, "call", "1", "next")
    vuoro(broker, "call", "1", "done")
    _page_shows(web, ticket["token"], "How did it go?")

    status, _, body = web.post(f"/t/{ticket['token']}/feedback", {"score": "9", "lang": "en"})
    assert status == 400 and "Please choose one of the faces." in body
    status, _, body = web.post(f"/t/{ticket['token']}/feedback",
                               {"score": "3", "comment": "x" * (p.COMMENT_MAX + 1), "lang": "en"})
    assert status == 400 and "The comment is too long: at most 500 characters." in body
    status, _, body = web.post(f"/t/{ticket['token']}/feedback", {"score": "3", "comment": "y" * 20000, "lang": "en"})
    assert status == 413 and "too long" in body  # past the request body limit: refused before it is read

    status, headers, _ = web.post(f"/t/{ticket['token']}/feedback", {"score": "5", "comment": "Kiitos!", "lang": "en"})
    assert status == 303 and headers["Location"].startswith(f"/t/{ticket['token']}?lang=en&fb=ok")
    _page_shows(web, ticket["token"], "Thank you for your feedback!")
    status, _, body = web.post(f"/t/{ticket['token']}/feedback", {"score": "1", "lang": "en"})
    assert status == 409 and "This visit has been rated. Thank you!" in body
    code, _, health = web.get("/healthz")
    assert code == 200 and json.loads(health)["ok"] is True


def test_a_flood_is_answered_429_per_client_and_everyone_else_is_served(hall_running):
    broker, web, _ = hall_running
    ticket = vuoro(broker, "ticket", "A")["result"]["ticket"]
    answers = [web.get(f"/t/{'z' * 22}", headers=_from("203.0.113.9"))[0] for _ in range(120)]
    assert answers.count(404) >= 20 and answers[-1] == 429
    status, headers, body = web.get(f"/t/{ticket['token']}", headers=_from("203.0.113.9"))
    assert status == 429 and int(headers["Retry-After"]) >= 1 and "<h1>429</h1>" in body
    assert web.get(f"/t/{ticket['token']}", headers=_from("198.51.100.7"))[0] == 200  # another visitor
    # the limit is on the client, not on its claim: an untrusted hop cannot pose as many
    spoofed = [request(f"{web.url}/t/{'q' * 22}", headers=_from(f"192.0.2.{i}, 203.0.113.9"))[0] for i in range(60)]
    assert spoofed[-1] == 429
    feedback = [web.post(f"/t/{ticket['token']}/feedback", {"score": "2"}, headers=_from("198.51.100.8"))[0]
                for _ in range(14)]
    assert feedback[-1] == 429 and 409 in feedback
    assert web.alive and web.get("/healthz")[0] == 200
    assert vuoro(broker, "ticket", "A")["ok"]  # and the hall runs on


def test_a_call_reaches_the_pages_stream_live_and_every_page_keeps_its_place(hall_running):
    broker, web, _ = hall_running
    first = vuoro(broker, "ticket", "A", "--lang", "sv")["result"]["ticket"]
    second = vuoro(broker, "ticket", "A", "--lang", "en")["result"]["ticket"]
    mine = EventStream(f"{web.url}/t/{second['token']}/events")
    other = EventStream(f"{web.url}/t/{first['token']}/events?lang=fi")
    try:
        assert mine.status == 200 and mine.headers["Content-Type"].startswith("text/event-stream")
        assert "Set-Cookie" not in mine.headers and mine.headers["Content-Security-Policy"]
        event, state = mine.next()
        assert (event, state["status"], state["number"], state["ahead"]) == ("state", "waiting", second["number"],
                                                                           "1 person ahead of you")
        vuoro(broker, "call", "1", "open")
        vuoro(broker, "call", "1", "next")
        _, state = mine.until(lambda e, d: d["ahead"] != "1 person ahead of you")
        assert state["status"] == "waiting" and state["ahead"] == "You are next in line"
        _, called = other.until(lambda e, d: d["status"] == "called")
        assert called["title"].startswith("On vuorosi")  # in the language the page asked for
        vuoro(broker, "call", "1", "done")
        vuoro(broker, "call", "1", "next")
        _, called = mine.until(lambda e, d: d["status"] == "called")
        assert called["alert"] is True and called["title"] == "It's your turn: Counter 1" and called["way"]
    finally:
        mine.close()
        other.close()


def test_the_web_hall_display_shows_each_call_live_and_unknown_displays_are_404(hall_running):
    broker, web, _ = hall_running
    status, headers, body = web.get("/display/entrance")
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    assert 'data-events="/display/entrance/events"' in body
    assert web.get("/display/nowhere")[0] == 404 and web.get("/display/nowhere/events")[0] == 404
    board = EventStream(f"{web.url}/display/entrance/events")
    try:
        event, first = board.next()
        assert event == "board" and first["hero"] is None
        ticket = vuoro(broker, "ticket", "A")["result"]["ticket"]
        vuoro(broker, "call", "1", "open")
        vuoro(broker, "call", "1", "next")
        _, shown = board.until(lambda e, d: d["hero"] is not None)
        assert shown["hero"]["number"] == ticket["number"] and shown["hero"]["direction"]  # the way from here
        assert shown["mode"] == "calls" and shown["notice"] is None and shown["online"] is True
    finally:
        board.close()
    status, _, body = web.get("/display/entrance")
    assert ticket["number"] in body  # and without scripts, on its own reload
