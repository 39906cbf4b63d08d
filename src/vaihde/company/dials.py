"""Dial() strings of the configuration's phones: an employee's devices and a team's members.
Shared by the caller flows (ringing) and the console (transfers), so both ring the same phones.
"""

from __future__ import annotations

from vaihde.company.schema import CompanyConfig, Employee, Team


def device_dials(employee: Employee, mobile_dial: str = "") -> list[tuple[str, int]]:
    """(Dial string, seconds) of an employee's devices in ring order. Mobiles need a trunk
    template (`PJSIP/{number}@trunk`); without one they are left out rather than dialled wrong."""
    out = []
    for device in employee.devices:
        if device.kind == "mobile":
            if mobile_dial:
                out.append((mobile_dial.format(number=device.address.lstrip("+")), device.seconds))
        else:
            out.append((device.address, device.seconds))
    return out


def member_dials(company: CompanyConfig, team: Team, mobile_dial: str = "") -> list[str]:
    """Each member's phones as one `&`-joined Dial() string, in ring order; a phone shared by
    several members is rung once, with the first; members without phones are left out."""
    per_member: list[str] = []
    seen: set[str] = set()
    for member in team.members:
        mine = [d for d, _ in device_dials(company.employees[member], mobile_dial) if d not in seen]
        seen.update(mine)
        if mine:
            per_member.append("&".join(mine))
    return per_member
