"""Which key does what on the counter panel: pure data and one function, apart from the state machine.

A USB number pad is enough: Enter calls the next visitor; + and - recall or give up on them; the bottom
row ends a visit (1 done, 2 handed on, 3 forward); the top row runs the counter (7 pause, 8 open, 9 close).
In a dialog the digits choose, Enter confirms, Esc, . or Backspace cancel. Letters do the same on a full
keyboard (counter/keys.py turns Kivy's key codes into these names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from counter.model_state import ForwardDialog, SimpleDialog
from counter.model_types import (
    PAUSE_REASONS,
    Cancel,
    ChooseTarget,
    ConfirmClose,
    ConfirmForward,
    Done,
    ForwardMode,
    Input,
    Next,
    NoShow,
    Open,
    OpenClose,
    OpenForward,
    OpenPause,
    Pause,
    Recall,
)

MAIN_KEYS: Mapping[str, Input] = {
    "enter": Next(), "n": Next(),
    "+": Recall(), "r": Recall(),
    "-": NoShow(), "s": NoShow(),
    "1": Done("resolved"), "d": Done("resolved"),
    "2": Done("handed_on"), "h": Done("handed_on"),
    "3": OpenForward(), "/": OpenForward(), "f": OpenForward(),
    "7": OpenPause(), "p": OpenPause(),
    "8": Open(), "o": Open(),
    "9": OpenClose(), "c": OpenClose(),
    "escape": Cancel(), ".": Cancel(), "backspace": Cancel(),
}
CANCEL_KEYS = frozenset({"escape", ".", "backspace"})
DIGITS = "1234567890"  # the order of choices in a dialog: the tenth is 0
KEY_LABELS: Mapping[str, str] = {"next": "Enter", "recall": "+", "noshow": "−", "done": "1", "handed_on": "2",
                                 "forward": "3", "pause": "7", "open": "8", "close": "9"}


def key_action(name: str, dialog: ForwardDialog | SimpleDialog | None,
               forward_targets: Callable[[str], tuple[str, ...]]) -> Input | None:
    """What key `name` does with this dialog open (None: the main panel), or None when it does nothing."""
    if dialog is None:
        return MAIN_KEYS.get(name)
    if name in CANCEL_KEYS:
        return Cancel()
    if isinstance(dialog, ForwardDialog):
        if name == "enter":
            return ConfirmForward()
        if name in ("/", "*", "tab"):
            return ForwardMode()
        if name in DIGITS:
            targets = forward_targets(dialog.mode)
            index = DIGITS.index(name)
            if index < len(targets):
                return ChooseTarget(dialog.mode, targets[index])
        return None
    if dialog.name == "pause" and name in DIGITS:
        index = DIGITS.index(name)
        return Pause(PAUSE_REASONS[index]) if index < len(PAUSE_REASONS) else None
    if dialog.name == "close" and name in ("enter", "9"):
        return ConfirmClose()
    return None
