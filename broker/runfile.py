"""Where a running hall server leaves its broker URL, so the CLI on the same machine finds it.

Zeroconf finds servers across the LAN; this file covers the common case of a terminal on
the server itself, including the demo whose embedded broker may sit on a free port.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def runfile(hall_id: str) -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"vuoro-{os.getuid()}" / f"{hall_id}.broker"


def write(hall_id: str, url: str) -> Path:
    path = runfile(hall_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(url + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read(hall_id: str) -> str | None:
    try:
        return runfile(hall_id).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def remove(hall_id: str, url: str) -> None:
    """Remove the file only if it is still ours (another server may have taken over)."""
    if read(hall_id) == url:
        runfile(hall_id).unlink(missing_ok=True)
