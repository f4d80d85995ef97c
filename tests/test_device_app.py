"""ui/device_app.py, the scaffolding the device windows share: wake-ups coalesce, none is lost, stop stops.

Runs Kivy's clock in a child process (this file run as a script), as the window tests do, so that Kivy's
global set-up never leaks into other test modules. No window is needed: the clock is ticked by hand, as
Kivy's loop ticks it once per frame.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.support.window_child import run_window_child

ROOT = Path(__file__).resolve().parents[1]


def test_wakes_from_many_threads_coalesce_and_none_is_lost(tmp_path: Path) -> None:
    report = run_window_child([__file__], tmp_path / "kivy")
    assert report["burst"] == {"pumps": 1, "drained": 400}, "400 wakes in one frame: one pump drains them all"
    assert report["idle"] == {"pumps": 1, "drained": 400}, "no wake, no pump"
    assert report["during"] == {"pumps": 3, "drained": 402}, \
        "a wake while the inbox drains is not swallowed: it schedules a pump of its own for the next frame"
    assert report["stopped"] is True


# ---------------------------------------------------------------- the child


def main() -> int:  # pragma: no cover - runs in the child
    import queue
    import threading

    from ui.kivy_env import configure_kivy

    configure_kivy(windowed=True, size="200x200", headless=True)
    from kivy.clock import Clock

    from ui.device_app import DeviceApp

    class Controller:
        def __init__(self) -> None:
            self.inbox: queue.SimpleQueue[int] = queue.SimpleQueue()
            self.wake = lambda: None
            self.drained = 0
            self.stopped = False
            self.on_drain: Any = None

        def post(self, item: int) -> None:  # as ui.device_loop.DeviceLoop.post: queue, then wake
            self.inbox.put(item)
            self.wake()

        def pump(self) -> None:
            while True:
                try:
                    self.inbox.get_nowait()
                except queue.Empty:
                    return
                self.drained += 1
                if self.on_drain is not None:
                    hook, self.on_drain = self.on_drain, None
                    hook()

        def stop(self) -> None:
            self.stopped = True

    class App(DeviceApp):
        def drained(self) -> None:
            self.controller.pump()

    controller = Controller()
    app = App(controller)
    report: dict[str, Any] = {}

    def posts(count: int) -> None:
        for index in range(count):
            controller.post(index)

    threads = [threading.Thread(target=posts, args=(100,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Clock.tick()
    report["burst"] = {"pumps": app.pumps, "drained": controller.drained}
    Clock.tick()
    report["idle"] = {"pumps": app.pumps, "drained": controller.drained}
    controller.on_drain = lambda: controller.post(1)  # a message arriving while the inbox drains
    controller.post(0)
    Clock.tick()
    Clock.tick()
    report["during"] = {"pumps": app.pumps, "drained": controller.drained}
    app.on_stop()
    report["stopped"] = controller.stopped
    print(json.dumps(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
