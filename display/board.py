"""What a hall display shows, as plain frozen values: the contract between display/model.py and the Kivy layer.

The Board is split into parts (header, hero, current calls, history, queues) so that the window can
compare each part with the one on screen and rebuild only what changed: a new call touches the hero
and the lists, a language rotation touches the words, the minute touches the clock and nothing else.
Texts are either catalogue messages (Msg: rendered by ui.i18n in the board's language) or strings
taken from the hall config, already in the right language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ui.messages import Msg as Msg  # the message types live in ui/messages.py (shared with the other apps)
from ui.messages import Param as Param
from ui.messages import Text as Text
from ui.messages import msg as msg

# Board modes: what the window switches on.
STARTING = "starting"  # never synced with the hall server yet
CALLS = "calls"  # the calls board
CLOSED = "closed"  # outside opening hours, nobody waiting and nobody at a counter
MODES = (STARTING, CALLS, CLOSED)


# Every message id the display can show or speak: the catalogue tests check each language against it.
MESSAGE_IDS = frozenset({
    "display.now_serving", "display.earlier", "display.idle", "display.recall", "display.starting",
    "display.reconnecting", "display.closed.title", "display.closed.today", "display.closed.tomorrow",
    "display.closed.later", "display.closed.unknown", "display.queue.waiting", "display.queue.empty",
    "display.queue.wait", "display.say.call", "display.say.digits", "display.say.letters",
    *(f"display.direction.{name}" for name in (
        "left", "right", "ahead", "ahead-left", "ahead-right", "behind", "upstairs", "downstairs")),
})


@dataclass(frozen=True)
class CallView:
    """One call as a display shows it: the number, and the way from THIS display to its counter."""

    number: str
    topic: str
    colour: str  # the topic's colour
    counter: str  # counter id
    counter_name: str  # in `lang`
    place: str  # this display's wayfinding text for the counter, else the counter's location, in `lang`
    direction: str  # one of broker.config.DIRECTIONS, from this display
    direction_text: Msg
    lang: str  # the language its texts are in: the visitor's for the hero, the board's for the lists
    recall: int
    highlight: bool
    seq: int


@dataclass(frozen=True)
class QueueView:
    """One topic's queue: letter, name, how many wait and about how long."""

    topic: str
    letter: str
    colour: str
    name: str
    waiting: Msg
    wait: Msg | None


@dataclass(frozen=True)
class Header:
    hall_name: str
    clock: str  # "HH:MM" in the hall's time zone
    lang: str


@dataclass(frozen=True)
class Labels:
    """The static words of the calls board, in the board's language of the moment."""

    lang: str
    now_serving: Msg
    earlier: Msg
    idle: Msg


@dataclass(frozen=True)
class Notice:
    """The whole-screen message of the closed and the starting board."""

    lang: str
    title: Msg
    body: Msg | None


@dataclass(frozen=True)
class Board:
    mode: str  # one of MODES
    header: Header
    online: bool  # False: the discreet "reconnecting" mark, over the last board
    labels: Labels
    hero: CallView | None  # the newest call still at its counter, the largest thing on screen
    current: tuple[CallView, ...]  # the other counters' current calls, newest first
    history: tuple[CallView, ...]  # earlier calls, newest first
    queues: tuple[QueueView, ...]
    notice: Notice | None  # the closed or starting board's message
    display: str  # the display's id


def wait_minutes(seconds: int) -> int:
    """An expected wait as whole minutes shown to visitors: rounded up, at least one."""
    return max(1, -(-int(seconds) // 60))


def clock_text(now: datetime) -> str:
    return f"{now.hour:02d}:{now.minute:02d}"
