"""Phone feature codes: an employee dials a code from their own phone to set their availability.

`parse()` turns the dialled code into a request (pure); the AGI conversation that applies it and
confirms it to the employee lives in `feature_call()`.

  *70          back: available
  *71[MIN]     in a meeting for MIN minutes (default 60)
  *72[MIN]     lunch / away for MIN minutes (default 30)
  *73DDMM      on vacation until the end of DD.MM (this year, or next year if already past)
  *74          off work until the next morning (07:00)
  *75[MIN]     busy for MIN minutes (default 60)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from vaihde.errors import VaihdeError
from vaihde.phrases import CONFIRM_BACK, CONFIRM_SET, NOT_YOURS, REFUSED

if TYPE_CHECKING:
    from vaihde.agi.channel import Channel
    from vaihde.company import CompanyConfig
    from vaihde.company.schema import Employee

log = logging.getLogger("vaihde.flows.feature_codes")

MAX_MINUTES = 24 * 60


class FeatureCodeError(VaihdeError, ValueError):
    """The code cannot be understood; the message is what the employee's log/operator sees."""

    code = "invalid_code"


@dataclass(frozen=True, slots=True)
class FeatureRequest:
    state: str  # a presence State value
    until: datetime | None  # aware; None = until changed
    code: str


_CODE = re.compile(r"^\*7([0-5])([0-9]{0,8})$")


def parse(code: str, now: datetime, tz: str = "Europe/Helsinki") -> FeatureRequest:
    """Interpret a dialled feature code at `now` (aware) in the company's timezone."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    m = _CODE.match(code)
    if not m:
        raise FeatureCodeError(f"not a feature code: {code[:20]!r}")
    kind, digits = m.group(1), m.group(2)
    local_now = now.astimezone(ZoneInfo(tz))

    def minutes(default: int) -> datetime:
        value = int(digits) if digits else default
        if not 1 <= value <= MAX_MINUTES:
            raise FeatureCodeError(f"minutes must be 1-{MAX_MINUTES}, not {value}")
        return now + timedelta(minutes=value)

    def no_digits() -> None:
        if digits:
            raise FeatureCodeError(f"*7{kind} takes no digits")

    if kind == "0":
        no_digits()
        return FeatureRequest("available", None, code)
    if kind == "1":
        return FeatureRequest("meeting", minutes(60), code)
    if kind == "2":
        return FeatureRequest("away", minutes(30), code)
    if kind == "3":
        if len(digits) != 4:
            raise FeatureCodeError("vacation needs the last day as DDMM, e.g. *732411")
        day, month = int(digits[:2]), int(digits[2:])
        try:
            last = date(local_now.year, month, day)
        except ValueError:
            raise FeatureCodeError(f"no such date: {day}.{month}.") from None
        if last < local_now.date():
            try:
                last = date(local_now.year + 1, month, day)
            except ValueError:  # 29.2. in a year without it
                raise FeatureCodeError(f"no such date next year: {day}.{month}.") from None
        end = datetime.combine(last + timedelta(days=1), time(0), ZoneInfo(tz))
        return FeatureRequest("vacation", end, code)
    if kind == "4":
        no_digits()
        tomorrow = local_now.date() + timedelta(days=1)
        return FeatureRequest("off_work", datetime.combine(tomorrow, time(7), ZoneInfo(tz)), code)
    return FeatureRequest("busy", minutes(60), code)


# --- the phone conversation ----------------------------------------------------------------

# Core Asterisk sounds (vaihde.phrases): "activated" / "de-activated" confirm; "pbx-invalid" and
# "im-sorry" refuse.


def confirmation_language(company: CompanyConfig, employee: Employee) -> str:
    """The language an employee hears their feature code confirmed in: their own first one,
    else their company's (Asterisk plays its core sounds in the channel's language, English
    where a sound has no recording in it)."""
    return employee.languages[0] if employee.languages else company.company.language


async def feature_call(
    channel: Channel,
    company_of_device: Callable[[str], CompanyConfig | None],
    set_availability: Callable[[str, FeatureRequest, str], Awaitable[None]],
    *,
    now: datetime,
) -> str:
    """Apply the dialled code for the employee whose phone is calling; returns what happened.
    `company_of_device`: the company whose employee's desk phone or softphone a device is, among
    every company the service answers for.

    The calling device comes from VAIHDE_DEVICE, set only by trusted dialplan, else from the
    channel name (PJSIP/anna-0000002a → PJSIP/anna), which PJSIP authenticated.
    """
    from vaihde.ami.devicestate import device_of_channel

    code = channel.params.get("code", "")
    device = channel.params.get("device") or device_of_channel(channel.name)
    company = company_of_device(device)
    employee = company.employee_by_device(device) if company is not None else None
    if company is None or employee is None:
        log.warning("feature code from an unknown device", extra={"device": device[:80]})
        await channel.stream_file(NOT_YOURS)
        return "unknown-device"
    employee_id = employee.id
    # Their company's language, and its time zone for "until tomorrow 07:00" and dates.
    await channel.set_language(confirmation_language(company, employee))
    try:
        request = parse(code, now, company.company.timezone)
    except FeatureCodeError as exc:
        log.info("feature code refused", extra={"employee": employee_id, "why": str(exc)})
        await channel.stream_file(REFUSED)
        return "invalid-code"
    await channel.confirm_live()  # not behind the employee's back after a stall ("sorry")
    await set_availability(employee_id, request, device)
    await channel.stream_file(CONFIRM_BACK if request.state == "available" else CONFIRM_SET)
    return f"{employee_id}:{request.state}"
