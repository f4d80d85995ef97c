"""Spoken calls: a chime, then "Number B 0 4 2, counter 4" in the visitor's language and the hall's main language.

Why espeak-ng: everything must work offline (no speech fetched from a service at run time), on a
Raspberry Pi, in Swedish, Finnish and English at least. espeak-ng is one small Debian package (a few
MiB with its data for 100+ languages), speaks a phrase in tens of milliseconds on a Pi's CPU, is
deterministic (the same text gives the same samples, so tests can check what was said), and runs as
a separate program (GPL, not linked). Its voice is robotic but clear, which suits numbers. Neural
voices (Piper) sound far better but need a downloaded model of tens of MiB per language and have no
Sámi either; pico2wave lacks Swedish and Finnish. Pre-recorded clips of a human voice (letters and
digits per language) would sound best and could serve Northern Sámi properly: `Speech` is the seam
for that.

Northern Sámi: espeak-ng (1.51) has no Northern Sámi voice (se/sme). It has Lule Sámi (smj), a close
relative that reads the shared letters (á, ŋ, double consonants, the diphthongs uo, ie, ea) the Sámi
way, so the Northern Sámi text is read by the smj voice after respelling the letters it does not
know (č→tj, š→sj, ž→dj, đ→d, ŧ→t, as Lule Sámi writes those sounds); the ticket's digits are spoken
as Northern Sámi words from the catalogue (display.say.digits), numbers in counter names by the smj
voice's own rules. Without smj it falls back to the Finnish voice; without espeak-ng to the chime alone.
All of this awaits a native speaker's review.

The queue: calls never talk over each other (one plays at a time, in the order called); a call that
waited longer than `max_age_s` is dropped rather than read out late; a recall of a number still
waiting replaces it. Generation runs on a worker thread, never on the UI thread; playing is a
Player's business (Kivy's SoundLoader in the window, a recorder in tests).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from broker import protocol as p
from broker.config import HallConfig
from display.audio import RATE, Pcm, concat, load_chime, read_wav, resample, silence, wav_bytes, write_wav
from display.model import Announce
from ui import i18n

log = logging.getLogger(__name__)

MAX_AGE_S = 60.0  # a call not started within this is dropped (six calls at once take a minute to read out)
MAX_WAITING = 6  # queued calls beyond this drop the oldest (a burst of calls after a long outage)
SPEED_WPM = 140  # a little slower than espeak-ng's 175: numbers heard across a hall
GAP_AFTER_CHIME_S, GAP_BETWEEN_S, TAIL_S = 0.25, 0.7, 0.2
WORKER_NICENESS = 10  # speech is made below the window's priority: the board is drawn first

# espeak-ng voices for each hall language, best first (see the module's docstring for Sámi).
VOICES: dict[str, tuple[str, ...]] = {
    "sv": ("sv",), "fi": ("fi",), "en": ("en-gb", "en-us"), "se": ("smj", "fi"), "sme": ("smj", "fi"),
    "smj": ("smj",), "nb": ("nb",), "no": ("nb",), "da": ("da",), "de": ("de",), "et": ("et",),
}
RESPELL: dict[str, dict[str, str]] = {  # letters a fallback voice lacks, as that voice's language writes them
    "smj": {"č": "tj", "Č": "Tj", "š": "sj", "Š": "Sj", "ž": "dj", "Ž": "Dj", "đ": "d", "Đ": "D",
            "ŧ": "t", "Ŧ": "T"},
}


# ---------------------------------------------------------------- what is said


def spoken_number(number: str, lang: str) -> str:
    """'B042' -> 'B noll fyra två': protocol.spoken_number's letter and digits as the catalogue's words: digits
    (display.say.digits) and letter names (display.say.letters: English says "ay", not the word "a")."""
    translate = i18n.translator(lang)
    digits = translate("display.say.digits").split()
    letters = translate("display.say.letters").split()

    def word(ch: str) -> str:
        if ch.isdigit() and len(digits) == 10:
            return digits[int(ch)]
        if "A" <= ch <= "Z" and len(letters) == 26:
            return letters[ord(ch) - ord("A")]
        return ch

    return " ".join(word(ch) for ch in p.spoken_number(number).split(" "))


def borrowed_voice(lang: str) -> bool:
    """Whether a language is read by another language's voice (Northern Sámi by the Lule Sámi one)."""
    first = VOICES.get(lang, (lang,))[0]
    return first.split("-")[0] != lang


