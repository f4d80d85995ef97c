"""Kivy key codes as the model's key names. Pure (no Kivy import), so it is tested on its own.

A USB number pad sends its own codes (Kivy's numpad0..numpadenter, 256-271) whatever the keyboard
layout; the panel treats them exactly as the main keyboard's digits, Enter, + and -, so either drives it.
"""

from __future__ import annotations

from collections.abc import Iterable

NUMPAD_0 = 256  # Kivy: numpad0..numpad9 are 256..265
NAMED = {
    8: "backspace", 9: "tab", 13: "enter", 27: "escape", 127: "backspace",
    266: ".", 267: "/", 268: "*", 269: "-", 270: "+", 271: "enter",  # the number pad's own keys
}
MODIFIERS_THAT_BLOCK = frozenset({"ctrl", "alt", "meta", "super"})


def key_name(key: int, codepoint: str | None, modifiers: Iterable[str] = ()) -> str | None:
    """'0'-'9', 'enter', '+', '-', '*', '/', '.', 'escape', 'backspace', 'tab' or a lower-case letter; None
    for anything the panel does not use (and for every key pressed with Ctrl, Alt or a system key held)."""
    if MODIFIERS_THAT_BLOCK.intersection(modifiers):
        return None
    if NUMPAD_0 <= key <= NUMPAD_0 + 9:
        return str(key - NUMPAD_0)
    if key in NAMED:
        return NAMED[key]
    if codepoint and len(codepoint) == 1 and codepoint.isprintable() and not codepoint.isspace():
        return codepoint.lower()
    return None
