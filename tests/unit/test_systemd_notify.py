"""sd_notify: READY=1 and watchdog pings reach systemd's socket, and stop when the loop blocks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import pytest

from vaihde import systemd


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[tuple[float, str]]:
    out = []
    while True:
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except BlockingIOError:
            return out


def test_notify_sends_to_systemd(notify_socket):
    assert systemd.notify("READY=1") is True
    assert [m for _, m in received(notify_socket)] == ["READY=1"]


def test_no_socket_no_notification(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdogsec(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert systemd.watchdog_interval() is None


async def test_pings_come_from_the_loop_and_stop_while_it_is_blocked(notify_socket):
    task = asyncio.create_task(systemd.watchdog_pings(0.05))
    await asyncio.sleep(0.3)
    before = received(notify_socket)
    time.sleep(0.5)  # noqa: ASYNC251 -- the point: a synchronous call blocks the event loop
    blocked = received(notify_socket)
    await asyncio.sleep(0.2)
    task.cancel()
    after = received(notify_socket)
    assert len(before) >= 4 and all(m == "WATCHDOG=1" for _, m in before)
    # Not one ping while the loop was blocked (at most the one already sent as it blocked).
    assert len(blocked) <= 1
    assert len(after) >= 2


async def test_until_stopped_is_ready_pings_and_stops_on_sigterm(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 0.05 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    waiting = asyncio.create_task(systemd.until_stopped("test-watchdog"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(waiting, 2.0)
    messages = [m for _, m in received(notify_socket)]
    assert messages[0] == "READY=1"
    assert messages[-1] == "STOPPING=1"
    assert messages[1:-1].count("WATCHDOG=1") >= 3 and set(messages[1:-1]) == {"WATCHDOG=1"}
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "test-watchdog"]
    await asyncio.sleep(0.2)
    assert received(notify_socket) == []  # no ping after STOPPING=1
