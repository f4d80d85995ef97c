"""The default case of every device model's `match` dispatch: an input of a type nobody handles.

Such an input is a programming mistake (a type added without its case), not a visitor's or the network's:
the model ignores it, so the screen stays as it was, logs it once per type (a flood of them must not flood
the log) and counts every one, so that a test or a health check can see it happened. Pure: no Kivy, no I/O.
"""

from __future__ import annotations

import logging
from collections import Counter


def ignore_unknown(unknown: Counter[str], event: object, log: logging.Logger, who: str) -> None:
    """Count `event` in `unknown` by its type's name; log an error the first time that type comes."""
    name = type(event).__name__
    if not unknown[name]:
        log.error("%s has no handler for input %s: ignored", who, name)
    unknown[name] += 1
