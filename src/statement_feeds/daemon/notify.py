"""systemd's readiness protocol (Type=notify), without a dependency."""

from __future__ import annotations

import logging
import socket

from ..environment import Environ, notify_socket
from ..logs import event

__all__ = ["sd_notify"]

log = logging.getLogger(__name__)


def sd_notify(message: str, environ: Environ = None) -> bool:
    """Tell systemd about our state: a datagram to ``$NOTIFY_SOCKET`` (read by
    :func:`statement_feeds.environment.notify_socket`). Without the variable (not under
    systemd) it does nothing."""
    address = notify_socket(environ)
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        event(log, logging.WARNING, "sd_notify failed", error=str(exc))
        return False
    return True
