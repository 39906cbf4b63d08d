"""systemd's notify protocol (sd_notify(3)) without libsystemd: READY=1, STOPPING=1, STATUS=
and the watchdog pings that let systemd restart a process whose event loop is blocked."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from vaihde.jobs import cancel_all

log = logging.getLogger("vaihde.systemd")


def notify(message: str) -> bool:
    """Send one notification if systemd asked for them ($NOTIFY_SOCKET); False otherwise."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("systemd notification failed", extra={"error": repr(exc)})
        return False
    return True


def watchdog_interval() -> float | None:
    """How often to ping: half of WatchdogSec= (systemd's advice), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (a parent that exec'd us keeps its own)
    return int(usec) / 1_000_000 / 2


async def watchdog_pings(interval: float | None = None) -> None:
    """Ping from the event loop itself: if the loop is blocked, the pings stop and systemd
    restarts the process (WatchdogSec=). Runs until cancelled; returns at once if not asked."""
    interval = interval if interval is not None else watchdog_interval()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def until_stopped(watchdog_task_name: str) -> None:
    """Serve as a Type=notify unit until SIGTERM or SIGINT: READY=1 now, the watchdog pings
    from this loop while waiting, STOPPING=1 (and no more pings) when the wait ends."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notify("READY=1")
    pings = loop.create_task(watchdog_pings(), name=watchdog_task_name)
    try:
        await stop.wait()
    finally:
        notify("STOPPING=1")
        await cancel_all([pings])
