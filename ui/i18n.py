"""Translations for the kiosk and the printed ticket: gettext catalogues read at run time.

Translators edit plain `.po` files under `assets/locale/<lang>/LC_MESSAGES/`: `vuoro.po` (the kiosk
and the ticket) and one more file per app (`counter.po`, `display.po`), so that each app's texts can be
translated on their own. A language's files are merged into one catalogue (a message id given in two
of them is refused). There is no compile step to forget, because each catalogue is parsed with Babel
and turned into an in-memory `gettext.GNUTranslations` the first time a language is used (then cached).
Adding a language is adding a catalogue (and a line in the hall config).

Message ids are stable keys ("ticket.ahead"), not English sentences, so that rewording English
never orphans the other languages. English is the reference: a message missing from another
catalogue falls back to English and logs a warning once, so a kiosk never shows a raw key to a
visitor unless even English lacks it.
"""

from __future__ import annotations

import gettext
import io
import logging
import re
import string
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import assets

log = logging.getLogger(__name__)

LOCALE_DIR = assets.path("locale")
DOMAIN = "vuoro"
REFERENCE = "en"

# The labels a printed ticket needs (kiosk/ticket.py documents each key) and the message behind each.
# Some keys are aliases ("where"/"wait_where", "qr"/"scan_status", "ahead_0"/"ahead_none"), so both the
# ticket layout's names and the screen's names find their text.
TICKET_LABELS: Mapping[str, str] = {
    "ticket_number": "label.ticket_number",
    "topic": "label.topic",
    "issued": "label.issued",
    "ahead_none": "label.ahead_none",
    "ahead_0": "label.ahead_none",
    "wait": "label.wait",
    "wait_range": "label.wait_range",
    "minutes": "label.minutes",
    "hours": "label.hours",
    "where": "label.wait_where",
    "wait_where": "label.wait_where",
    "privacy": "label.privacy",
    "qr": "label.scan_status",
    "scan_status": "label.scan_status",
    "priority": "label.priority",
}
# "ahead" has plural forms: the general one under "ahead", and exact counts 1 and 2 (a dual in Sámi).
AHEAD_ID = "label.ahead"
AHEAD_GENERAL_N = 5  # a count that takes the general plural form in every language we have

# How dates and times are written is itself translated: a Finn reads "maanantaina 7.12. klo 8.00".
DATE_FORMAT_ID = "format.date"
TIME_FORMAT_ID = "format.time"


class Renderable(Protocol):
    """What the kiosk model puts on a screen (kiosk.model.Msg); duck-typed to keep i18n free of the model."""

    @property
    def id(self) -> str: ...

    @property
    def params(self) -> tuple[tuple[str, Any], ...]: ...

    @property
    def n(self) -> int | None: ...

    @property
    def lang(self) -> str | None: ...


@dataclass(frozen=True)
class LoadedCatalogue:
    """One language, parsed: the gettext object plus what it really contains (for fallback and tests)."""

    lang: str
    translations: gettext.GNUTranslations
    catalog: Catalog
    ids: frozenset[str]  # message ids with a non-empty translation (every plural form filled)
    nplurals: int
    plural_ids: frozenset[str] = frozenset()  # the ids that have plural forms


def catalogue_path(lang: str, base: Path = LOCALE_DIR) -> Path:
    """The language's main file: its presence is what makes a language available."""
    return base / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalogue_files(lang: str, base: Path = LOCALE_DIR) -> list[Path]:
    """The main file first, then every other app's file of the language, in name order."""
    main = catalogue_path(lang, base)
    return [main, *sorted(p for p in main.parent.glob("*.po") if p != main)]


def available_languages(base: Path = LOCALE_DIR) -> tuple[str, ...]:
    """Languages that have a catalogue, sorted; the hall config picks among them."""
    return tuple(sorted(p.parent.parent.name for p in base.glob(f"*/LC_MESSAGES/{DOMAIN}.po")))


