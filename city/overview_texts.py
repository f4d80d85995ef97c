"""The overview page's words in the staff's language: catalogue messages (assets/locale/*/overview.po), the page's
language from `?lang=`, else the browser's Accept-Language, else the `--lang` of `vuoro overview`.

May import ui.i18n (catalogues, no Kivy) and web.texts (the writing direction).
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path

from ui.i18n import available_languages, translator
from web.texts import direction

PAGE = Path(__file__).with_name("overview.html")
ROLES = ("kiosk", "counter", "display", "web", "admin")
PRINTER_STATES = ("paper_near_end", "paper_out", "offline")
# Every message id the page shows: tests/test_city_overview.py checks each shipped language has each.
MESSAGE_IDS = frozenset({
    "overview.title", "overview.connecting", "overview.live", "overview.reconnecting", "overview.summary",
    "overview.minutes", "overview.topic", "overview.waiting", "overview.new_wait", "overview.oldest",
    "overview.device", "overview.status", "overview.since", "overview.paper", "overview.online", "overview.offline",
    "overview.unknown", *(f"overview.role.{r}" for r in ROLES), *(f"overview.printer.{s}" for s in PRINTER_STATES),
})


def page_language(asked: str | None, accept: str | None, default: str) -> str:
    """`?lang=` when it names a shipped language, else the browser's first shipped one by q, else the default."""
    shipped = set(available_languages())
    if asked in shipped:
        return str(asked)
    ranked = []
    for i, part in enumerate((accept or "")[:512].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality, i, tag.strip().lower().split("-")[0]))
    for _, _, lang in sorted(ranked):
        if lang in shipped:
            return lang
    return default if default in shipped else "en"


def page_texts(lang: str) -> dict[str, str]:
    """Each message's template, placeholders left for the page's script to fill in."""
    t = translator(lang)
    return {mid: t.template(mid) for mid in sorted(MESSAGE_IDS)}


@cache  # one page per language, read and filled once: the file and the catalogues do not change while it runs
def render_page(lang: str) -> str:
    """overview.html in `lang`: its lang and dir, the title, and the words as a JSON data block (not a script: the
    page's own script reads it, so the data never runs)."""
    texts = page_texts(lang)
    data = json.dumps(texts, ensure_ascii=False).replace("<", "\\u003c")
    page = PAGE.read_text(encoding="utf-8")
    return (page.replace('<html lang="en">', f'<html lang="{html.escape(lang)}" dir="{direction(lang)}">', 1)
            .replace("<title>Vuoro · the city's halls</title>", f"<title>Vuoro · {html.escape(texts['overview.title'])}"
                     "</title>", 1)
            .replace('<script id="texts" type="application/json">{}</script>',
                     f'<script id="texts" type="application/json">{data}</script>', 1))
