"""Child processes that end with the process that started them, even when it is killed outright.

`vuoro demo` runs each device as its own process. Ctrl-C and SIGTERM stop them in order, but a SIGKILL, an
out-of-memory kill or a crash of the demo gives it no chance to: its five windows would stay, retrying a
broker port nobody serves any more. On Linux the kernel itself tells the child when its parent is gone
(prctl PR_SET_PDEATHSIG); elsewhere `spawn` is a plain Popen.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A Popen preexec_fn that has the kernel send the child `sig` when this process dies, or None where
    that cannot be done. libc is looked up here, in the parent: between fork and exec, in a process that
    may have other threads, the child runs as little as it can."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return  # refused (never on Linux for a valid signal): the child runs as a plain Popen's would
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would ever send sig
            os._exit(128 + int(sig))

    return arm


def spawn(argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen(argv, **popen), and the child gets SIGTERM when this process dies.

    The kernel sends it when the *thread* that called spawn ends, so call it from the main thread (or one
    that lives as long as the child should)."""
    return subprocess.Popen(argv, preexec_fn=die_with_parent(), **popen)


def stop(proc: subprocess.Popen[Any] | None, wait_s: float) -> int | None:
    """SIGTERM, and SIGKILL if it has not ended within wait_s; its exit code (negative: the signal that ended it),
    None when there was no process."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
