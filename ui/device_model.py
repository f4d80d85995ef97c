"""What the kiosk's and the counter's pure models share: one input at a time, at a time given from outside, and
back the effects for the app to perform; each model's own timers run after every input. Pure: no Kivy, no I/O,
no clock."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

InputT = TypeVar("InputT")
EffectT = TypeVar("EffectT")


class DeviceModel(Generic[InputT, EffectT]):
    now: datetime

    def feed(self, event: InputT, now: datetime) -> list[EffectT]:
        """Apply one input at time `now`; returns the effects the app must perform, in order."""
        self.now = now
        effects: list[EffectT] = []
        self._handle(event, effects)
        self._timers(effects)
        return effects

    def _handle(self, event: InputT, effects: list[EffectT]) -> None:
        raise NotImplementedError

    def _timers(self, effects: list[EffectT]) -> None:
        raise NotImplementedError