def call_text(hall: HallConfig, number: str, counter_id: str, lang: str) -> str:
    """The sentence for one language: "Number B zero four two, Counter 4." A borrowed voice would read a digit in
    the counter's name in its own language, so there the digits are the catalogue's words too."""
    counter = hall.counters.get(counter_id)
    name = counter.name.get(lang, counter_id) if counter else counter_id
    if borrowed_voice(lang):
        digits = i18n.translator(lang)("display.say.digits").split()
        if len(digits) == 10:
            name = "".join(f" {digits[int(ch)]} " if ch.isdigit() else ch for ch in name)
            name = " ".join(name.split())
    return i18n.translator(lang)("display.say.call", number=spoken_number(number, lang), counter=name)


def languages_for(hall: HallConfig, visitor_lang: str) -> list[str]:
    """The visitor's language, then the hall's main language (once if they are the same)."""
    first = hall.language(visitor_lang)
    return list(dict.fromkeys([first, hall.main_language]))


# ---------------------------------------------------------------- speech


class Speech(Protocol):
    def voice_for(self, lang: str) -> str | None: ...

    def speak(self, text: str, lang: str) -> Pcm: ...


class Espeak:
    """espeak-ng as a subprocess: text on stdin (never in a shell), a WAV on stdout. Phrases are cached."""

    def __init__(self, binary: str | None = None, speed: int = SPEED_WPM, cache_size: int = 64) -> None:
        self.binary = binary or shutil.which("espeak-ng")
        self.speed = speed
        self._voices: frozenset[str] | None = None
        self._cache: OrderedDict[tuple[str, str], Pcm] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.binary is not None and bool(self.voices())

    def version(self) -> str:
        if self.binary is None:
            return "unavailable"
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return "unavailable"
        words = out.split()
        return f"espeak-ng {words[3]}" if len(words) > 3 else "espeak-ng"

    def voices(self) -> frozenset[str]:
        if self._voices is None:
            found: set[str] = set()
            if self.binary is not None:
                try:
                    out = subprocess.run([self.binary, "--voices"], capture_output=True, text=True, timeout=10).stdout
                except (OSError, subprocess.SubprocessError):
                    out = ""
                found = {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}
            self._voices = frozenset(found)
        return self._voices

    def voice_for(self, lang: str) -> str | None:
        voices = self.voices()
        return next((v for v in (*VOICES.get(lang, ()), lang) if v in voices), None)

    def speak(self, text: str, lang: str) -> Pcm:
        voice = self.voice_for(lang)
        if voice is None or self.binary is None:
            raise RuntimeError(f"no espeak-ng voice for {lang!r}")
        for letter, spelled in RESPELL.get(voice, {}).items():
            text = text.replace(letter, spelled)
        key = (voice, text)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        run = subprocess.run([self.binary, "-v", voice, "-s", str(self.speed), "--stdin", "--stdout"],
                             input=text.encode("utf-8"), capture_output=True, timeout=30, check=False)
        if run.returncode != 0 or not run.stdout:
            raise RuntimeError(f"espeak-ng failed ({run.returncode}): {run.stderr.decode(errors='replace')[:200]}")
        pcm = read_wav(run.stdout)
        with self._lock:
            self._cache[key] = pcm
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return pcm


@dataclass(frozen=True)
class Part:
    """One piece of an announcement, for logs and tests: the chime, or a phrase in one language."""

    kind: str  # "chime" or "speech"
    lang: str | None
    voice: str | None
    text: str | None
    start_s: float
    seconds: float


@dataclass(frozen=True)
class Spoken:
    """A generated announcement: one WAV file, and what is in it."""

    number: str
    seq: int
    path: Path
    parts: tuple[Part, ...]
    duration_s: float