class CatalogueError(ValueError):
    """A .po file a translator broke; str() names the file and line."""


_PO_LINE = re.compile(r'^(?:(?:msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+)?"(?:[^"\\]|\\.)*"\s*$')


def check_po(path: Path) -> None:
    """Refuse what Babel would quietly mis-read: an unclosed quote (it drops the last letter), an unknown
    keyword, a message id given twice (one translation silently lost)."""
    seen: set[str] = set()
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not _PO_LINE.match(stripped):
            raise CatalogueError(f"{path}:{number}: not a valid .po line (an unclosed quote?): {stripped[:60]}")
        if stripped.startswith("msgid "):
            msgid = stripped[len("msgid "):]
            if msgid != '""' and msgid in seen:
                raise CatalogueError(f"{path}:{number}: message {msgid} is given twice")
            seen.add(msgid)


def missing_catalogues(languages: Iterable[str], base: Path = LOCALE_DIR) -> list[str]:
    """The hall languages nobody has translated yet: for the app to refuse or warn at start."""
    return [lang for lang in languages if not catalogue_path(lang, base).is_file()]


def parse_catalogue(lang: str, base: Path = LOCALE_DIR) -> LoadedCatalogue:
    """Read one .po with Babel and build GNUTranslations in memory (write_mo into a buffer).

    Raises FileNotFoundError for a language without a catalogue (a hall naming a language nobody
    translated is a setup error to see at start, not a kiosk quietly speaking English), and
    CatalogueError for a file a translator broke.
    """
    files = catalogue_files(lang, base)
    catalog: Catalog | None = None
    for path in files:
        check_po(path)
        with path.open("rb") as handle:
            part = read_po(handle, locale=lang, domain=DOMAIN, abort_invalid=True)
        if catalog is None:
            catalog = part
            continue
        for message in part:
            if not message.id:
                continue
            if message.id in catalog:
                raise CatalogueError(f"{path}: message {message.id!r} is also given in another file of {lang!r}")
            catalog[message.id] = message
    assert catalog is not None
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    translations = gettext.GNUTranslations(buffer)
    ids = frozenset(str(m.id[0] if isinstance(m.id, tuple) else m.id) for m in catalog
                    if m.id and not m.fuzzy and _complete(m.string, catalog.num_plurals))
    plural_ids = frozenset(str(m.id[0]) for m in catalog if m.id and m.pluralizable)
    return LoadedCatalogue(lang, translations, catalog, ids, catalog.num_plurals, plural_ids)


def _complete(string: Any, nplurals: int) -> bool:
    if isinstance(string, tuple):
        return len(string) >= nplurals and all(s.strip() for s in string[:nplurals])
    return bool(string and string.strip())


_lock = threading.Lock()


@cache
def load(lang: str) -> LoadedCatalogue:
    """The cached catalogue of one language (parsed once per process)."""
    with _lock:
        return parse_catalogue(lang)


