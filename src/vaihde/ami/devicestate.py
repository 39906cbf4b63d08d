"""Which phones can ring and which are in use, from Asterisk itself: DeviceStateChange events,
ContactStatus events (PJSIP registrations and qualify), and at every (re)connect the
DeviceStateList action plus a DEVICE_STATE() look at each configured phone. The source of "on a
call" that nobody has to set by hand, and of "that softphone is off, do not ring it".

PJSIPShowContacts would list registrations too, but it needs the `system` write class, which
vaihde's AMI user deliberately lacks; the endpoint's device state says the same (a PJSIP endpoint
without a reachable contact is UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from vaihde.company.dials import Reach

log = logging.getLogger("vaihde.ami.devicestate")

# Asterisk's ast_device_state names. Ringing alone is not yet a call; RINGINUSE is (a second call
# ringing while one is up).
IN_USE = frozenset({"INUSE", "BUSY", "RINGINUSE", "ONHOLD"})
UNREACHABLE = frozenset({"UNAVAILABLE", "INVALID"})
_REACHABLE = frozenset({"NOT_INUSE", "RINGING"})
# ContactStatus values that mean "this contact can be called" / "it cannot".
CONTACT_UP = frozenset({"reachable", "nonqualified", "created", "updated"})
CONTACT_DOWN = frozenset({"unreachable", "removed"})

Listener = Callable[[str, bool], None]
ReachListener = Callable[[str, Reach], None]
StateListener = Callable[[str, str], None]


def reach_of(state: str | None) -> Reach:
    """An Asterisk device state name as Reach (None or UNKNOWN: not known)."""
    if state is None:
        return Reach.UNKNOWN
    state = state.upper()
    if state in IN_USE:
        return Reach.IN_USE
    if state in UNREACHABLE:
        return Reach.UNREACHABLE
    if state in _REACHABLE:
        return Reach.REACHABLE
    return Reach.UNKNOWN


def tell(listeners: Iterable[Callable[..., object]], device: str, *value: Any) -> None:
    """Call each listener with (device, *value)."""
    for cb in listeners:
        try:
            cb(device, *value)
        except Exception:  # a listener's bug must not stop the AMI reader
            log.exception("device state listener failed", extra={"device": device})


class _Client(Protocol):
    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> Any: ...
    def add_event_listener(self, cb: Callable[[Mapping[str, Any]], None]) -> None: ...
    def add_on_connected(self, hook: Callable[[Any], Any]) -> None: ...


class DeviceStates:
    """Device name (e.g. PJSIP/anna) → its Asterisk state; `reach(device)` for routing.

    `in_use` listeners hear (device, in_use) when a phone goes into or out of a call;
    `reach` listeners hear (device, Reach) whenever what `reach` returns changes. `watch`
    names the devices to look at on every (re)connect, even if Asterisk has not cached a state
    for them yet (the configured desk phones and softphones).
    """

    def __init__(self, watch: Callable[[], Iterable[str]] | None = None) -> None:
        self.states: dict[str, str] = {}
        self.in_use: dict[str, bool] = {}
        self.watch = watch
        # PJSIP endpoint → contact URI → ContactStatus (lower case), from ContactStatus events.
        self._contacts: dict[str, dict[str, str]] = {}
        self._listeners: list[Listener] = []
        self._reach_listeners: list[ReachListener] = []
        self._state_listeners: list[StateListener] = []

    def add_listener(self, cb: Listener) -> None:
        self._listeners.append(cb)

    def add_reach_listener(self, cb: ReachListener) -> None:
        self._reach_listeners.append(cb)

    def add_state_listener(self, cb: StateListener) -> None:
        """Hears (device, state) at every change of a device's state (several Asterisks'
        states are merged from these: vaihde.ami.cluster)."""
        self._state_listeners.append(cb)

    def reach(self, device: str) -> Reach:
        return reach_of(self.states.get(device))

    def contacts(self, device: str) -> dict[str, str]:
        """A PJSIP device's contacts as last reported (URI → status), if ContactStatus events
        reach vaihde (the AMI user reads the `system` class)."""
        if not device.startswith("PJSIP/"):
            return {}
        return dict(self._contacts.get(device[6:], {}))

    def _set(self, device: str, state: str) -> None:
        state = state.upper()
        before = self.states.get(device)
        if before == state:
            return
        self.states[device] = state
        tell(self._state_listeners, device, state)
        busy = state in IN_USE
        if self.in_use.get(device) != busy:
            self.in_use[device] = busy
            tell(self._listeners, device, busy)
        reach = reach_of(state)
        if reach_of(before) is not reach:
            tell(self._reach_listeners, device, reach)

    def apply(self, event: Mapping[str, Any]) -> None:
        name = str(event.get("Event", "")).lower()
        if name == "devicestatechange":
            device, state = event.get("Device"), event.get("State")
            if isinstance(device, str) and isinstance(state, str) and device:
                self._set(device, state)
        elif name == "contactstatus":
            self._contact(event)

    def _contact(self, event: Mapping[str, Any]) -> None:
        endpoint, uri = event.get("EndpointName"), event.get("URI")
        status = str(event.get("ContactStatus", "")).lower()
        if not isinstance(endpoint, str) or not endpoint or not isinstance(uri, str):
            return
        contacts = self._contacts.setdefault(endpoint, {})
        if status == "removed":
            contacts.pop(uri, None)
        else:
            contacts[uri] = status
        if not contacts:
            del self._contacts[endpoint]
        device = f"PJSIP/{endpoint}"
        current = self.states.get(device)
        # The endpoint's device state follows in its own event; this only gets there first
        # (and never overrides "in use": a call in progress says more than a registration).
        if any(s in CONTACT_UP for s in contacts.values()):
            if current is None or current.upper() in UNREACHABLE:
                self._set(device, "NOT_INUSE")
        elif status in CONTACT_DOWN and (current is None or current.upper() not in IN_USE):
            self._set(device, "UNAVAILABLE")

    async def resync(self, client: _Client) -> None:
        response = await client.action({"Action": "DeviceStateList"})
        seen = set()
        for event in getattr(response, "events", ()):
            device, state = event.get("Device"), event.get("State")
            if isinstance(device, str) and isinstance(state, str):
                seen.add(device)
                self._set(device, state)
        watched = [d for d in (self.watch() if self.watch is not None else ()) if d not in seen]
        seen.update(watched)
        await self.look(client, watched)
        # Known before, but Asterisk (restarted?) no longer knows them: not in use, reach
        # unknown (rung) until it says more.
        for device in [d for d in self.states if d not in seen]:
            self._set(device, "UNKNOWN")

    async def look(self, client: _Client, devices: Iterable[str]) -> None:
        """Ask Asterisk for these devices' states now (DEVICE_STATE() through Getvar: a
        PJSIP endpoint nobody has called yet has no cached state to list)."""

        async def one(device: str) -> None:
            try:
                variable = f"DEVICE_STATE({device})"
                got = await client.action({"Action": "Getvar", "Variable": variable})
            except Exception as exc:  # one odd device must not fail the whole resync
                log.warning("device state not read", extra={"device": device, "error": repr(exc)})
                return
            value = got.get("Value") if hasattr(got, "get") else None
            if isinstance(value, str) and value:
                self._set(device, value)

        unique = list(dict.fromkeys(devices))
        for start in range(0, len(unique), 100):  # bounded: Asterisk runs them one by one
            await asyncio.gather(*(one(d) for d in unique[start:start + 100]))

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
