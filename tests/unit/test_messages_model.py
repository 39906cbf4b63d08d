"""Messages without I/O: sanitising and validation, the delivery plan, status and backoff, the
e-mail and SMS texts, and the messaging settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from vaihde.company.load import parse_company
from vaihde.config.source import ConfigError
from vaihde.db import message_models as mm
from vaihde.messages import model
from vaihde.messages.email import render_email, subject
from vaihde.messages.model import (
    CallbackDraft,
    DeliveryRecord,
    MessageDraft,
    MessageError,
    MessageRecord,
    Outgoing,
    Recipient,
    Target,
    caller_digits,
    clean_line,
    clean_text,
    next_attempt,
    plan_deliveries,
    summary_status,
    validate_callback,
    validate_message,
)
from vaihde.messages.settings import SmsSettings, SmtpSettings, messaging_from_mapping
from vaihde.messages.sms import SMS_MAX, SmsTransport, render_sms

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)  # 12:00 in Helsinki
MIN = timedelta(minutes=1)

COMPANY = parse_company("""
company: {name: Testi Oy, language: fi, languages: [fi, sv, en], timezone: Europe/Helsinki}
numbers: {"0201234567": {label: Main, menu: main}}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus:
  main: {greeting: {fi: Hei}, prompt: {fi: Valitse}, options: {1: {employee: anna}}}
teams:
  operators: {name: Vaihde, kind: operators, members: [asa]}
  sales: {name: Myynti, members: [anna, matti, asa]}
  billing: {name: Laskutus, members: [matti], email: laskutus@example.fi}
employees:
  anna:
    name: Anna Virtanen
    devices: [desk: PJSIP/anna]
    email: anna@example.fi
    sms: "+358401111111"
  matti: {name: Matti Mäkinen, devices: [desk: PJSIP/matti], email: matti@example.fi}
  asa: {name: Åsa Järvinen, devices: [desk: PJSIP/asa]}
