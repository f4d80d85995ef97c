"""Kivy set-up of the hall display: the kiosk's (ui.kivy_env), plus an event loop that sleeps when idle.

Why: Kivy's loop wakes `maxfps` (60) times a second even when nothing changes: ~2.5 % of a core on
this machine for an empty window, and the display stands idle nearly all day (displays that poll
pinned a Raspberry Pi at 100 %). With Kivy's `interrupt` clock the loop sleeps until the next
scheduled callback, and anything scheduled from another thread (a message from the hall server)
cuts the sleep short at once, so a call is drawn on the very next frame. `maxfps` then only caps how
long the loop may sleep without a reason: SDL's own window events (expose, close) are looked at
at least that often. Measured idle: ~0.06 % of a core for a bare window (bench/display_bench.py).

One trap: Kivy derives its timer resolution from `maxfps` (a third of a frame: 0.33 s at 1 fps) and runs
any timer due within it at once. A timer set for the next minute would then fire up to a third of a
second early, and a callback that sets itself again for the time left would spin the loop until then.
So the resolution is set explicitly, to what it is at 60 fps.

Call `configure` before anything imports Kivy.
"""

from __future__ import annotations

from ui.kivy_env import configure_kivy

IDLE_WAKE_HZ = 1  # the loop looks at SDL's window events at least this often when nothing is scheduled
TIMER_RESOLUTION_S = 1 / 180  # Kivy's own at 60 fps: a timer fires at most this early


def configure(*, windowed: bool, size: str, headless: bool) -> None:
    configure_kivy(windowed=windowed, size=size, headless=headless)
    from kivy.config import Config

    Config.set("kivy", "kivy_clock", "interrupt")
    Config.set("graphics", "maxfps", str(IDLE_WAKE_HZ))
    from kivy.clock import Clock  # made now, from the settings above

    Clock.clock_resolution = TIMER_RESOLUTION_S
