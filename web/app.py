"""The visitor web server (aiohttp): a ticket's page, its live stream (Server-Sent Events) and its feedback form.

Every page is small and self-contained: one HTML document, one stylesheet and one script from this server,
no cookies, no third-party requests, and strict headers (a CSP that allows only this origin's files, no
framing, no referrer). Without JavaScript the page still shows the state and can be reloaded; the
feedback form is a plain POST. A token that opens no page today is a plain 404 that tells nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from broker import protocol as p
from broker.config import HallConfig
from web import texts
from web.book import status_of
from web.display import KEY_PREFIX, WebDisplays
from web.hub import HallUnavailable, Hub, Listener, Refused
from web.limits import FEEDBACK, LOOKUP, Limiter, Network, client_address

log = logging.getLogger(__name__)

PACKAGE = resources.files("web")
STATIC = {"web.css": "text/css", "ticket.js": "text/javascript", "display.js": "text/javascript",
          "chime.js": "text/javascript"}
HEARTBEAT_S = 20.0  # an SSE comment this often keeps proxies and phones from closing an idle stream
DISPLAY_TICK_S = 5.0  # a TV's board is looked at again this often: its clock, languages and highlights turn
STREAMS_MAX = 20000  # open event streams, all pages together
STREAMS_PER_CLIENT = 50  # a hall's guest Wi-Fi puts many phones behind one address: generous, but bounded
BODY_MAX = 8 * 1024  # a feedback form is a face and a comment of at most 500 characters
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Server": "vuoro",
}
NOT_FOUND = b"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>404</title></head>" \
            b"<body><h1>404 Not Found</h1></body></html>"


@dataclass
class Settings:
    trusted_proxies: tuple[Network, ...] = ()
    streams_max: int = STREAMS_MAX
    streams_per_client: int = STREAMS_PER_CLIENT


class WebApp:
    def __init__(self, hall: HallConfig, hub: Hub, settings: Settings | None = None) -> None:
        self.hall = hall
        self.hub = hub
        self.settings = settings or Settings()
        self.limiter = Limiter({"lookup": LOOKUP, "feedback": FEEDBACK})
        self.streams_by_client: dict[str, int] = {}
        self.jinja = Environment(loader=FileSystemLoader(str(PACKAGE / "templates")),
                                 autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
        self.static = {name: (PACKAGE / "static" / name).read_bytes() for name in STATIC}
        # per token: the view last rendered, and its message per language; a call re-renders only what changed
        self._rendered: dict[str, tuple[Any, dict[str, bytes]]] = {}
        self.displays = WebDisplays(hall, hub)
        hub.observers.append(self.displays.feed)
        hub.render = self._render_listener
        hub.urgent = self._changed_state

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._headers], client_max_size=BODY_MAX)
        app.router.add_get("/t/{token}", self.ticket_page)
        app.router.add_get("/t/{token}/events", self.ticket_events)
        app.router.add_post("/t/{token}/feedback", self.feedback)
        app.router.add_get("/display/{id}", self.display_page)
        app.router.add_get("/display/{id}/events", self.display_events)
        app.router.add_get("/static/{name}", self.static_file)
        app.router.add_get("/healthz", self.health)
        return app

    # ------------------------------------------------------------ plumbing

    @web.middleware
    async def _headers(self, request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
            if exc.status == 404:
                response = web.Response(status=404, body=NOT_FOUND, content_type="text/html")
        if not response.prepared:
            response.headers.update(HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def client(self, request: web.Request) -> str:
        return client_address(request.remote, request.headers.get("X-Forwarded-For"), self.settings.trusted_proxies)

    def limited(self, request: web.Request, kind: str) -> web.Response | None:
        wait = self.limiter.allow(self.client(request), kind, time.monotonic())
        if not wait:
            return None
        lang = self._lang(request, None)
        body = f"<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>429</title></head>" \
               f"<body><h1>429</h1><p>{texts.translator(lang)('web.busy')}</p></body></html>"
        return web.Response(status=429, text=body, content_type="text/html", headers={"Retry-After": str(
            max(1, round(wait)))})

    def _lang(self, request: web.Request, ticket_lang: str | None) -> str:
        asked = request.query.get("lang")
        if asked in self.hall.languages:
            return str(asked)
        return ticket_lang if ticket_lang in self.hall.languages else self.hall.main_language

    def _ticket(self, token: str) -> Any:
        if not self.hub.book.synced or not 8 <= len(token) <= p.TOKEN_MAX:
            return None
        return self.hub.book.ticket_for(token, self.hub.clock())

    def _visit(self, request: web.Request, kind: str) -> tuple[str, Any] | web.Response:
        """The token in a visitor's link and its ticket, for the page, its stream and its form alike; or the answer
        instead: 429 to a client over its `kind` limit. A token that opens no page today is a 404 (raised)."""
        refused = self.limited(request, kind)
        if refused is not None:
            return refused
        token = request.match_info["token"]
        ticket = self._ticket(token)
        if ticket is None:
            raise web.HTTPNotFound()
        return token, ticket

    # ------------------------------------------------------------ the ticket page

    async def ticket_page(self, request: web.Request) -> web.Response:
        visit = self._visit(request, "lookup")
        if isinstance(visit, web.Response):
            return visit
        token, ticket = visit
        lang = self._lang(request, ticket.lang)
        return self._page(token, ticket, lang, request.query.get("fb"))

    def _page(self, token: str, ticket: Any, lang: str, feedback: str | None = None, status: int = 200,
              comment: str = "") -> web.Response:
        view = self.hub.book.view(ticket)
        now = texts.ticket_texts(self.hall, view, lang)
        message = texts.feedback_message(lang, feedback) if feedback and feedback != "ok" else ""  # ok: state thanks
        html = self.jinja.get_template("ticket.html").render(
            w=texts.page_words(self.hall, lang), t=now, token=token, title=texts.title(lang, view.number),
            message=message, message_ok=feedback == "ok", comment=comment, comment_max=p.COMMENT_MAX,
            state_json=json.dumps(now, ensure_ascii=False), priority=view.priority)
        return web.Response(status=status, text=html, content_type="text/html")

    async def ticket_events(self, request: web.Request) -> web.StreamResponse:
        visit = self._visit(request, "lookup")
        if isinstance(visit, web.Response):
            return visit
        token, ticket = visit
        return await self._stream(request, Listener(token, self._lang(request, ticket.lang)))

    async def _stream(self, request: web.Request, listener: Listener) -> web.StreamResponse:
        client = self.client(request)
        if (self.hub.listening() >= self.settings.streams_max
                or self.streams_by_client.get(client, 0) >= self.settings.streams_per_client):
            return web.Response(status=503, text="too many open pages", headers={"Retry-After": "30"})
        first = self._render_listener(listener)
        if first is None:
            raise web.HTTPNotFound()
        response = web.StreamResponse(headers={**HEADERS, "Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        self.streams_by_client[client] = self.streams_by_client.get(client, 0) + 1
        self.hub.listen(listener)
        listener.send(first)
        tv = listener.key.startswith(KEY_PREFIX)
        try:
            while True:
                try:
                    await asyncio.wait_for(listener.wake.wait(), DISPLAY_TICK_S if tv else HEARTBEAT_S)
                except TimeoutError:
                    again = self._render_listener(listener) if tv else None
                    if again is not None and again != listener.last:
                        listener.send(again)
                    else:
                        await response.write(b": keep-alive\n\n")
                    continue
                listener.wake.clear()
                message, listener.pending = listener.pending, None
                if listener.stale:
                    listener.stale = False
                    fresh = self._render_listener(listener)
                    if fresh is None:
                        break
                    if fresh != listener.last:
                        listener.last = message = fresh
                if message is not None:
                    await response.write(message)
                if listener.closed:
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.forget(listener)
            left = self.streams_by_client.get(client, 1) - 1
            if left > 0:
                self.streams_by_client[client] = left
            else:
                self.streams_by_client.pop(client, None)
        return response

    def _changed_state(self, key: str) -> bool:
        """Whether the visit behind a page changed state (or its page went) since its last message; a TV's
        board always goes first (there are a few, and a call is what they are for)."""
        if key.startswith(KEY_PREFIX):
            return True
        ticket = self.hub.book.ticket_for(key, self.hub.clock()) if self.hub.book.synced else None
        before = self._rendered.get(key)
        return ticket is None or before is None or status_of(ticket) != before[0].status

    def _render_listener(self, listener: Listener) -> bytes | None:
        """A stream's next message; None ends the stream (its page no longer exists)."""
        if listener.key.startswith(KEY_PREFIX):
            return self.displays.message(listener.key[len(KEY_PREFIX):])
        ticket = self.hub.book.ticket_for(listener.key, self.hub.clock()) if self.hub.book.synced else None
        if ticket is None:
            self._rendered.pop(listener.key, None)
            return b"event: gone\ndata: {}\n\n" if self.hub.book.synced else None
        view = self.hub.book.view(ticket)
        before, messages = self._rendered.get(listener.key, (None, {}))
        if view != before:
            messages = {}
            self._rendered[listener.key] = (view, messages)
            if len(self._rendered) > 2 * self.hub.listening() + 100:  # forget the pages that have gone
                for key in [k for k in self._rendered if k not in self.hub.listeners and k != listener.key]:
                    del self._rendered[key]
        message = messages.get(listener.lang)
        if message is None:
            now = texts.ticket_texts(self.hall, view, listener.lang)
            message = b"event: state\ndata: " + json.dumps(now, ensure_ascii=False).encode("utf-8") + b"\n\n"
            messages[listener.lang] = message
        return message

    # ------------------------------------------------------------ feedback

    async def feedback(self, request: web.Request) -> web.Response:
        visit = self._visit(request, "feedback")
        if isinstance(visit, web.Response):
            return visit
        token, ticket = visit
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            lang = self._lang(request, ticket.lang)
            return self._page(token, ticket, lang, "too_long", status=413)
        lang = str(form.get("lang")) if form.get("lang") in self.hall.languages else self._lang(request, ticket.lang)
        comment = str(form.get("comment") or "")
        score = str(form.get("score") or "")
        if not score.isdigit() or int(score) not in p.SCORES:
            return self._page(token, ticket, lang, "pick", status=400, comment=comment[:p.COMMENT_MAX])
        if len(comment) > p.COMMENT_MAX:
            return self._page(token, ticket, lang, "too_long", status=400, comment=comment[:p.COMMENT_MAX])
        if not _unicode_text(comment):
            return self._page(token, ticket, lang, "failed", status=400)
        try:
            await self.hub.request("feedback", token=token, score=int(score), comment=comment.strip() or None)
        except Refused as exc:
            code = exc.code
            status = 409 if code in (p.Err.ALREADY_RATED, p.Err.VISIT_NOT_DONE) else 400
            return self._page(token, ticket, lang, code, status=status, comment=comment)
        except HallUnavailable:
            return self._page(token, ticket, lang, "failed", status=503, comment=comment)
        raise web.HTTPSeeOther(f"/t/{token}?lang={lang}&fb=ok#feedback")

    # ------------------------------------------------------------ the web hall display

    async def display_page(self, request: web.Request) -> web.Response:
        refused = self.limited(request, "lookup")
        if refused is not None:
            return refused
        display_id = request.match_info["id"]
        board = self.displays.board(display_id)
        if board is None:
            raise web.HTTPNotFound()
        html = self.jinja.get_template("display.html").render(
            b=board, display_id=display_id, title=texts.translator(board["lang"])("web.display.title"))
        return web.Response(text=html, content_type="text/html")

    async def display_events(self, request: web.Request) -> web.StreamResponse:
        refused = self.limited(request, "lookup")
        if refused is not None:
            return refused
        display_id = request.match_info["id"]
        if display_id not in self.hall.displays:
            raise web.HTTPNotFound()
        return await self._stream(request, Listener(KEY_PREFIX + display_id, self.hall.main_language))

    # ------------------------------------------------------------ the rest

    async def static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.static:
            raise web.HTTPNotFound()
        return web.Response(body=self.static[name], content_type=STATIC[name],
                            headers={"Cache-Control": "public, max-age=3600"})

    async def health(self, request: web.Request) -> web.Response:
        ok = self.hub.book.synced and self.hub.connected
        return web.json_response({"ok": ok, "seq": self.hub.book.seq, "pages": self.hub.listening()},
                                 status=200 if ok else 503)


def _unicode_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: refused here as the hall server would refuse it
        return False
    return True