""")


def draft(**kw) -> MessageDraft:
    kw.setdefault("recipient", Recipient("employee", "anna"))
    kw.setdefault("caller_number", "+358 40 123 4567")
    return MessageDraft(**kw)


def record(**kw) -> MessageRecord:
    values = {
        "id": 7, "created_at": T0, "recipient": Recipient("employee", "anna"),
        "caller_number": "0401234567", "caller_name": "Matti Meikäläinen", "taken_by": "caller",
        "path": "direct number 0912345 → Anna Virtanen (away)", "note": "Soittakaa takaisin",
        "recording_path": None, "call_id": "1717.1", "language": "fi", "status": "pending",
    }
    values.update(kw)
    return MessageRecord(**values)


def outgoing(message: MessageRecord | None = None, *, language="fi", address="anna@example.fi",
             channel="email", name="Anna Virtanen") -> Outgoing:
    message = message or record()
    delivery = DeliveryRecord(3, message.id, channel, address, "sending", 1, None, "", None)
    return Outgoing(message, delivery, language, "Europe/Helsinki", "Testi Oy", name)


SMTP = SmtpSettings(host="127.0.0.1", from_address="vaihde@example.fi")


# --- sanitising -----------------------------------------------------------------------------


def test_clean_line_removes_line_breaks_controls_and_bidi_overrides():
    assert clean_line("Matti\r\nBcc: evil@example.com", 200) == "Matti Bcc: evil@example.com"
    assert clean_line("  a\x00b\tc\x1b[31m  ", 200) == "a b c [31m"
    assert clean_line("abc\u202edcba", 200) == "abc dcba"
    assert clean_line("x" * 300, 200) == "x" * 200
    assert clean_line("Åsa\u2028Järvinen", 200) == "Åsa Järvinen"


def test_clean_text_keeps_lines_but_not_controls():
    assert clean_text("eka\r\ntoka\rkolmas\n\n\n\nneljäs\x07") == "eka\ntoka\nkolmas\n\nneljäs"
    assert clean_text("  \n a \n") == "a"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("+358 40-123 4567", "358401234567"), ("0401234567", "0401234567"), (None, None),
     ("", None), ("anonymous", None), ("Restricted", None)],
)
def test_caller_digits(raw, expected):
    assert caller_digits(raw) == expected


@pytest.mark.parametrize("raw", ["12", "040abc", "0401234567&PJSIP/x", "1" * 33])
def test_caller_digits_refuses_what_is_not_a_number(raw):
    with pytest.raises(ValueError):
        caller_digits(raw)


# --- validation ---------------------------------------------------------------------------


def test_validate_message_cleans_what_it_keeps():
    clean = validate_message(
        draft(caller_name="Matti\r\nSubject: hi", path="menu 1\n→ Myynti\x00", note=" Hei\r\n"),
        "fi",
    )
    assert clean.caller_number == "358401234567"
    assert clean.caller_name == "Matti Subject: hi"
    assert clean.path == "menu 1\n→ Myynti"
    assert clean.note == "Hei" and clean.language == "fi" and clean.taken_by == "caller"


def test_validate_message_cuts_network_text_but_refuses_a_long_note():
    clean = validate_message(draft(caller_name="N" * 500, path="p" * 5000), "fi")
    assert len(clean.caller_name) == model.NAME_MAX and len(clean.path) == model.PATH_MAX
    with pytest.raises(MessageError) as err:
        validate_message(draft(note="x" * (model.NOTE_MAX + 1)), "fi")
    assert err.value.problems == [f"note: at most {model.NOTE_MAX} characters (2001 given)"]


def test_validate_message_lists_every_problem():
    with pytest.raises(MessageError) as err:
        validate_message(
            MessageDraft(
                recipient=Recipient("room", "x"), caller_number="12ab", taken_by="bad name!",
                recording_path="relative.wav", call_id="a b", language="de",
            ),
            "fi",
        )
    fields = [p.split(":")[0] for p in err.value.problems]
    assert fields == [
        "recipient", "caller_number", "taken_by", "recording_path", "call_id", "language"
    ]


def test_withheld_number_and_operator_taken_message():
    clean = validate_message(draft(caller_number=None, taken_by="olga", language="en"), "fi")
    assert clean.caller_number is None and clean.taken_by == "olga" and clean.language == "en"


def test_validate_callback():
    ok = validate_callback(CallbackDraft("040 123 4567", "  Liisa ", "team", "sales", "asap"))
    assert (ok.caller_number, ok.caller_name, ok.for_kind) == ("0401234567", "Liisa", "team")
    assert validate_callback(CallbackDraft("0401234567")).for_id is None
    with pytest.raises(MessageError) as err:
        validate_callback(CallbackDraft("", for_kind="employee"))
    assert [p.split(":")[0] for p in err.value.problems] == ["caller_number", "for_kind, for_id"]
    with pytest.raises(MessageError):
        validate_callback(CallbackDraft("0401234567", for_kind="room", for_id="x"))


# --- the plan -------------------------------------------------------------------------------


def test_plan_for_an_employee_is_email_and_sms():
    assert plan_deliveries(Recipient("employee", "anna"), COMPANY) == [
        Target("email", "anna@example.fi"), Target("sms", "+358401111111")
    ]
    only_mail = plan_deliveries(Recipient("employee", "anna"), COMPANY, ("email",))
    assert only_mail == [Target("email", "anna@example.fi")]
    assert plan_deliveries(Recipient("employee", "asa"), COMPANY) == []


def test_plan_for_a_team_is_its_email_or_its_members_emails():
    assert plan_deliveries(Recipient("team", "billing"), COMPANY) == [
        Target("email", "laskutus@example.fi")
    ]
    # No team address: each member with an e-mail (no SMS to a whole team).
    assert plan_deliveries(Recipient("team", "sales"), COMPANY) == [
        Target("email", "anna@example.fi"), Target("email", "matti@example.fi")
    ]


def test_plan_for_someone_unknown_is_an_error():
    with pytest.raises(MessageError, match="no employee 'nobody'"):
        plan_deliveries(Recipient("employee", "nobody"), COMPANY)
    with pytest.raises(MessageError, match="no team 'anna'"):
        plan_deliveries(Recipient("team", "anna"), COMPANY)


def test_database_constants_agree_with_the_model():
    assert mm.RECIPIENT_KINDS == model.RECIPIENT_KINDS
    assert mm.CHANNELS == model.CHANNELS
    assert mm.DELIVERY_STATUSES == model.DELIVERY_STATUSES
    assert mm.MESSAGE_STATUSES == model.MESSAGE_STATUSES
    assert mm.CALLBACK_STATUSES == model.CALLBACK_STATUSES


# --- status and retries -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [([], "no_address"), (["pending", "sent"], "pending"), (["sending"], "pending"),
     (["sent", "sent"], "sent"), (["sent", "cancelled"], "sent"), (["sent", "failed"],
     "partly_sent"), (["failed", "cancelled"], "failed"), (["cancelled"], "cancelled"),
     (["retrying", "failed"], "pending")],
)
def test_summary_status(statuses, expected):
    assert summary_status(statuses) == expected


def test_backoff_grows_then_stops_at_the_deadline():
    now = T0
    delays = []
    for attempts in range(1, 30):
        when = next_attempt(attempts, T0, now)
        if when is None:
            break
        delays.append(when - now)
        now = when
    assert delays[:6] == [MIN, 5 * MIN, 15 * MIN, 60 * MIN, 120 * MIN, 240 * MIN]
    assert now == T0 + timedelta(hours=24)  # the last try is on the deadline, then failed
    assert next_attempt(1, T0, T0 + timedelta(hours=24)) is None
    assert next_attempt(1, T0, T0, retry_for=timedelta(seconds=30)) == T0 + timedelta(seconds=30)


# --- e-mail ---------------------------------------------------------------------------------


def parsed(mail):
    return message_from_bytes(mail.as_bytes(), policy=policy.default)


def test_email_in_finnish_with_everything_the_employee_needs():
    mail = parsed(render_email(outgoing(), SMTP))
    assert mail["Subject"] == "Viesti: Matti Meikäläinen, 0401234567 soitti sinulle"
    assert mail["To"].addresses[0].addr_spec == "anna@example.fi"
    assert mail["From"].addresses[0].display_name == "Testi Oy"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_body().get_content()
    assert "2.6.2025 klo 12.00 (Europe/Helsinki)" in body
    assert "Numero: 0401234567" in body
    assert "Tavoitteli: direct number 0912345 → Anna Virtanen (away)" in body
    assert "Viestin otti: soittaja itse (äänite)" in body
    assert "Soittakaa takaisin" in body and "viesti #7" in body


@pytest.mark.parametrize(
    ("language", "expected"),
    [("sv", "Meddelande: Okänt nummer ringde dig"), ("en", "Message: Withheld number called you")],
)
def test_email_subject_in_the_company_language(language, expected):
    message = record(caller_number=None, caller_name="")
    assert subject(outgoing(message, language=language)) == expected


def test_team_email_names_the_team():
    message = record(recipient=Recipient("team", "sales"), taken_by="olga")
    mail = parsed(render_email(outgoing(message, name="Myynti"), SMTP))
    assert mail["Subject"] == "Viesti tiimille Myynti: Matti Meikäläinen, 0401234567 soitti"
    assert "vaihteenhoitaja olga" in mail.get_body().get_content()


def test_header_injection_through_names_is_impossible():
    # Stored names are already clean; the renderer does not rely on it.
    message = record(caller_name="X\r\nBcc: victim@example.com\r\n\r\nbody")
    mail = parsed(render_email(outgoing(message, name="Anna\r\nCc: x@example.com"), SMTP))
    assert mail["Bcc"] is None and mail["Cc"] is None
    assert "\n" not in mail["Subject"]
    with pytest.raises(model.SendError) as err:
        render_email(outgoing(address="anna@example.fi\r\nBcc: victim@example.com"), SMTP)
    assert err.value.permanent


def test_recording_attached_when_small_else_linked_or_mentioned(tmp_path):
    wav = tmp_path / "rec.wav"
    wav.write_bytes(b"RIFF" + b"\0" * 2000)
    mail = parsed(render_email(outgoing(record(recording_path=str(wav))), SMTP))
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "message-7.wav" and part.get_content_type() == "audio/wav"
    assert part.get_content() == wav.read_bytes()

    small = SmtpSettings(host="h", from_address="v@example.fi", attach_max_bytes=1000)
    mail = parsed(render_email(outgoing(record(recording_path=str(wav))), small))
    assert list(mail.iter_attachments()) == []
    assert "liian suuri liitettäväksi (0.0 Mt)" in mail.get_body().get_content()

    linked = SmtpSettings(
        host="h", from_address="v@example.fi", attach_max_bytes=1000,
        recording_link="https://vaihde.example.fi/m/{message_id}",
    )
    mail = parsed(render_email(outgoing(record(recording_path=str(wav))), linked))
    assert "Äänite: https://vaihde.example.fi/m/7" in mail.get_body().get_content()

    gone = record(recording_path=str(tmp_path / "missing.wav"))
    assert "tiedostoa ei löytynyt" in parsed(render_email(outgoing(gone), SMTP)).get_content()


# --- SMS ------------------------------------------------------------------------------------


def test_sms_text_is_short_and_complete():
    text = render_sms(outgoing(channel="sms", address="+358401111111"))
    assert text == (
        "Viesti: Matti Meikäläinen, 0401234567 soitti 2.6.2025 klo 12.00. Soittakaa takaisin"
    )
    long = render_sms(outgoing(record(note="pitkä " * 200, recording_path="/r.wav")))
    assert len(long) == SMS_MAX and long.endswith("… Äänite sähköpostissa.")


def test_sms_request_carries_the_token_and_fields():
    transport = SmsTransport(SmsSettings(url="http://gw/send", token="s3cret", sender="Testi"))
    headers, fields = transport.request(outgoing(channel="sms", address="+358401111111"))
    assert headers == {"Authorization": "Bearer s3cret",
                       "Idempotency-Key": f"vaihde-7-3-{int(T0.timestamp() * 1_000_000)}"}
    assert fields["to"] == "+358401111111" and fields["from"] == "Testi"
    assert fields["text"].startswith("Viesti:")
    bare = SmsTransport(SmsSettings(url="http://gw", token="t", token_header="X-Token",
                                    token_scheme="", idempotency_header=""))
    assert bare.request(outgoing())[0] == {"X-Token": "t"}
    assert "s3cret" not in repr(transport.settings)


def attempt(item: Outgoing, n: int, delivery_id: int = 3) -> Outgoing:
    """The same delivery claimed again (attempt n), or another delivery of the message."""
    d = item.delivery
    again = DeliveryRecord(delivery_id, d.message_id, d.channel, d.address, "sending", n, None,
                           "", None)
    return Outgoing(item.message, again, item.language, item.timezone, item.company_name,
                    item.recipient_name)


def test_an_sms_asked_again_carries_the_same_idempotency_key():
    """Taken over after its instance died between the gateway's answer and recording it: a
    gateway that honours the key sends it once. Another delivery, or the same ids in another
    database (another time), has another key."""
    transport = SmsTransport(SmsSettings(url="http://gw/send", idempotency_header="X-Request"))
    first = outgoing(channel="sms", address="+358401111111")
    key = transport.request(first)[0]["X-Request"]
    assert transport.request(attempt(first, 2))[0]["X-Request"] == key
    assert transport.request(attempt(first, 1, delivery_id=4))[0]["X-Request"] != key
    later = outgoing(record(created_at=T0 + timedelta(days=1)), channel="sms")
    assert transport.request(later)[0]["X-Request"] != key


def test_an_email_sent_again_has_the_same_message_id():
    first = outgoing()
    mail_id = parsed(render_email(first, SMTP))["Message-ID"]
    assert mail_id.startswith("<vaihde-message-7-3-") and mail_id.endswith("@example.fi>")
    assert parsed(render_email(attempt(first, 2), SMTP))["Message-ID"] == mail_id
    assert parsed(render_email(attempt(first, 1, delivery_id=4), SMTP))["Message-ID"] != mail_id


# --- settings -------------------------------------------------------------------------------


def test_messaging_settings_from_a_mapping():
    settings = messaging_from_mapping(
        {
            "email": {"host": "smtp.example.fi", "security": "ssl", "username": "vaihde",
                      "from": "vaihde@example.fi", "from_name": "Testi Oy vaihde"},
            "sms": {"url": "https://sms.example/send", "format": "form", "to_field": "number"},
            "retry_for_h": 48,
        },
        environ={"VAIHDE_SMTP_PASSWORD": "pw", "VAIHDE_SMS_TOKEN": "tok"},
    )
    assert settings.smtp is not None and settings.sms is not None
    assert (settings.smtp.port, settings.smtp.password) == (465, "pw")
    assert settings.sms.token == "tok" and settings.sms.format == "form"
    assert settings.retry_for == timedelta(hours=48)
    assert settings.channels == ("email", "sms")
    assert "pw" not in repr(settings)
    assert messaging_from_mapping({}, environ={}).channels == ()


def test_messaging_settings_errors_name_each_field():
    with pytest.raises(ConfigError) as err:
        messaging_from_mapping(
            {
                "email": {"host": "bad host", "security": "tls", "from": "nobody",
                          "username": "u", "colour": "red"},
                "sms": {"url": "ftp://x", "format": "xml", "timeout_s": 0,
                        "idempotency_header": "Idempotency Key"},
            },
            file="settings.yaml",
            environ={},
        )
    problems = err.value.problems
    assert all(p.startswith("settings.yaml:1: messages.") for p in problems), problems
    for expected in (
        "messages.email.host: not a host name", "messages.email.security: must be one of",
        "messages.email.password: is required with a username",
        "messages.email.from: not an e-mail address", "messages.email.colour: unknown setting",
        "messages.sms.url: must be an http(s) URL", "messages.sms.format: must be json or form",
        "messages.sms.timeout_s: must be from 1 to 120",
        "messages.sms.idempotency_header: not an HTTP header name",
    ):
        assert any(expected in p for p in problems), (expected, problems)


def test_tls_ca_file_must_exist_and_is_relative_to_the_settings_file(tmp_path):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    email = {"host": "smtp.example.fi", "from": "v@example.fi", "tls_ca_file": "ca.pem"}
    settings = messaging_from_mapping({"email": email}, file=str(tmp_path / "s.yaml"), environ={})
    assert settings.smtp is not None and settings.smtp.tls_ca_file == str(tmp_path / "ca.pem")
    with pytest.raises(ConfigError, match="tls_ca_file: no such file"):
        messaging_from_mapping({"email": {**email, "tls_ca_file": "/nonexistent/ca.pem"}},
                               environ={})