class Translator:
    """A gettext-like function for one language: t("ticket.ahead", n=3) -> "3 people ahead of you"."""

    def __init__(self, lang: str, catalogue: LoadedCatalogue | None = None,
                 reference: LoadedCatalogue | None = None) -> None:
        self.lang = lang
        if catalogue is None:
            try:
                catalogue = load(lang)
            except FileNotFoundError:  # a setup error (see missing_catalogues); English beats a crash
                log.error("no catalogue for language %r; showing English", lang)
                catalogue = load(REFERENCE)
        self.catalogue = catalogue
        self.reference = reference or (self.catalogue if lang == REFERENCE else load(REFERENCE))
        self._warned: set[str] = set()

    def template(self, msgid: str, n: int | None = None) -> str:
        """The translated text with its placeholders still in it (the plural form chosen by n)."""
        source = self.catalogue
        if msgid not in source.ids:
            if msgid not in self._warned:
                self._warned.add(msgid)
                log.warning("message %r is missing from the %r catalogue; showing English", msgid, self.lang)
            source = self.reference
            if msgid not in source.ids:
                log.error("message %r is missing from the English catalogue too", msgid)
                return msgid
        if n is None or msgid not in source.plural_ids:  # a count given to a plain message just fills {n}
            return source.translations.gettext(msgid)
        return source.translations.ngettext(msgid, msgid, n)

    def __call__(self, msgid: str, n: int | None = None, **params: Any) -> str:
        text = self.template(msgid, n)
        values = {key: self._format_value(value) for key, value in params.items()}
        if n is not None:
            values.setdefault("n", str(n))
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):
            log.error("message %r in %r does not fit its parameters %s", msgid, self.lang, sorted(values))
            return text

    gettext = __call__

    def ngettext(self, msgid: str, n: int, **params: Any) -> str:
        return self(msgid, n=n, **params)

    def _format_value(self, value: Any) -> str:
        """Dates and times in the language's own way, with the pattern its translator chose."""
        if isinstance(value, datetime):
            value = value.time()
        if isinstance(value, time):
            return format_time(value, self.template(TIME_FORMAT_ID), locale=_babel_locale(self.lang))
        if isinstance(value, date):
            return format_date(value, self.template(DATE_FORMAT_ID), locale=_babel_locale(self.lang))
        return str(value)


@cache
def _babel_locale(lang: str) -> Locale:
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(REFERENCE)


@cache
def translator(lang: str) -> Translator:
    """The translator of a language with a catalogue (cached; raises FileNotFoundError otherwise)."""
    return Translator(lang)


def render(item: Renderable | str, lang: str) -> str:
    """One line of a kiosk screen as text: a message in its language, or config text as it is."""
    if isinstance(item, str):
        return item
    params = {key: render(value, lang) if _is_message(value) else value for key, value in item.params}
    return translator(item.lang or lang)(item.id, n=item.n, **params)


def _is_message(value: Any) -> bool:
    return not isinstance(value, str) and hasattr(value, "id") and hasattr(value, "params")


def language_name(lang: str) -> str:
    """A language named in itself ("Suomi"): its own catalogue says so, else Babel's CLDR name."""
    try:
        catalogue = load(lang)
    except FileNotFoundError:
        catalogue = None
    if catalogue is not None and "language.name" in catalogue.ids:
        return catalogue.translations.gettext("language.name")
    try:
        name = Locale.parse(lang).get_display_name(lang) or lang
    except (UnknownLocaleError, ValueError):
        return lang
    return name[:1].upper() + name[1:]


class TicketLabels(dict[str, str]):
    """A ticket's labels; `labels["ahead_<n>"]` is the plural form the catalogue's own Plural-Forms picks for n.

    The ticket layout (kiosk/ticket.py) formats strings and knows nothing of plural rules; through this it
    gets the right form for every count (Arabic has six, Sámi a dual), not one general form for "3 or more".
    """

    def __init__(self, labels: dict[str, str], translate: Translator) -> None:
        super().__init__(labels)
        self._translate = translate

    def __missing__(self, key: str) -> str:
        prefix, _, count = key.rpartition("_")
        if prefix == "ahead" and count.isdigit():
            return self._translate.template(AHEAD_ID, int(count))
        raise KeyError(key)


def ticket_labels(lang: str) -> TicketLabels:
    """Every label a printed ticket needs, in one language, placeholders left for the layout to fill.

    "ahead" is the general plural form (for a layout that only has it); "ahead_<n>" any exact count.
    """
    translate = translator(lang)
    labels = {key: translate.template(msgid) for key, msgid in TICKET_LABELS.items()}
    labels["ahead"] = translate.template(AHEAD_ID, AHEAD_GENERAL_N)
    return TicketLabels(labels, translate)


def placeholders(text: str) -> frozenset[str]:
    """The {names} in a message: every translation of a message must use the same ones."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)
