"""Tell systemd how the hall server is doing (sd_notify): a unit with Type=notify is "started" only once
the server says READY=1, which it does when it is connected and its presence is online on the broker.

The protocol is one datagram of `KEY=value` lines to the AF_UNIX socket named in $NOTIFY_SOCKET (a
leading `@` is Linux's abstract namespace); without that variable (not started by systemd) it does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(*fields: str) -> bool:
    """Send e.g. notify("READY=1", "STATUS=serving hall kvarnby"); True when systemd was told."""
    where = os.environ.get("NOTIFY_SOCKET")
    if not where or not fields:
        return False
    address = "\0" + where[1:] if where.startswith("@") else where
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8"))
    except OSError:
        return False  # a gone or foreign socket must never stop the hall
    return True
