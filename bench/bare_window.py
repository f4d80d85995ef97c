"""A bare Kivy window: the floor the benches measure each app's resident memory against.

Under Mesa's software GL (llvmpipe) a window with nothing in it already holds 126-137 MiB here, so an absolute
memory target says more about the GL driver than about the app. Each bench runs this in a child of its own,
with the app's process set-up (the bench's environment: SDL offscreen video, dummy audio, KIVY_NO_ARGS, a
temporary KIVY_HOME), the app's Kivy configuration (`configure_kivy`, or `display.window.configure` for the
display's sleeping loop) at the app's window size, the GL flush per frame the apps set, and one Label (the text
provider every app loads). It prints one JSON line once its first frames are drawn:
{"rss_mib", "hwm_mib", "frames"}.

Run: `python bench/bare_window.py --size 540x960 [--loop display] [--settle 1.5]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.benchlib import rss_mib, rss_mib_field  # noqa: E402

SETTLE_S = 1.5  # after the first flipped frame: as long as the apps' "synced" readings wait, or longer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", required=True, help="WIDTHxHEIGHT, the app's window")
    parser.add_argument("--loop", choices=("kivy", "display"), default="kivy",
                        help="Kivy's own loop (kiosk, counter) or the display's sleeping one")
    parser.add_argument("--settle", type=float, default=SETTLE_S, help="seconds after the first frame")
    args = parser.parse_args(argv)
    if args.loop == "display":
        from display.window import configure

        configure(windowed=True, size=args.size, headless=True)
    else:
        from ui.kivy_env import configure_kivy

        configure_kivy(windowed=True, size=args.size, headless=True)
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from ui.kivy_env import flush_each_frame

    result: dict[str, Any] = {"frames": 0}
    first: list[float] = []

    def flipped(*_: Any) -> None:
        result["frames"] += 1
        if not first:
            first.append(time.monotonic())
            Clock.schedule_once(measure, args.settle)

    def measure(dt: float) -> None:
        result["rss_mib"] = rss_mib()
        result["hwm_mib"] = rss_mib_field("VmHWM")
        App.get_running_app().stop()

    class Bare(App):
        def build(self) -> Label:
            flush_each_frame()
            Window.bind(on_flip=flipped)
            return Label(text="12:00", font_size=100)

    Bare().run()
    print(json.dumps(result), flush=True)
    return 0 if "rss_mib" in result else 1


if __name__ == "__main__":
    raise SystemExit(main())
