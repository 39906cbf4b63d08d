"""Which phones are in use, from Asterisk's own device states (DeviceStateChange events and the
DeviceStateList action): the source of "on a call" that nobody has to set by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger("vaihde.ami.devicestate")

# Asterisk's ast_device_state names. Ringing alone is not yet a call; RINGINUSE is (a second call
# ringing while one is up).
IN_USE = frozenset({"INUSE", "BUSY", "RINGINUSE", "ONHOLD"})

Listener = Callable[[str, bool], None]


class _Client(Protocol):
    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> Any: ...
    def add_event_listener(self, cb: Callable[[Mapping[str, Any]], None]) -> None: ...
    def add_on_connected(self, hook: Callable[[Any], Any]) -> None: ...


class DeviceStates:
    """Device name (e.g. PJSIP/anna) → in use; listeners hear only real changes."""

    def __init__(self) -> None:
        self.in_use: dict[str, bool] = {}
        self._listeners: list[Listener] = []

    def add_listener(self, cb: Listener) -> None:
        self._listeners.append(cb)

    def _set(self, device: str, state: str) -> None:
        busy = state.upper() in IN_USE
        if self.in_use.get(device) == busy:
            return
        self.in_use[device] = busy
        for cb in self._listeners:
            try:
                cb(device, busy)
            except Exception:  # a listener's bug must not stop the AMI reader
                log.exception("device state listener failed", extra={"device": device})

    def apply(self, event: Mapping[str, Any]) -> None:
        if str(event.get("Event", "")).lower() != "devicestatechange":
            return
        device, state = event.get("Device"), event.get("State")
        if isinstance(device, str) and isinstance(state, str) and device:
            self._set(device, state)

    async def resync(self, client: _Client) -> None:
        response = await client.action({"Action": "DeviceStateList"})
        seen = set()
        for event in getattr(response, "events", ()):
            device, state = event.get("Device"), event.get("State")
            if isinstance(device, str) and isinstance(state, str):
                seen.add(device)
                self._set(device, state)
        for device in [d for d in self.in_use if d not in seen]:
            self._set(device, "NOT_INUSE")

    def attach(self, client: _Client) -> None:
        client.add_event_listener(self.apply)
        client.add_on_connected(self.resync)


def device_of_channel(channel: str) -> str:
    """`PJSIP/anna-0000002a` → `PJSIP/anna`; `Local/anna@ctx-00000001;2` → `Local/anna@ctx`."""
    name = channel.split(";", 1)[0]
    head, sep, tail = name.rpartition("-")
    if sep and len(tail) == 8 and all(c in "0123456789abcdef" for c in tail):
        return head
    return name
