"""A large company file written out in full, for benchmarks and for the tests that check the
YAML limits still let a real company through: every employee has every field a company file
allows (block style, as an admin or an export would write it)."""

from __future__ import annotations

import random

from vaihde.directory.search import FIRST_NAMES, LAST_NAMES

TEAMS = 12


def synthetic_company_yaml(employees: int, seed: int = 1) -> str:
    """A valid company file with `employees` people (at least 3) in up to 12 teams, two
    menus, holidays and exceptions. About 470 bytes and 44 values per employee."""
    rng = random.Random(seed)
    out = [
        "company:",
        "  name: Suuri Oy",
        "  timezone: Europe/Helsinki",
        "  language: fi",
        "  languages: [fi, sv, en]",
        "numbers:",
        '  "+358201000000": {label: Vaihde, menu: main}',
        '  "+358201000001": {label: Support, menu: support, language: en}',
        "hours:",
        "  mon-fri: 08:00-11:30, 12:00-16:30",
        "  sat: 10:00-14:00",
        "  sun: closed",
        "  holidays:",
        "    2026-12-24..2026-12-26: Joulu",
        "    2027-01-01: Uudenvuodenpäivä",
        "  exceptions:",
        "    2026-12-23: {hours: 08:00-12:00, name: Aatonaatto}",
        "  closed_action: {announcement: closed, operator: true}",
        "announcements:",
        "  closed:",
        "    fi: Olemme suljettu.",
        "    sv: Vi har stängt.",
        "    en: We are closed.",
        "menus:",
        "  main:",
        "    greeting: {fi: Tervetuloa, sv: Välkommen, en: Welcome}",
        "    prompt: {fi: Valitse, sv: Välj, en: Choose}",
        "    options:",
        "      1: {team: t01, label: Myynti}",
        "      2: {menu: support}",
        "      3: {language: sv}",
        "      9: {dial_by_name: true}",
        "  support:",
        "    prompt: {fi: Tuki, sv: Support, en: Support}",
        "    options:",
        "      1: {team: t02}",
        "      2: {message: t02}",
        "teams:",
    ]
    teams = max(3, min(TEAMS, employees))
    members: list[list[str]] = [[] for _ in range(teams)]
    ids = [f"e{i:05d}" for i in range(max(3, employees))]
    for i, eid in enumerate(ids):
        members[i if i < teams else rng.randrange(teams)].append(eid)
    for t in range(teams):
        kind = "operators" if t == 0 else "team"
        out += [
            f"  t{t:02d}:",
            f"    name: Tiimi {t}",
            f"    kind: {kind}",
            "    strategy: all",
            f"    members: [{', '.join(members[t][:20])}]",
        ]
        if t:
            out.append(f"    email: tiimi{t}@suuri.example.fi")
    out.append("employees:")
    team_of = {eid: t for t, ids_ in enumerate(members) for eid in ids_}
    for i, eid in enumerate(ids):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        delegate = ids[(i + 1) % len(ids)] if len(ids) > 1 else None
        out += [
            f"  {eid}:",
            f"    name: {first} {last}",
            "    title: Asiantuntija",
            f"    extension: {200000 + i}",
            f'    direct: ["+35820{3000000 + i:07d}"]',
            "    devices:",
            f"      - desk: PJSIP/{eid}",
            f"      - softphone: PJSIP/{eid}-soft",
            f'      - {{mobile: "+35840{5000000 + i:07d}", seconds: 15}}',
            "    strategy: in_order",
            "    ring_seconds: 20",
            f"    teams: [t{team_of[eid]:02d}]",
            *([f"    delegates: [{delegate}]"] if delegate else []),
            "    languages: [fi, sv]",
            f"    email: {eid}@suuri.example.fi",
            f'    sms: "+35840{5000000 + i:07d}"',
            f"    calendar: https://calendar.suuri.example.fi/ics/{eid}.ics",
        ]
    return "\n".join(out) + "\n"
