"""Vuoro's package data: halls, locale catalogues, Mosquitto templates, systemd units, fonts, sounds, Pi files.

Every command finds these files through this module (importlib.resources), never by a path relative to the
repository, so that an installed wheel reads the same files as a clone. `path()` gives a real file system
path for readers that need one (Kivy's fonts, Mosquitto's templates, espeak, a directory to list);
`files()` a Traversable for reading text or bytes.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib.resources import as_file
from importlib.resources import files as _files
from importlib.resources.abc import Traversable
from pathlib import Path

_extracted = contextlib.ExitStack()  # files unpacked from a zipped install live until the process ends
atexit.register(_extracted.close)


def files(*parts: str) -> Traversable:
    """The packaged file or folder `parts` (e.g. files("halls", "demo.toml")), for reading."""
    return _files(__name__).joinpath(*parts)


def path(*parts: str) -> Path:
    """A real path to the packaged file or folder `parts`. A wheel installed as files (pip's way) gives its
    own path at once; from a zip the file is unpacked once and kept until the process ends."""
    found = files(*parts)
    if isinstance(found, Path):
        return found
    return _extracted.enter_context(as_file(found))
