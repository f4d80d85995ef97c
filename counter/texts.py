"""The panel's texts as words: catalogue messages (counter.po) rendered in the staff's language.

No Kivy here, so the tests can read a whole panel as text without a window. Message ids live in
`assets/locale/<lang>/LC_MESSAGES/counter.po`, merged by ui.i18n with the kiosk's own catalogue.
"""

from __future__ import annotations

from functools import cache

from counter.model_types import Msg, Panel, Text, msg
from ui import i18n


def render(item: Text, lang: str) -> str:
    """One text in the staff's language; a message given as another message's parameter is rendered first."""
    return i18n.render(item, lang)


@cache
def language_line(code: str, staff_lang: str) -> str:
    """The visitor's language named in itself and, when it differs, in the staff's: "Suomi (finska)".

    Both names come from the catalogues (vuoro.po's `language.name`, counter.po's `counter.language.<code>`), not
    from Babel's CLDR data: that would load ~5 MiB of locale data into every panel for a handful of words. A language
    the staff's catalogue does not name is given in its own name only (never the English one in a Swedish panel).
    """
    if not code:
        return "?"
    own = i18n.language_name(code)
    staff = _named_in(code, staff_lang)
    if not staff:
        return own
    # the staff's own language as their language writes it inside a sentence: "Talar svenska", not "Svenska"
    return staff if staff.lower() == own.lower() else f"{own} ({staff})"


def _named_in(code: str, staff_lang: str) -> str:
    msgid = f"counter.language.{code}"
    try:
        catalogue = i18n.load(staff_lang)
    except FileNotFoundError:
        return ""
    return catalogue.translations.gettext(msgid) if msgid in catalogue.ids else ""


def clock(seconds: int) -> str:
    """A serving time as 03:12, or 1:03:12 past an hour."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def panel_lines(panel: Panel) -> list[str]:
    """Everything a panel says, as lines of text (tests and logs read panels this way)."""
    lang = panel.lang
    say = lambda item: render(item, lang)  # noqa: E731
    header = panel.header
    lines = [header.counter, say(Msg("counter.status." + header.status)) if header.status else "",
             say(header.reason) if header.reason else "", say(Msg("counter.link." + header.link))]
    current = panel.current
    if current is None:
        lines.append(say(Msg("counter.current.none")))
    else:
        lines += [current.number, current.topic,
                  say(msg("counter.current.lang", language=language_line(current.lang, lang)))]
        if current.note:
            lines.append(say(msg("counter.current.note", note=current.note)))
        if current.from_counter:
            lines.append(say(msg("counter.current.forwarded_from", counter=current.from_counter)))
        elif current.forwards:
            lines.append(say(msg("counter.current.forwards", n=current.forwards)))
        if current.stale:
            lines.append(say(msg("counter.current.stale")))
    if panel.serving_s is not None:
        lines.append(say(msg("counter.current.serving", time=clock(panel.serving_s))))
    lines += [f"{row.letter} {row.name} {row.waiting}" for row in panel.queues]
    lines += [f"{row.number} {row.from_counter} {row.note}".strip() for row in panel.forwarded]
    lines += [say(alert.text) for alert in panel.alerts]
    if panel.notice is not None:
        lines.append(say(panel.notice.text))
    if panel.dialog is not None:
        lines += [say(panel.dialog.title), *(say(b) for b in panel.dialog.body),
                  *(f"{item.key} {say(item.label)}" for item in panel.dialog.items)]
    return [line for line in lines if line]
