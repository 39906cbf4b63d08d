"""The decisions of message dispatch, pure: whose on-call rota an urgent message escalates along,
who is texted next, the reply code and how a reply is read, the urgent SMS text, and when the
daily summary is due and what it says. No I/O: the company, the instant and the rows come in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from vaihde.company.fields import clock_minutes
from vaihde.company.oncall import on_call
from vaihde.company.schema import CompanyConfig
from vaihde.messages.model import Recipient, clean_line, local_time

DispatchStatus = Literal["open", "confirmed", "exhausted"]
DISPATCH_STATUSES: tuple[str, ...] = get_args(DispatchStatus)
StepStatus = Literal["pending", "sending", "sent", "retrying", "failed", "skipped"]
STEP_STATUSES: tuple[str, ...] = get_args(StepStatus)
SummaryStatus = Literal["sending", "sent", "retrying", "failed", "empty"]
SUMMARY_STATUSES: tuple[str, ...] = get_args(SummaryStatus)

# Reply codes: letters and digits that cannot be misread for one another (no 0/O, 1/I/L, 5/S,
# 2/Z, 8/B); 6 of 25 make 244 million codes, so a guess hits an open one with odds of about
# (open codes) / 244e6, and the webhook needs the shared secret besides.
CODE_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"
CODE_LENGTH = 6
_CODE = re.compile(rf"\b([{CODE_ALPHABET}]{{{CODE_LENGTH}}})\b")
REPLY_MAX = 1600  # ten concatenated SMS: more is no reply to us
SMS_MAX = 320


def new_code(choice: Callable[[str], str] = secrets.choice) -> str:
    """A fresh reply code, like "K7QX4M"."""
    return "".join(choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def parse_reply(text: str) -> str | None:
    """The reply code in an SMS reply ("ok k7qx4m", "K7QX4M kuittaan"), or None: no code, or
    more than one different code (which one was meant is a guess)."""
    if not isinstance(text, str) or len(text) > REPLY_MAX:
        return None
    found = set(_CODE.findall(text.upper()))
    return found.pop() if len(found) == 1 else None


# --- whom to text --------------------------------------------------------------------------


def escalation_rota(company: CompanyConfig, recipient: Recipient, wanted: str = "") -> str:
    """The on-call rota an urgent message for `recipient` escalates along ("" = none).

    `wanted` (the operator's choice, or an urgent rule's contact) wins when it is a rota; then
    the rota of the recipient team, or of the recipient employee's first team that has one;
    then a company-wide rota (team "") if there is exactly one.
    """
    if wanted and wanted in company.oncall:
        return wanted
    if wanted and recipient.kind == "employee" and wanted in company.teams:
        # An urgent rule naming a team: that team's rota.
        recipient = Recipient(kind="team", id=wanted)
    teams: list[str] = []
    if recipient.kind == "team":
        teams = [recipient.id]
    else:
        employee = company.employees.get(recipient.id)
        teams = list(employee.teams) if employee is not None else []
    for team in teams:
        for rota in company.oncall.values():
            if rota.team == team:
                return rota.id
    general = [r.id for r in company.oncall.values() if not r.team]
    return general[0] if len(general) == 1 else ""


@dataclass(frozen=True, slots=True)
class NextStep:
    """Who is texted next (`employee`, with `address` "" when they have no SMS number: then
    skipped at once), or nobody left (`employee` None)."""

    employee: str | None
    address: str = ""

    @property
    def exhausted(self) -> bool:
        return self.employee is None


def next_step(
    company: CompanyConfig,
    recipient: Recipient,
    rota: str,
    tried: Sequence[str],
    at: datetime,
) -> NextStep:
    """The next person to text an urgent message: first the employee it was taken for, then
    whoever is on call on `rota` at `at` in the rota's order, each person once (`tried`)."""
    candidates: list[str] = []
    if recipient.kind == "employee":
        candidates.append(recipient.id)
    if rota and rota in company.oncall:
        candidates += on_call(company.oncall[rota], company.zone, at).people
    for person in candidates:
        if person in tried:
            continue
        employee = company.employees.get(person)
        address = ""
        if employee is not None and employee.sms:
            address = employee.sms.replace(" ", "").replace("-", "")
        return NextStep(person, address)
    return NextStep(None)


# --- what is said --------------------------------------------------------------------------

URGENT_TEXTS = {
    "fi": {"intro": "KIIREELLINEN viesti ({company}): {caller} soitti {time}.",
           "confirm": "Kuittaa vastaamalla {code}"},
    "sv": {"intro": "BRÅDSKANDE meddelande ({company}): {caller} ringde {time}.",
           "confirm": "Kvittera genom att svara {code}"},
    "en": {"intro": "URGENT message ({company}): {caller} called {time}.",
           "confirm": "Confirm by replying {code}"},
}