def compose(hall: HallConfig, call: Announce, speech: Speech | None, chime: Pcm, path: Path) -> Spoken:
    """Chime, pause, the call in the visitor's language, pause, in the main language; written to `path`."""
    clips: list[Pcm] = [chime]
    parts = [Part("chime", None, None, None, 0.0, chime.duration_s)]
    position = chime.duration_s
    for lang in languages_for(hall, call.lang):
        voice = speech.voice_for(lang) if speech is not None else None
        if speech is None or voice is None:
            log.warning("no voice for %r: the call %s is announced without it", lang, call.number)
            continue
        text = call_text(hall, call.number, call.counter, lang)
        clip = resample(speech.speak(text, lang), chime.rate)
        gap = silence(chime.rate, GAP_AFTER_CHIME_S if len(parts) == 1 else GAP_BETWEEN_S)
        clips += [gap, clip]
        position += gap.duration_s
        parts.append(Part("speech", lang, voice, text, position, clip.duration_s))
        position += clip.duration_s
    clips.append(silence(chime.rate, TAIL_S))
    pcm = concat(clips)
    write_wav(path, pcm)
    return Spoken(call.number, call.seq, path, tuple(parts), pcm.duration_s)


# ---------------------------------------------------------------- the queue (pure)


@dataclass
class Item:
    call: Announce
    queued_at: float
    spoken: Spoken | None = None
    failed: bool = False


@dataclass
class AnnouncementQueue:
    """Which announcement plays next; no threads, no clock (times are passed in)."""

    max_age_s: float = MAX_AGE_S
    max_waiting: int = MAX_WAITING
    waiting: list[Item] = field(default_factory=list)
    playing: Item | None = None

    def add(self, call: Announce, now: float) -> list[Item]:
        """Queue a call; returns what it pushed out (a queued earlier call of the same number, the oldest)."""
        dropped = [item for item in self.waiting if item.call.number == call.number]
        self.waiting = [item for item in self.waiting if item.call.number != call.number]
        self.waiting.append(Item(call, now))
        while len(self.waiting) > self.max_waiting:
            dropped.append(self.waiting.pop(0))
        return dropped

    def generated(self, seq: int, spoken: Spoken | None) -> bool:
        """The worker finished one (None: it failed). False when it was dropped meanwhile."""
        for item in self.waiting:
            if item.call.seq == seq:
                item.spoken, item.failed = spoken, spoken is None
                return True
        return False

    def next(self, now: float) -> tuple[Item | None, list[Item]]:
        """The item to play now (None while one plays or the first is not generated yet), and those dropped."""
        dropped: list[Item] = []
        if self.playing is not None:
            return None, dropped
        while self.waiting:
            first = self.waiting[0]
            if first.failed or now - first.queued_at > self.max_age_s:
                dropped.append(self.waiting.pop(0))
                continue
            if first.spoken is None:
                return None, dropped  # keep the order: the next one waits for this one
            self.playing = self.waiting.pop(0)
            return self.playing, dropped
        return None, dropped

    def finished(self) -> Item | None:
        item, self.playing = self.playing, None
        return item


# ---------------------------------------------------------------- players


class Player(Protocol):
    """Plays one WAV file and calls `done` once when it has finished (from any thread)."""

    def play(self, path: Path, done: Callable[[], None]) -> None: ...

    def stop(self) -> None: ...


class RecordingPlayer:
    """A sound card that writes what it plays into one WAV file, taking the real time / `speed`.

    The test double with real bytes (like the preview printer): the recording is exactly what a
    listener would have heard, in order; playing while already playing counts as an overlap.
    """

    def __init__(self, path: Path, speed: float = 1.0) -> None:
        self.path, self.speed = path, speed
        self.recording = bytearray()
        self.played: list[Path] = []
        self.overlaps = 0
        self._busy = False
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []

    def play(self, path: Path, done: Callable[[], None]) -> None:
        pcm = read_wav(path)
        with self._lock:
            if self._busy:
                self.overlaps += 1
            self._busy = True
            self.played.append(path)
            self.recording += pcm.frames
            self.path.write_bytes(wav_bytes(Pcm(pcm.rate, bytes(self.recording))))

        def finish() -> None:
            with self._lock:
                self._busy = False
            done()

        timer = threading.Timer(pcm.duration_s / self.speed, finish)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()


# ---------------------------------------------------------------- the announcer


@dataclass(frozen=True)
class Outcome:
    """What became of one call: played, dropped (too old, replaced, too many), failed, or muted."""

    number: str
    seq: int
    lang: str
    result: str
    spoken: Spoken | None = None


