"""Announcements: the chime, real espeak-ng speech in the right languages, and a queue that never talks over itself.

The speech is generated for real (espeak-ng must be installed, as bin/_bootstrap.sh does); played
announcements go to a RecordingPlayer, a sound card that writes what it plays into a WAV file, so
that the tests can check exactly what a listener would have heard, in order.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.config import HallConfig
from display import audio
from display.announce import (
    MAX_AGE_S,
    AnnouncementQueue,
    Announcer,
    Espeak,
    RecordingPlayer,
    call_text,
    compose,
    languages_for,
    spoken_number,
)
from display.model import Announce
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def espeak() -> Espeak:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run bin/test, which installs it (apt-get install espeak-ng)")
    speech = Espeak()
    assert speech.available
    return speech


def call(number: str = "B042", counter: str = "4", lang: str = "fi", seq: int = 7, recall: int = 0) -> Announce:
    return Announce(number, counter, lang, recall, seq)


# ---------------------------------------------------------------- what is said, in which language


@pytest.mark.parametrize(("lang", "text"), [
    ("sv", "Nummer B noll fyra två, Disk 4."),
    ("fi", "Numero B nolla neljä kaksi, Tiski 4."),
    ("en", "Number bee zero four two, Counter 4."),
    ("se", "Nummir B nolla njeallje guokte, Diskka njeallje."),
])
def test_the_call_is_worded_in_each_language_with_the_digits_spelled_out(hall: HallConfig, lang: str,
                                                                        text: str) -> None:
    assert call_text(hall, "B042", "4", lang) == text


def test_the_visitors_language_comes_first_then_the_halls_main_language_once(hall: HallConfig) -> None:
    assert languages_for(hall, "fi") == ["fi", "sv"]
    assert languages_for(hall, "sv") == ["sv"]
    assert languages_for(hall, "ja") == ["sv"]  # not a hall language: the main one alone
    assert spoken_number("C100", "en") == "cee one zero zero"  # the letter's name, never a word ("a")
    assert spoken_number("A007", "en").startswith("ay ") and spoken_number("A007", "sv").startswith("A ")


def test_each_hall_language_has_a_voice_and_sami_is_read_by_the_lule_sami_one(hall: HallConfig,
                                                                            espeak: Espeak) -> None:
    voices = {lang: espeak.voice_for(lang) for lang in hall.languages}
    assert voices == {"sv": "sv", "fi": "fi", "en": "en-gb", "se": "smj", "de": "de", "ar": "ar"}
    assert "smj" in espeak.voices() and "se" not in espeak.voices()  # why the fallback exists


def test_an_announcement_is_the_chime_then_the_visitors_language_then_the_main_one(
        hall: HallConfig, espeak: Espeak, tmp_path: Path) -> None:
    chime = audio.load_chime()
    spoken = compose(hall, call(lang="fi"), espeak, chime, tmp_path / "call.wav")
    pcm = audio.read_wav(spoken.path)
    assert pcm.rate == audio.RATE and abs(pcm.duration_s - spoken.duration_s) < 1e-3
    kinds = [(part.kind, part.lang, part.voice) for part in spoken.parts]
    assert kinds == [("chime", None, None), ("speech", "fi", "fi"), ("speech", "sv", "sv")]
    assert [part.text for part in spoken.parts[1:]] == [call_text(hall, "B042", "4", "fi"),
                                                        call_text(hall, "B042", "4", "sv")]
    # each stretch of the file is exactly what was meant: the chime, then espeak-ng's own rendering of the
    # phrase in that voice (the samples are deterministic), with quiet gaps between
    assert pcm.frames.startswith(chime.frames)
    for part in spoken.parts[1:]:
        assert part.lang is not None and part.text is not None
        alone = espeak.speak(part.text, part.lang)
        first = round(part.start_s * pcm.rate) * 2
        assert pcm.frames[first:first + len(alone.frames)] == alone.frames
        assert audio.rms(pcm, part.start_s, part.start_s + part.seconds) > 0.02
    gap = spoken.parts[2].start_s - 0.5, spoken.parts[2].start_s - 0.1
    assert audio.rms(pcm, *gap) < 0.001
    assert spoken.parts[1].seconds > 1.0 and spoken.parts[2].seconds > 1.0


def test_sami_is_spoken_with_respelled_letters_and_the_main_language_follows(
        hall: HallConfig, espeak: Espeak, tmp_path: Path) -> None:
    spoken = compose(hall, call("D007", "5", "se"), espeak, audio.load_chime(), tmp_path / "se.wav")
    sami = spoken.parts[1]
    # the counter's digit as a Northern Sámi word too: the Lule Sámi voice would read "5" in its own language
    assert (sami.lang, sami.voice, sami.text) == ("se", "smj", "Nummir D nolla nolla čieža, Latnja vihtta.")
    respelled = espeak.speak("Nummir D nolla nolla tjieža, Latnja vihtta.", "se")  # č as Lule Sámi writes it
    assert espeak.speak(sami.text, "se").frames == respelled.frames
    assert spoken.parts[2].lang == "sv"


def test_without_speech_an_announcement_is_the_chime_alone(hall: HallConfig, tmp_path: Path) -> None:
    spoken = compose(hall, call(), None, audio.load_chime(), tmp_path / "chime-only.wav")
    assert [part.kind for part in spoken.parts] == ["chime"]
    assert Espeak(binary="/nonexistent/espeak-ng").available is False


def test_the_chime_on_disk_is_the_one_the_code_makes(tmp_path: Path) -> None:
    on_disk, made = audio.read_wav(audio.CHIME), audio.synth_chime()
    assert on_disk.rate == made.rate == audio.RATE and on_disk.samples == made.samples
    import array

    a, b = array.array("h", on_disk.frames), array.array("h", made.frames)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1  # libm may differ in the last bit
    assert audio.rms(made, 0, 0.5) > 0.1 and audio.rms(made, made.duration_s - 0.01) < 0.005  # no click at the end
    # a hall's own chime at another rate is converted to the speech rate
    audio.write_wav(tmp_path / "own.wav", audio.resample(made, 44100))
    assert audio.load_chime(path=tmp_path / "own.wav").rate == audio.RATE
    assert audio.load_chime(path=tmp_path / "missing.wav").frames == made.frames


# ---------------------------------------------------------------- the queue, pure


def test_calls_play_one_at_a_time_in_the_order_called() -> None:
    queue = AnnouncementQueue(max_age_s=60)
    for seq in (1, 2, 3):
        queue.add(call(f"A00{seq}", seq=seq), now=0)
    assert queue.next(0) == (None, [])  # nothing generated yet
    for seq in (2, 3):
        queue.generated(seq, object())  # type: ignore[arg-type]
    assert queue.next(0) == (None, [])  # the second is ready, but the first keeps its place
    queue.generated(1, object())  # type: ignore[arg-type]
    first, _ = queue.next(1)
    assert first is not None and first.call.seq == 1
    assert queue.next(2) == (None, [])  # one is playing
    queue.finished()
    second, _ = queue.next(3)
    assert second is not None and second.call.seq == 2


def test_a_call_that_waited_too_long_is_dropped_not_read_out_late() -> None:
    queue = AnnouncementQueue(max_age_s=30)
    queue.add(call("A001", seq=1), now=0)
    queue.add(call("A002", seq=2), now=25)
    for seq in (1, 2):
        queue.generated(seq, object())  # type: ignore[arg-type]
    item, dropped = queue.next(31)
    assert [d.call.number for d in dropped] == ["A001"] and item is not None and item.call.number == "A002"


def test_a_recall_replaces_the_same_number_still_waiting_and_a_flood_keeps_the_newest() -> None:
    queue = AnnouncementQueue(max_age_s=60, max_waiting=3)
    queue.add(call("A001", seq=1), now=0)
    replaced = queue.add(call("A001", seq=2, recall=1), now=1)
    assert [r.call.seq for r in replaced] == [1] and [i.call.seq for i in queue.waiting] == [2]
    for seq in range(3, 7):
        queue.add(call(f"B00{seq}", seq=seq), now=2)
    assert [i.call.seq for i in queue.waiting] == [4, 5, 6]
    assert queue.generated(1, None) is False  # the worker's late result for a replaced call is refused


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["add", "ready", "next", "finish", "fail"]),
                          st.integers(0, 5), st.floats(0, 20)), max_size=60))
def test_whatever_happens_at_most_one_plays_and_every_call_is_accounted_for(
        steps: list[tuple[str, int, float]]) -> None:
    queue = AnnouncementQueue(max_age_s=30, max_waiting=4)
    now, seq, added, gone, played = 0.0, 0, 0, 0, 0
    for op, pick, dt in steps:
        now += dt
        if op == "add":
            seq += 1
            added += 1
            gone += len(queue.add(call(f"A00{pick}", seq=seq), now))
        elif op in ("ready", "fail") and queue.waiting:
            target = queue.waiting[pick % len(queue.waiting)].call.seq
            queue.generated(target, None if op == "fail" else object())  # type: ignore[arg-type]
        elif op == "next":
            item, dropped = queue.next(now)
            gone += len(dropped)
            assert all(d.failed or now - d.queued_at > 30 for d in dropped)
            if item is not None:
                assert item.spoken is not None and now - item.queued_at <= 30
                played += 1
        elif op == "finish":
            queue.finished()
        assert len(queue.waiting) <= 4
    assert added == gone + played + len(queue.waiting)  # nothing lost without a reason
    assert [i.call.seq for i in queue.waiting] == sorted(i.call.seq for i in queue.waiting)


# ---------------------------------------------------------------- the announcer: threads, files, a real recording


def run_until(announcer: Announcer, condition: Callable[[], bool], timeout: float = MAX_AGE_S) -> None:
    """Be the UI thread: pump whenever woken, until the condition holds; within the product's own bound of a
    call's wait (MAX_AGE_S: a call not started by then is dropped), not a figure of the test's."""
    woken = threading.Event()
    announcer.wake = woken.set

    def pumped() -> bool:
        woken.clear()
        announcer.pump()
        return condition()

    wait_until(pumped, timeout, "the announcer to get there")


def test_calls_in_a_burst_are_heard_one_after_another_never_over_each_other(
        hall: HallConfig, espeak: Espeak, tmp_path: Path) -> None:
    player = RecordingPlayer(tmp_path / "heard.wav", speed=40.0)
    announcer = Announcer(hall, player, speech=espeak, workdir=tmp_path / "calls", keep=True)
    try:
        calls = [call("A001", "1", "en", 1), call("B001", "4", "fi", 2), call("C001", "3", "sv", 3)]
        for item in calls:
            announcer.announce(item)
        run_until(announcer, lambda: len(announcer.outcomes) == 3 and not announcer.busy)
    finally:
        announcer.close()
    assert [(o.number, o.result) for o in announcer.outcomes] == [("A001", "played"), ("B001", "played"),
                                                                  ("C001", "played")]
    assert player.overlaps == 0
    files = [o.spoken.path for o in announcer.outcomes if o.spoken is not None]
    assert player.played == files and all(f.exists() for f in files)
    heard = audio.read_wav(tmp_path / "heard.wav")
    assert heard.frames == b"".join(audio.read_wav(f).frames for f in files)  # in order, whole, one after another
    langs = [[part.lang for part in o.spoken.parts[1:]] for o in announcer.outcomes if o.spoken is not None]
    assert langs == [["en", "sv"], ["fi", "sv"], ["sv"]]


def test_a_call_not_started_in_time_is_dropped(hall: HallConfig, espeak: Espeak, tmp_path: Path) -> None:
    clock = [0.0]
    player = RecordingPlayer(tmp_path / "heard.wav", speed=50.0)
    announcer = Announcer(hall, player, speech=espeak, workdir=tmp_path / "calls", max_age_s=30,
                          clock=lambda: clock[0])
    try:
        announcer.announce(call("A001", "1", "sv", 1))
        run_until(announcer, lambda: announcer.queue.playing is not None)
        announcer.announce(call("A002", "2", "sv", 2))
        clock[0] = 31.0  # the first one played too long (an outage, a flood): the second is stale
        run_until(announcer, lambda: len(announcer.outcomes) == 2)
    finally:
        announcer.close()
    assert [(o.number, o.result) for o in announcer.outcomes] == [("A001", "played"), ("A002", "dropped")]
    assert len(player.played) == 1
    assert not list((tmp_path / "calls").glob("*.wav"))  # not kept: played and dropped files are removed


def test_a_muted_display_generates_nothing(hall: HallConfig, tmp_path: Path) -> None:
    player = RecordingPlayer(tmp_path / "heard.wav")
    announcer = Announcer(hall, player, enabled=False, workdir=tmp_path / "calls")
    announcer.announce(call())
    announcer.pump()
    announcer.close()
    assert [o.result for o in announcer.outcomes] == ["muted"] and player.played == []
    assert not list((tmp_path / "calls").glob("*"))