def urgent_sms(
    *, company: str, caller: str, note: str, created_at: datetime, code: str, language: str,
    timezone: str, limit: int = SMS_MAX,
) -> str:
    """The urgent SMS: who called when, the message (shortened with … to fit) and the reply
    code, which is never cut off."""
    t = URGENT_TEXTS.get(language, URGENT_TEXTS["en"])
    head = clean_line(t["intro"].format(company=company, caller=caller,
                                        time=local_time(created_at, timezone, language)), 200)
    tail = t["confirm"].format(code=code) + "."
    body = clean_line(note, limit)
    room = limit - len(head) - len(tail) - 2
    if room < 10:  # a long company or caller name: the code still fits
        return f"{head[: limit - len(tail) - 1].rstrip()} {tail}"
    if len(body) > room:
        body = body[: room - 1].rstrip() + "…"
    return f"{head} {body} {tail}" if body else f"{head} {tail}"


# --- the daily summary ---------------------------------------------------------------------


def summary_day(now: datetime, zone: ZoneInfo, at: str) -> date:
    """The local date of the latest summary due at or before `now`: today once the company's
    clock has passed `at` (like "17:00"), else yesterday."""
    local = now.astimezone(zone)
    minutes = clock_minutes(at)
    today_due = _local_instant(local.date(), minutes, zone)
    return local.date() if now >= today_due else local.date() - timedelta(days=1)


def _local_instant(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)


def summary_window(day: date, zone: ZoneInfo, at: str) -> tuple[datetime, datetime]:
    """The messages a day's summary lists: those taken from the previous day's summary time up
    to (not including) this day's, so that every message is in exactly one summary."""
    minutes = clock_minutes(at)
    return (_local_instant(day - timedelta(days=1), minutes, zone).astimezone(UTC),
            _local_instant(day, minutes, zone).astimezone(UTC))


@dataclass(frozen=True, slots=True)
class SummaryLine:
    """One message in the summary."""

    id: int
    created_at: datetime
    recipient: str  # the name of whom it was for
    caller: str  # "Matti Meikäläinen, 0401234567" or "Withheld number"
    note: str
    urgent: str  # "" (not urgent), or its state in words


SUMMARY_TEXTS = {
    "fi": {"subject": "Viestit {day}: {n} kpl ({company})",
           "intro": "{company}: vaihteen ottamat viestit {start} – {end}.",
           "none": "Ei viestejä.", "for": "Kenelle", "from": "Soittaja", "urgent": "Kiireellinen",
           "day": "{d.day}.{d.month}.{d.year}"},
    "sv": {"subject": "Meddelanden {day}: {n} st ({company})",
           "intro": "{company}: meddelanden tagna av växeln {start} – {end}.",
           "none": "Inga meddelanden.", "for": "Till", "from": "Uppringare",
           "urgent": "Brådskande", "day": "{d.day}.{d.month}.{d.year}"},
    "en": {"subject": "Messages {day}: {n} ({company})",
           "intro": "{company}: messages taken by the switchboard {start} – {end}.",
           "none": "No messages.", "for": "For", "from": "Caller", "urgent": "Urgent",
           "day": "{d.year}-{d.month:02d}-{d.day:02d}"},
}

URGENT_STATES = {
    "fi": {"open": "odottaa kuittausta", "confirmed": "kuittasi {who} {time}",
           "exhausted": "kukaan ei kuitannut"},
    "sv": {"open": "väntar på kvittering", "confirmed": "kvitterat av {who} {time}",
           "exhausted": "ingen kvitterade"},
    "en": {"open": "awaiting confirmation", "confirmed": "confirmed by {who} {time}",
           "exhausted": "nobody confirmed"},
}


def urgent_state_text(
    status: str, language: str, *, who: str = "", at: datetime | None = None,
    timezone: str = "UTC",
) -> str:
    """An urgent message's state in words for the summary."""
    t = URGENT_STATES.get(language, URGENT_STATES["en"])
    when = local_time(at, timezone, language) if at is not None else ""
    return t.get(status, status).format(who=who, time=when).strip()


def render_summary(
    *, company: str, language: str, timezone: str, day: date, start: datetime, end: datetime,
    lines: Iterable[SummaryLine],
) -> tuple[str, str]:
    """The summary mail's subject and text: one block per message, oldest first."""
    t = SUMMARY_TEXTS.get(language, SUMMARY_TEXTS["en"])
    items = sorted(lines, key=lambda x: (x.created_at, x.id))
    subject = clean_line(t["subject"].format(day=t["day"].format(d=day), n=len(items),
                                             company=company), 150)
    out = [t["intro"].format(company=company, start=local_time(start, timezone, language),
                             end=local_time(end, timezone, language)), ""]
    if not items:
        out.append(t["none"])
    for item in items:
        out.append(f"#{item.id} {local_time(item.created_at, timezone, language)}")
        out.append(f"  {t['for']}: {item.recipient}")
        out.append(f"  {t['from']}: {item.caller}")
        if item.urgent:
            out.append(f"  {t['urgent']}: {item.urgent}")
        if item.note:
            out.extend(f"  {line}" for line in item.note.splitlines())
        out.append("")
    return subject, "\n".join(out).rstrip() + "\n"


def names(company: CompanyConfig) -> Mapping[str, str]:
    """Employee and team names by id, for texts."""
    return {**{t.id: t.name for t in company.teams.values()},
            **{e.id: e.name for e in company.employees.values()}}