class Announcer:
    """Announcements of one display: generated on a worker thread, played one at a time.

    `announce` and `pump` are called on the UI thread; `wake` (set by the UI) asks for a `pump` soon,
    and is called from the worker and the player when something is ready or has finished.
    """

    def __init__(self, hall: HallConfig, player: Player | None, *, enabled: bool = True,
                 speech: Speech | None = None, workdir: Path | None = None, keep: bool = False,
                 max_age_s: float = MAX_AGE_S, clock: Callable[[], float] = time.monotonic,
                 wake: Callable[[], None] | None = None) -> None:
        self.hall, self.player = hall, player
        self.enabled = enabled and player is not None
        self.speech = speech
        self.keep = keep
        self.clock = clock
        self.wake = wake or (lambda: None)
        self.queue = AnnouncementQueue(max_age_s)
        self.outcomes: deque[Outcome] = deque(maxlen=100)  # the latest, for the logs and the tests
        self.generated: deque[Spoken] = deque(maxlen=100)  # the latest made, whether played yet or not
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="vuoro-announce-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Announce | None] = queue.SimpleQueue()
        self._done = threading.Event()
        self._chime: Pcm | None = None
        self._worker: threading.Thread | None = None
        if self.enabled:
            self._worker = threading.Thread(target=self._work, name="display-announcer", daemon=True)
            self._worker.start()

    def announce(self, call: Announce) -> None:
        if not self.enabled:
            self.outcomes.append(Outcome(call.number, call.seq, call.lang, "muted"))
            return
        with self._lock:
            dropped = self.queue.add(call, self.clock())
        self._record(dropped, "replaced")
        for gone in dropped:
            self._discard(gone)
        self._jobs.put(call)

    def pump(self) -> None:
        """UI thread: note a finished playback, drop what is too old, start the next one."""
        if not self.enabled or self.player is None:
            return
        with self._lock:
            if self._done.is_set():
                self._done.clear()
                finished = self.queue.finished()
                if finished is not None:
                    self._record([finished], "played")
                    self._discard(finished)
            item, dropped = self.queue.next(self.clock())
        self._record(dropped, "dropped")
        for gone in dropped:
            self._discard(gone)
        if item is not None and item.spoken is not None:
            self.player.play(item.spoken.path, self._finished)

    def close(self) -> None:
        self._jobs.put(None)
        if self.player is not None:
            self.player.stop()
        if self._worker is not None:
            self._worker.join(5)
        if self._own_dir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def busy(self) -> bool:
        with self._lock:
            return self.queue.playing is not None or bool(self.queue.waiting)

    def _finished(self) -> None:
        self._done.set()
        self.wake()

    def _record(self, items: list[Item], result: str) -> None:
        for item in items:
            result_here = "failed" if item.failed and result == "dropped" else result
            self.outcomes.append(Outcome(item.call.number, item.call.seq, item.call.lang, result_here, item.spoken))
            if result_here != "played":
                log.info("announcement of %s (seq %d) %s", item.call.number, item.call.seq, result_here)

    def _discard(self, item: Item) -> None:
        if item.spoken is not None and not self.keep:
            item.spoken.path.unlink(missing_ok=True)

    def _work(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: a thread is a task with its own niceness
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)  # espeak-ng inherits it
        while True:
            call = self._jobs.get()
            if call is None:
                return
            with self._lock:
                wanted = any(item.call.seq == call.seq for item in self.queue.waiting)
            if not wanted:
                continue  # replaced or dropped before its turn came
            spoken: Spoken | None = None
            try:
                if self._chime is None:
                    self._chime = load_chime(RATE)
                path = self.workdir / f"call-{call.seq}-{call.number}.wav"
                spoken = compose(self.hall, call, self.speech, self._chime, path)
            except Exception:  # a broken voice must not stop the board or the next call
                log.exception("could not generate the announcement of %s", call.number)
            if spoken is not None:
                self.generated.append(spoken)
            with self._lock:
                kept = self.queue.generated(call.seq, spoken)
            if not kept and spoken is not None and not self.keep:
                spoken.path.unlink(missing_ok=True)
            self.wake()
