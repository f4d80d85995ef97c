"""What the kiosk's, the counter's and the display's Kivy apps share: the wake-up, the stop and the snapshot.

Why one copy: each app used to carry its own. A controller's threads (paho's, the worker's) post into its
inbox and call `wake`; the model may be touched from the UI thread only, so `wake` schedules one `pump` on
Kivy's clock. It coalesces: a burst of retained state after a call (a dozen messages in ~100 ms) schedules
one pump for the next frame, not a dozen (Kivy's `mainthread` would schedule one per message, each draining
an inbox the first already emptied). No wake is ever lost: the flag is cleared before the inbox is drained,
so a message that arrives during the drain schedules the next pump itself.

An app subclasses `DeviceApp` (a Kivy App), passes its controller up, and says in `drained` what to do once
the inbox is in the model (redraw what changed). `on_stop` stops the controller (its client says goodbye,
its threads end); an app that has more to undo overrides it and calls this one last. `snapshot` writes the
root widget as a PNG, with `snapshot_background` painted behind it for an app whose background is the
window's clear colour (which export_to_png does not see).

Kivy must be configured (ui.kivy_env.configure_kivy) before this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kivy.app import App
from kivy.clock import Clock
from kivy.graphics import Color, InstructionGroup, Rectangle

from ui.kivy_env import RGBA


class Controller(Protocol):
    """What DeviceApp needs of a device's controller (ui.device_loop.DeviceLoop gives `wake`)."""

    wake: Callable[[], None]

    def stop(self) -> None: ...


class DeviceApp(App):
    """A Kivy App driven by a device controller: coalesced wake-ups, the controller stopped with the app."""

    snapshot_background: RGBA | None = None  # painted behind the root in a snapshot (None: the root paints its own)

    def __init__(self, controller: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller = controller
        self.pumps = 0  # how many times the inbox was drained on the UI thread (tests check the coalescing)
        self._woken = False
        controller.wake = self.wake

    def wake(self) -> None:
        """Any thread: drain the controller on the UI thread on the next frame (once, however many messages came)."""
        if not self._woken:
            self._woken = True
            Clock.schedule_once(self._pump, 0)

    def _pump(self, dt: float = 0) -> None:
        self._woken = False  # before the drain: what arrives during it wakes the loop again
        self.pumps += 1
        self.drained()

    def drained(self) -> None:
        """The UI thread, after a wake: pump the controller and draw what changed (each app says how)."""
        raise NotImplementedError

    def on_stop(self) -> None:
        self.controller.stop()

    def snapshot(self, path: str | Path) -> Path:
        """Write the window's content (the root widget, no window chrome) as a PNG; the folder is made."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        root = self.root
        assert root is not None, "snapshot before build"
        background: InstructionGroup | None = None
        if self.snapshot_background is not None:
            background = InstructionGroup()
            background.add(Color(*self.snapshot_background))
            background.add(Rectangle(pos=root.pos, size=root.size))
            root.canvas.before.insert(0, background)
        try:
            root.export_to_png(str(target))
        finally:
            if background is not None:
                root.canvas.before.remove(background)
        return target
