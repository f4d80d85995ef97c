"""Plain PCM audio for announcements: read, write, resample, join, and the hall chime, in pure Python.

Why no audio library: an announcement is a chime and two short phrases joined end to end, all mono
16-bit; the standard library's `wave` and `array` do that in a few milliseconds, and one WAV file per
announcement is what any player (SDL through Kivy, aplay, a test's recorder) plays without surprises.

The chime (assets/sounds/chime.wav) is generated here, not downloaded: two soft bell tones, a major
third apart (E5 then C5), each a few decaying harmonics. `python -m display.audio` writes it again.
A hall may replace the file with its own chime: any PCM WAV is converted to mono at the speech rate.
"""

from __future__ import annotations

import array
import io
import math
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import assets

RATE = 22050  # espeak-ng's rate: speech is never resampled, only the chime when it differs
SOUNDS = assets.path("sounds")
CHIME = SOUNDS / "chime.wav"
PEAK = 32767


@dataclass(frozen=True)
class Pcm:
    """Mono signed 16-bit little-endian samples at `rate`."""

    rate: int
    frames: bytes

    @property
    def samples(self) -> int:
        return len(self.frames) // 2

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate


def silence(rate: int, seconds: float) -> Pcm:
    return Pcm(rate, bytes(2 * round(rate * seconds)))


def _to_mono16(raw: bytes, channels: int, width: int) -> array.array[int]:
    if width == 2:
        data = array.array("h", raw[: len(raw) - len(raw) % 2])
    elif width == 1:  # unsigned 8-bit
        data = array.array("h", ((b - 128) << 8 for b in raw))
    elif width in (3, 4):
        step = width
        data = array.array("h", (int.from_bytes(raw[i + step - 2:i + step], "little", signed=True)
                                 for i in range(0, len(raw) - step + 1, step)))
    else:
        raise ValueError(f"unsupported sample width {width}")
    if sys.byteorder == "big":
        data.byteswap()
    if channels > 1:
        data = array.array("h", (sum(data[i:i + channels]) // channels
                                 for i in range(0, len(data) - channels + 1, channels)))
    return data


def _bytes(data: array.array[int]) -> bytes:
    if sys.byteorder == "big":
        data = array.array("h", data)
        data.byteswap()
    return data.tobytes()


def read_wav(source: Path | bytes) -> Pcm:
    """Any PCM WAV as mono 16-bit. espeak-ng's --stdout header claims ~2^30 frames: we read what is there."""
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as handle:
        raw = handle.readframes(handle.getnframes())
        data = _to_mono16(raw, handle.getnchannels(), handle.getsampwidth())
        return Pcm(handle.getframerate(), _bytes(data))


def wav_bytes(pcm: Pcm) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(pcm.rate)
        out.writeframes(pcm.frames)
    return buffer.getvalue()


def write_wav(path: Path, pcm: Pcm) -> Path:
    path.write_bytes(wav_bytes(pcm))
    return path


def resample(pcm: Pcm, rate: int) -> Pcm:
    """Linear interpolation: enough for a chime (not for music)."""
    if pcm.rate == rate or not pcm.frames:
        return Pcm(rate, pcm.frames)
    source = array.array("h", pcm.frames)
    if sys.byteorder == "big":
        source.byteswap()
    count = max(1, round(len(source) * rate / pcm.rate))
    ratio = (len(source) - 1) / max(1, count - 1)
    out = array.array("h", bytes(2 * count))
    for index in range(count):
        position = index * ratio
        low = int(position)
        high = min(low + 1, len(source) - 1)
        out[index] = round(source[low] + (source[high] - source[low]) * (position - low))
    return Pcm(rate, _bytes(out))


def concat(parts: list[Pcm]) -> Pcm:
    """Join clips end to end; all must share one rate (resample first)."""
    rates = {part.rate for part in parts}
    if len(rates) > 1:
        raise ValueError(f"clips at different rates: {sorted(rates)}")
    return Pcm(rates.pop() if rates else RATE, b"".join(part.frames for part in parts))


def rms(pcm: Pcm, start_s: float = 0.0, end_s: float | None = None) -> float:
    """Loudness of a stretch, 0..1 of full scale: silence is 0, speech and the chime well above 0.01."""
    data = array.array("h", pcm.frames)
    if sys.byteorder == "big":
        data.byteswap()
    first = max(0, int(start_s * pcm.rate))
    last = len(data) if end_s is None else min(len(data), int(end_s * pcm.rate))
    if last <= first:
        return 0.0
    return math.sqrt(sum(s * s for s in data[first:last]) / (last - first)) / PEAK


def synth_chime(rate: int = RATE) -> Pcm:
    """Two bell-like tones (E5, then C5 0.45 s later), decaying over about a second; peak at -3 dBFS."""
    notes = ((659.25, 0.0), (523.25, 0.45))
    harmonics = ((1.0, 1.0), (2.0, 0.32), (3.0, 0.1), (4.2, 0.04))  # a bell's slightly stretched partials
    length = 1.75
    count = int(rate * length)
    signal = [0.0] * count
    for frequency, start in notes:
        first = int(start * rate)
        for index in range(first, count):
            t = (index - first) / rate
            envelope = min(1.0, t / 0.006) * math.exp(-t / 0.38)
            signal[index] += envelope * sum(amplitude * math.sin(2 * math.pi * frequency * factor * t)
                                            for factor, amplitude in harmonics)
    for index in range(count - int(0.05 * rate), count):  # fade the tail to exact silence: no click
        signal[index] *= (count - index) / (0.05 * rate)
    scale = 0.707 * PEAK / max(abs(s) for s in signal)
    return Pcm(rate, _bytes(array.array("h", (round(s * scale) for s in signal))))


def load_chime(rate: int = RATE, path: Path = CHIME) -> Pcm:
    """The hall's chime at the speech rate; the built-in one when the file is missing or unreadable."""
    try:
        return resample(read_wav(path), rate)
    except (OSError, EOFError, wave.Error, ValueError):
        return synth_chime(rate)


if __name__ == "__main__":  # python -m display.audio: (re)write assets/sounds/chime.wav
    SOUNDS.mkdir(parents=True, exist_ok=True)
    written = write_wav(CHIME, synth_chime())
    print(f"{written}: {synth_chime().duration_s:.2f} s, {RATE} Hz mono 16-bit")
