"""systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram to $NOTIFY_SOCKET.

Under ``Type=notify`` the service manager waits for ``READY=1`` before it counts the unit as
started, learns of an orderly shutdown from ``STOPPING=1``, and with ``WatchdogSec=`` expects
``WATCHDOG=1`` more often than ``$WATCHDOG_USEC``. Outside systemd (no $NOTIFY_SOCKET) every
call does nothing, so the daemon calls these unconditionally.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger("maild.sdnotify")


def _address() -> str | None:
    """The socket to notify, with a leading '@' turned into Linux's abstract namespace."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    return "\0" + address[1:] if address.startswith("@") else address


def notify(state: str) -> bool:
    """Send ``state`` (such as ``READY=1``); True when sent. A failure is logged, never raised:
    the service manager's bookkeeping must not stop the daemon."""
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not notify the service manager (%s): %s", state, exc)
        return False
    return True


def watchdog_seconds() -> float | None:
    """The watchdog timeout systemd set for this process, or None when there is none."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


async def keep_watchdog_fed(timeout: float) -> None:
    """WATCHDOG=1 at half the timeout, for as long as the event loop runs this task: a loop
    that stops turning is what the watchdog is there to catch."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(timeout / 2)
