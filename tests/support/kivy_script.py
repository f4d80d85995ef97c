"""Drive a running Kivy app with a script, for the window test and the kiosk bench.

A script is a generator run on Kivy's clock: it does something (a touch, a check), then yields a
callable to wait for until it returns true, or a float to pause that many seconds. The app stops at
the end of the script, on an error (kept in report["error"]), or when the time runs out.
Import only in a process where Kivy is configured (ui.kivy_env.configure_kivy) and the app built.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any


def drive(app: Any, steps: Iterator[Any], timeout_s: float, report: dict[str, Any], every_s: float = 0.05) -> None:
    from kivy.clock import Clock

    deadline = time.monotonic() + timeout_s
    waiting: list[Any] = [None, 0.0]  # what the script waits for; when a pause ends

    def stop(error: str | None = None) -> bool:
        if error is not None:
            report["error"] = error
        app.stop()
        return False

    def step(dt: float) -> bool:
        if time.monotonic() > deadline:
            return stop(f"stuck on {getattr(app.drawn, 'name', app.drawn)}")
        condition = waiting[0]
        if callable(condition) and not condition():
            return True
        if isinstance(condition, float) and time.monotonic() < waiting[1]:
            return True
        try:
            waiting[0] = next(steps)
        except StopIteration:
            return stop()
        except Exception as exc:
            return stop(repr(exc))
        if isinstance(waiting[0], float):
            waiting[1] = time.monotonic() + waiting[0]
        return True

    Clock.schedule_interval(step, every_s)


def tap(x: float, y: float) -> None:
    """A finger down and up at window point (x, y), through Kivy's own input dispatch.

    Does what kivy.tests.common.UnitTestTouch does without importing that module, which imports pytest:
    ~10 MiB that a bench measuring an app's resident memory must not count.
    """
    from kivy.base import EventLoop
    from kivy.input.motionevent import MotionEvent

    class Finger(MotionEvent):
        def depack(self, args: dict[str, float]) -> None:
            self.sx, self.sy = args["x"], args["y"]
            super().depack(args)

    window = EventLoop.window
    finger = Finger("vuoro-tap", 99, {"x": x / (window.width - 1.0), "y": y / (window.height - 1.0)},
                    is_touch=True, type_id="touch")
    finger.profile = ["pos"]
    EventLoop.post_dispatch_input("begin", finger)
    EventLoop.post_dispatch_input("end", finger)
