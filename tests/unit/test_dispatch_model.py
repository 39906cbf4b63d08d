"""Message dispatch decisions without I/O: the rota an urgent message escalates along, who is
texted next (the recipient, then those on call in order, each once), reply codes and how a reply
is read, the urgent SMS, when the daily summary is due, which messages it lists and what it says;
the tables' status lists agree with the model's; the company file's dispatch settings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from vaihde.company import ConfigError, parse_company
from vaihde.db import dispatch_models as dm
from vaihde.dispatch import model
from vaihde.dispatch.model import (
    CODE_ALPHABET,
    SummaryLine,
    escalation_rota,
    new_code,
    next_step,
    parse_reply,
    render_summary,
    summary_day,
    summary_window,
    urgent_sms,
)
from vaihde.messages.model import Recipient

HEL = ZoneInfo("Europe/Helsinki")
BASE = """
company: {name: Testi Oy, language: fi, timezone: Europe/Helsinki}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus: {main: {greeting: {fi: Hei}, prompt: {fi: Valitse}, options: {1: {employee: anna}}}}
teams:
  ops: {name: Vaihde, kind: operators, members: [asa]}
  support: {name: Tuki, members: [anna, mikko, pekka]}
employees:
  anna: {name: Anna Virtanen, devices: [desk: PJSIP/anna], sms: "+358401111111"}
  mikko: {name: Mikko Mäki, devices: [desk: PJSIP/mikko], sms: "0402222222"}
  pekka: {name: Pekka Puu, devices: [desk: PJSIP/pekka]}
  asa: {name: Åsa Järvinen, devices: [desk: PJSIP/asa], sms: "+358403333333"}
"""
ONCALL = """
oncall:
  tuki: {name: Tuen päivystys, team: support, weekly: [{days: mon-sun, hours: 08:00-16:00,
         people: [mikko, pekka, anna]}, {days: mon-sun, hours: 16:00-08:00, people: [asa]}]}
"""
COMPANY = parse_company(BASE + ONCALL, "company.yaml")
MON_NOON = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # Monday 12:00 in Helsinki
MON_EVENING = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)  # 18:00


def test_the_tables_know_the_same_statuses_as_the_model():
    assert dm.DISPATCH_STATUSES == model.DISPATCH_STATUSES
    assert dm.STEP_STATUSES == model.STEP_STATUSES
    assert dm.SUMMARY_STATUSES == model.SUMMARY_STATUSES


def test_the_rota_is_the_wanted_one_then_the_recipients_teams():
    anna = Recipient(kind="employee", id="anna")
    assert escalation_rota(COMPANY, anna) == "tuki"  # anna is in support, whose rota it is
    assert escalation_rota(COMPANY, Recipient(kind="team", id="support")) == "tuki"
    assert escalation_rota(COMPANY, anna, "support") == "tuki"  # a rule naming the team
    assert escalation_rota(COMPANY, Recipient(kind="employee", id="asa")) == ""
    assert escalation_rota(COMPANY, Recipient(kind="employee", id="asa"), "tuki") == "tuki"
    # One company-wide rota is everyone's.
    general = parse_company(BASE + """
oncall: {yleinen: {name: Päivystys, weekly: [{days: mon-sun, hours: 00:00-24:00,
         people: [mikko]}]}}
