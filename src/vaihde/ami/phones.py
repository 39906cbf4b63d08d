"""Phones as Asterisk reports them, shown as their owners' availability: a phone in use shows its
owner "on a call" (while any of their desk phones or softphones is in use), and a phone that
became reachable, unreachable or busy is shown to the consoles at once. Also each employee's
phones and whether they can ring now, as the console and the API list them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from vaihde.ami.queues import Staff
from vaihde.company.dials import Reach, devices_of
from vaihde.presence.cache import PresenceCache
from vaihde.presence.model import Availability


class Phones(Protocol):
    """One Asterisk's device states (DeviceStates) or several merged (MergedDevices)."""

    @property
    def in_use(self) -> Mapping[str, bool]: ...
    def reach(self, device: str) -> Reach: ...
    def add_listener(self, cb: Callable[[str, bool], None]) -> None: ...
    def add_reach_listener(self, cb: Callable[[str, Reach], None]) -> None: ...


class PhonePresence:
    """Listens to `phones` and tells the presence cache and the consoles. Everything it reads
    is looked up when a phone changes: the companies (every company's roster: a phone of any
    company the service answers for), cache and consoles may come later (the service loads
    them at start) or be swapped."""

    def __init__(
        self,
        phones: Phones,
        company: Callable[[], Staff | None],
        presence: Callable[[], PresenceCache | None],
        publish: Callable[[], Callable[[Availability], None] | None],
    ) -> None:
        self.phones = phones
        self.company = company
        self.presence = presence
        self.publish = publish
        phones.add_listener(self.in_use_changed)
        phones.add_reach_listener(self.reach_changed)

    def watched(self) -> list[str]:
        """The configured desk phones and softphones: their state is read at every AMI login."""
        company = self.company()
        return list(devices_of(company)) if company is not None else []

    def in_use_changed(self, device: str, _in_use: bool) -> None:
        """A phone went into or out of a call: its owner is "on a call" while any is in use."""
        company, presence = self.company(), self.presence()
        if company is None or presence is None:
            return
        employee = company.employee_by_device(device)
        if employee is not None:
            busy = any(self.phones.in_use.get(d.address, False)
                       for d in employee.devices if d.kind != "mobile")
            presence.set_on_call(employee.id, busy)

    def reach_changed(self, device: str, _reach: Reach) -> None:
        """A phone became reachable, unreachable or busy: the consoles show it at once."""
        company, presence, publish = self.company(), self.presence(), self.publish()
        if company is None or presence is None or publish is None:
            return
        employee = company.employee_by_device(device)
        if employee is not None:
            publish(presence.lookup(employee.id))

    def device_json(self, employee_id: str) -> list[dict[str, str]]:
        """Each of an employee's phones and whether it can ring now (console, API)."""
        company = self.company()
        employee = company.employees.get(employee_id) if company is not None else None
        if employee is None:
            return []
        return [
            {"kind": d.kind, "dial": d.address,
             "reach": self.phones.reach(d.address).value if d.kind != "mobile" else "unknown"}
            for d in employee.devices
        ]


__all__ = ["PhonePresence", "Phones"]
