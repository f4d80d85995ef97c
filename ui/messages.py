"""A visible text as data: a catalogue message id with its parameters, rendered later by ui.i18n.

Shared by every pure model that puts words on a screen (the kiosk's screens, the hall display's board),
so that a model never formats text itself and a screen can be compared and tested without a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time


@dataclass(frozen=True)
class Msg:
    """A catalogue message id; ui.i18n.render turns it into words.

    `n` picks the plural form; `lang` overrides the screen's language (the kiosk's start screen greets in
    every hall language at once; a display writes the called ticket's way in the visitor's language). A Msg
    given as another's parameter is rendered first, in the same language (the counter's "{action} was sent").
    """

    id: str
    params: tuple[tuple[str, Param], ...] = ()
    n: int | None = None
    lang: str | None = None


def msg(msgid: str, n: int | None = None, lang: str | None = None, **params: Param) -> Msg:
    return Msg(msgid, tuple(sorted(params.items())), n, lang)


Param = str | int | date | time | Msg
Text = Msg | str
"""A line on screen: a catalogue message, or a string from the hall config already in the screen's language."""