""", "c.yaml")
    assert escalation_rota(general, Recipient(kind="employee", id="asa")) == "yleinen"


def test_next_is_the_recipient_then_those_on_call_in_order_each_once():
    anna = Recipient(kind="employee", id="anna")
    first = next_step(COMPANY, anna, "tuki", [], MON_NOON)
    assert (first.employee, first.address) == ("anna", "+358401111111")
    second = next_step(COMPANY, anna, "tuki", ["anna"], MON_NOON)
    assert (second.employee, second.address) == ("mikko", "0402222222")
    third = next_step(COMPANY, anna, "tuki", ["anna", "mikko"], MON_NOON)
    assert (third.employee, third.address) == ("pekka", "")  # no SMS number: skipped
    assert next_step(COMPANY, anna, "tuki", ["anna", "mikko", "pekka"], MON_NOON).exhausted
    # In the evening someone else is on call.
    assert next_step(COMPANY, anna, "tuki", ["anna"], MON_EVENING).employee == "asa"
    # A team's message starts with whoever is on call; no rota: nobody after the recipient.
    assert next_step(COMPANY, Recipient(kind="team", id="support"), "tuki", [],
                     MON_NOON).employee == "mikko"
    assert next_step(COMPANY, anna, "", ["anna"], MON_NOON).exhausted


def test_codes_are_from_the_unambiguous_alphabet_and_replies_are_read_leniently():
    codes = {new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 6 and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert parse_reply("K7QX4M") == "K7QX4M"
    assert parse_reply("ok k7qx4m, hoidan") == "K7QX4M"
    assert parse_reply("K7QX4M K7QX4M") == "K7QX4M"
    assert parse_reply("kiitos") is None
    assert parse_reply("K7QX4M ja A3C4D6") is None  # two codes: which one is a guess
    assert parse_reply("K7QX4MX") is None  # not a code of its own
    assert parse_reply("K0QX4M") is None  # 0 is not in the alphabet
    assert parse_reply("x" * 2000 + " K7QX4M") is None
    assert parse_reply(None) is None  # type: ignore[arg-type]


def test_the_urgent_sms_keeps_its_code_whatever_the_note():
    at = datetime(2026, 6, 1, 9, 5, tzinfo=UTC)
    text = urgent_sms(company="Testi Oy", caller="Matti, 0401234567", note="Vesivahinko!",
                      created_at=at, code="K7QX4M", language="fi", timezone="Europe/Helsinki")
    assert text == ("KIIREELLINEN viesti (Testi Oy): Matti, 0401234567 soitti 1.6.2026 klo "
                    "12.05. Vesivahinko! Kuittaa vastaamalla K7QX4M.")
    long = urgent_sms(company="Testi Oy", caller="Matti", note="x" * 1000, created_at=at,
                      code="K7QX4M", language="en", timezone="UTC")
    assert len(long) == 320 and long.endswith("… Confirm by replying K7QX4M.")
    huge = urgent_sms(company="T" * 300, caller="M", note="n", created_at=at, code="K7QX4M",
                      language="sv", timezone="UTC")
    assert len(huge) <= 320 and huge.endswith("Kvittera genom att svara K7QX4M.")


def test_the_summary_is_due_from_its_time_and_lists_each_message_once():
    assert summary_day(datetime(2026, 6, 1, 13, 59, tzinfo=UTC), HEL, "17:00") == \
        date(2026, 5, 31)  # 16:59 local: yesterday's is the latest due
    assert summary_day(datetime(2026, 6, 1, 14, 0, tzinfo=UTC), HEL, "17:00") == \
        date(2026, 6, 1)
    start, end = summary_window(date(2026, 6, 1), HEL, "17:00")
    assert (start, end) == (datetime(2026, 5, 31, 14, 0, tzinfo=UTC),
                            datetime(2026, 6, 1, 14, 0, tzinfo=UTC))
    following, _ = summary_window(date(2026, 6, 2), HEL, "17:00")
    assert following == end  # windows meet: no message falls between two summaries
    # Over the autumn daylight-saving change the window is 25 hours of wall-clock 17:00 to 17:00.
    a, b = summary_window(date(2026, 10, 25), HEL, "17:00")
    assert (b - a).total_seconds() == 25 * 3600


def test_the_summary_text_says_for_whom_from_whom_and_the_urgent_state():
    start, end = summary_window(date(2026, 6, 1), HEL, "17:00")
    lines = [
        SummaryLine(2, datetime(2026, 6, 1, 10, 0, tzinfo=UTC), "Mikko Mäki", "Withheld number",
                    "", "confirmed by Mikko Mäki 2026-06-01 13:05"),
        SummaryLine(1, datetime(2026, 6, 1, 8, 0, tzinfo=UTC), "Anna Virtanen",
                    "Matti, 0401234567", "Soita takaisin\ntänään", ""),
    ]
    subject, text = render_summary(company="Testi Oy", language="en", timezone="Europe/Helsinki",
                                   day=date(2026, 6, 1), start=start, end=end, lines=lines)
    assert subject == "Messages 2026-06-01: 2 (Testi Oy)"
    assert text.index("#1 ") < text.index("#2 ")  # oldest first
    assert "  For: Anna Virtanen\n  Caller: Matti, 0401234567\n  Soita takaisin\n  tänään" in text
    assert "  Urgent: confirmed by Mikko Mäki 2026-06-01 13:05" in text
    assert text.count("Urgent:") == 1
    _, empty = render_summary(company="Testi Oy", language="fi", timezone="Europe/Helsinki",
                              day=date(2026, 6, 1), start=start, end=end, lines=[])
    assert "Ei viestejä." in empty


def test_the_company_file_sets_the_time_limit_and_the_summary():
    assert COMPANY.profile.urgent_confirm_minutes == 10  # the default
    assert COMPANY.profile.summary_to == () and COMPANY.profile.summary_at == "17:00"
    given = parse_company(BASE + """
profile: {urgent_confirm_minutes: 5, summary_to: [pomo@testi.fi], summary_at: "7:30"}
""", "c.yaml")
    assert given.profile.urgent_confirm_minutes == 5
    assert given.profile.summary_to == ("pomo@testi.fi",) and given.profile.summary_at == "07:30"
    assert given.to_document()["profile"] == {"summary_at": "07:30",
                                              "summary_to": ["pomo@testi.fi"],
                                              "urgent_confirm_minutes": 5}
    with pytest.raises(ConfigError) as caught:
        parse_company(BASE + """
profile: {urgent_confirm_minutes: 0, summary_to: [pomo], summary_at: "24:00"}
""", "c.yaml")
    problems = str(caught.value)
    assert "c.yaml:15: profile.urgent_confirm_minutes: must be from 1 to 1440, not 0" in problems
    assert "c.yaml:15: profile.summary_to[0]: is not an e-mail address" in problems
    assert "c.yaml:15: profile.summary_at: must be a time of day like 17:00" in problems


def test_the_webhooks_secret_is_read_from_the_settings_or_the_environment():
    from vaihde.config.source import ConfigError as SettingsError
    from vaihde.messages.settings import messaging_from_mapping

    sms = {"url": "https://gw.example/sms", "inbound_token": "s" * 16}
    assert messaging_from_mapping({"sms": sms}, environ={}).sms.inbound_token == "s" * 16
    env = {"VAIHDE_SMS_INBOUND_TOKEN": "e" * 20}
    assert messaging_from_mapping({"sms": sms}, environ=env).sms.inbound_token == "e" * 20
    assert messaging_from_mapping({"sms": {"url": "https://gw.example/sms"}},
                                  environ={}).sms.inbound_token == ""  # the webhook is off
    with pytest.raises(SettingsError) as short:
        messaging_from_mapping({"sms": {**sms, "inbound_token": "short"}}, "s.yaml", environ={})
    assert str(short.value).startswith("s.yaml:1: messages.sms.inbound_token: must be at least "
                                       "16 characters")
