"""A ticket page's words, in the page's language: catalogue messages (assets/locale/*/web.po, merged with the
kiosk's vuoro.po, whose ticket labels say the wait exactly as the paper does) and the hall file's own texts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from babel import Locale, UnknownLocaleError

from broker.config import HallConfig, Text
from broker.estimate import round_wait_minutes
from ui.i18n import language_name, translator
from web.book import CALLED, CLOSED, DONE, FORWARDED, NOSHOW, RECALLED, WAITING, TicketView

# Every message id the web shows: tests/test_web_book.py checks each shipped language has each.
MESSAGE_IDS = frozenset({
    "web.title", "web.your_number", "web.topic", "web.live", "web.offline", "web.reload", "web.language",
    "web.privacy", "web.priority",
    "web.waiting.title", "web.waiting.body", "web.forwarded.counter", "web.forwarded.topic", "web.forwarded.body",
    "web.called.title", "web.called.body", "web.recalled.title", "web.recalled.body",
    "web.done.title", "web.noshow.title", "web.noshow.body", "web.closed.title", "web.closed.body",
    "web.feedback.question", "web.feedback.comment", "web.feedback.personal", "web.feedback.send",
    "web.feedback.thanks", "web.feedback.already", "web.feedback.failed", "web.feedback.too_long",
    "web.feedback.pick", "web.feedback.limit",
    *(f"web.feedback.score.{n}" for n in range(1, 6)),
    "web.busy", "web.display.title",
})


def local(text: Text, lang: str, hall: HallConfig) -> str:
    """A hall-file text in the page's language, else the hall's main language."""
    return text.get(lang) or text.get(hall.main_language) or next(iter(text.values()), "")


def wait_text(view: TicketView, lang: str) -> str:
    """The expected wait as the paper ticket prints it: the range in the paper's steps, else about one figure."""
    t = translator(lang)
    if view.wait_min is not None:
        low, high = view.wait_min
        if high < 60:
            return t("label.wait_range", time=t.template("label.minutes").format(n=f"{low}–{high}"))  # "10–20 min"
        return t("label.wait_range", time=f"{_duration(low, lang)} – {_duration(high, lang)}")
    return t("label.wait", time=_duration(round_wait_minutes(view.wait_s), lang))


def _duration(minutes: int, lang: str) -> str:
    t = translator(lang)
    hours, rest = divmod(minutes, 60)
    parts = [t("label.hours", n=hours)] if hours else []
    if rest or not hours:
        parts.append(t("label.minutes", n=rest))
    return " ".join(parts)


def ticket_texts(hall: HallConfig, view: TicketView, lang: str) -> dict[str, Any]:
    """Everything a ticket page shows that changes: the template fills it in, and SSE carries it as it is."""
    t = translator(lang)
    topic = hall.topics.get(view.topic)
    counter = hall.counters.get(view.counter or "")
    counter_name = local(counter.name, lang, hall) if counter else (view.counter or "")
    texts: dict[str, Any] = {"status": view.status, "number": view.number,
                             "topic": local(topic.name, lang, hall) if topic else view.topic,
                             "title": "", "body": "", "ahead": "", "wait": "", "way": "", "where": "",
                             "alert": view.status in (CALLED, RECALLED), "feedback": False, "rated": view.rated,
                             "final": view.status in (DONE, NOSHOW, CLOSED)}
    if view.status in (WAITING, FORWARDED):
        texts["ahead"] = t("label.ahead_none") if view.ahead == 0 else t("label.ahead", n=view.ahead or 0)
        if view.status == WAITING:
            texts["title"], texts["body"] = t("web.waiting.title"), t("web.waiting.body")
            texts["wait"] = wait_text(view, lang)
        elif counter is not None:
            texts["title"] = t("web.forwarded.counter", counter=counter_name)
            texts["body"] = t("web.forwarded.body")
            texts["where"] = local(counter.location, lang, hall)
            texts["way"] = local(counter.wayfinding, lang, hall)
        else:
            texts["title"] = t("web.forwarded.topic", topic=texts["topic"])
            texts["body"] = t("web.forwarded.body")
    elif view.status in (CALLED, RECALLED):
        key = "web.called" if view.status == CALLED else "web.recalled"
        texts["title"] = t(key + ".title", counter=counter_name)
        texts["body"] = t(key + ".body", counter=counter_name)
        if counter is not None:
            texts["where"] = local(counter.location, lang, hall)
            texts["way"] = local(counter.wayfinding, lang, hall)
    elif view.status == DONE:
        texts["title"] = t("web.done.title")
        texts["feedback"] = not view.rated
        texts["body"] = t("web.feedback.thanks") if view.rated else ""  # else the form asks
    elif view.status == NOSHOW:
        texts["title"], texts["body"] = t("web.noshow.title"), t("web.noshow.body")
    else:
        texts["title"], texts["body"] = t("web.closed.title"), t("web.closed.body")
    return texts


def page_words(hall: HallConfig, lang: str) -> dict[str, Any]:
    """The fixed words of a ticket page (headings, the feedback form, the language menu)."""
    t = translator(lang)
    return {
        "lang": lang, "dir": direction(lang),
        "hall": local(hall.name, lang, hall),
        "your_number": t("web.your_number"), "topic_label": t("web.topic"), "live": t("web.live"),
        "offline": t("web.offline"), "reload": t("web.reload"), "language": t("web.language"),
        "privacy": t("web.privacy"), "priority": t("web.priority"),
        "question": t("web.feedback.question"), "comment": t("web.feedback.comment"),
        "personal": t("web.feedback.personal"), "send": t("web.feedback.send"),
        "limit": t("web.feedback.limit", n=500),
        "scores": [(n, t(f"web.feedback.score.{n}")) for n in range(1, 6)],
        "languages": [(code, language_name(code)) for code in hall.languages],
    }


def direction(lang: str) -> str:
    """The page's writing direction: "rtl" for Arabic and the like (from the locale's CLDR data), else "ltr"."""
    try:
        return "rtl" if Locale.parse(lang).character_order == "right-to-left" else "ltr"
    except (ValueError, UnknownLocaleError):
        return "ltr"


def feedback_message(lang: str, code: str) -> str:
    """What the page says after a feedback post: thanks, or why not."""
    t = translator(lang)
    return {"ok": t("web.feedback.thanks"), "already_rated": t("web.feedback.already"),
            "too_long": t("web.feedback.too_long", n=500), "pick": t("web.feedback.pick")}.get(
        code, t("web.feedback.failed"))


def title(lang: str, number: str) -> str:
    return translator(lang)("web.title", number=number)


def words(lang: str, ids: Mapping[str, str]) -> dict[str, str]:
    t = translator(lang)
    return {key: t(msgid) for key, msgid in ids.items()}
