"""E-mail delivery: the mail for a message in the company's language (render_email) and an SMTP
transport (stdlib smtplib in a worker thread: STARTTLS, SSL or plain, optional AUTH).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from vaihde.messages.model import (
    TAKEN_BY_CALLER,
    Outgoing,
    SendError,
    caller_label,
    clean_line,
    local_time,
)
from vaihde.messages.settings import SmtpSettings

SUBJECT_MAX = 150

TEXTS: dict[str, dict[str, str]] = {
    "fi": {
        "subject_employee": "Viesti: {caller} soitti sinulle",
        "subject_team": "Viesti tiimille {team}: {caller} soitti",
        "hello": "Hei {name},",
        "intro": "{caller} soitti {time} ja jätti viestin.",
        "intro_team": "{caller} soitti {time} ja jätti viestin tiimille {team}.",
        "caller": "Soittaja",
        "number": "Numero",
        "time": "Aika",
        "tried": "Tavoitteli",
        "taken_by": "Viestin otti",
        "by_caller": "soittaja itse (äänite)",
        "by_operator": "vaihteenhoitaja {who}",
        "language": "Soittajan kieli",
        "note": "Viesti",
        "no_note": "(ei kirjoitettua viestiä)",
        "recording": "Äänite",
        "attached": "liitteenä ({file})",
        "too_large": "liian suuri liitettäväksi ({size} Mt); tallessa vaihteessa (viesti #{id})",
        "missing": "tiedostoa ei löytynyt vaihteesta (viesti #{id})",
        "footer": "{company} – vaihde, viesti #{id}",
        "withheld": "Tuntematon numero",
        "lang_fi": "suomi",
        "lang_sv": "ruotsi",
        "lang_en": "englanti",
    },
    "sv": {
        "subject_employee": "Meddelande: {caller} ringde dig",
        "subject_team": "Meddelande till {team}: {caller} ringde",
        "hello": "Hej {name},",
        "intro": "{caller} ringde {time} och lämnade ett meddelande.",
        "intro_team": "{caller} ringde {time} och lämnade ett meddelande till {team}.",
        "caller": "Uppringare",
        "number": "Nummer",
        "time": "Tid",
        "tried": "Sökte",
        "taken_by": "Meddelandet togs av",
        "by_caller": "uppringaren själv (inspelning)",
        "by_operator": "telefonist {who}",
        "language": "Uppringarens språk",
        "note": "Meddelande",
        "no_note": "(inget skrivet meddelande)",
        "recording": "Inspelning",
        "attached": "bifogad ({file})",
        "too_large": "för stor att bifoga ({size} MB); sparad i växeln (meddelande #{id})",
        "missing": "filen hittades inte i växeln (meddelande #{id})",
        "footer": "{company} – växeln, meddelande #{id}",
        "withheld": "Okänt nummer",
        "lang_fi": "finska",
        "lang_sv": "svenska",
        "lang_en": "engelska",
    },
    "en": {
        "subject_employee": "Message: {caller} called you",
        "subject_team": "Message for {team}: {caller} called",
        "hello": "Hello {name},",
        "intro": "{caller} called on {time} and left a message.",
        "intro_team": "{caller} called on {time} and left a message for {team}.",
        "caller": "Caller",
        "number": "Number",
        "time": "Time",
        "tried": "Tried to reach",
        "taken_by": "Taken by",
        "by_caller": "the caller (recording)",
        "by_operator": "operator {who}",
        "language": "Caller's language",
        "note": "Message",
        "no_note": "(no written message)",
        "recording": "Recording",
        "attached": "attached ({file})",
        "too_large": "too large to attach ({size} MB); kept at the switchboard (message #{id})",
        "missing": "the file was not found at the switchboard (message #{id})",
        "footer": "{company} switchboard, message #{id}",
        "withheld": "Withheld number",
        "lang_fi": "Finnish",
        "lang_sv": "Swedish",
        "lang_en": "English",
    },
}


def _texts(language: str) -> dict[str, str]:
    return TEXTS.get(language, TEXTS["en"])


def subject(item: Outgoing) -> str:
    """The subject line: one line whatever the caller's name held (no header injection)."""
    t = _texts(item.language)
    caller = clean_line(caller_label(item.message, item.language), 120)
    team = clean_line(item.recipient_name, 80)
    key = "subject_team" if item.message.recipient.kind == "team" else "subject_employee"
    return clean_line(t[key].format(caller=caller, team=team), SUBJECT_MAX)


def _recording_line(item: Outgoing, settings: SmtpSettings) -> tuple[str, Path | None]:
    """The recording's line in the body, and the file to attach (None: nothing to attach)."""
    t = _texts(item.language)
    message = item.message
    if not message.recording_path:
        return "", None
    path = Path(message.recording_path)
    link = settings.recording_link.format(message_id=message.id) if settings.recording_link else ""
    try:
        size = path.stat().st_size
    except OSError:
        return link or t["missing"].format(id=message.id), None
    if size <= settings.attach_max_bytes:
        return t["attached"].format(file=_attachment_name(item, path)), path
    if link:
        return link, None
    return t["too_large"].format(size=f"{size / 1e6:.1f}", id=message.id), None


def _attachment_name(item: Outgoing, path: Path) -> str:
    suffix = path.suffix.lower() if path.suffix.lower() in (".wav", ".gsm", ".mp3") else ".wav"
    return f"message-{item.message.id}{suffix}"


def render_email(item: Outgoing, settings: SmtpSettings) -> EmailMessage:
    """The whole mail, with the recording attached when it exists and is small enough.
    Reads the recording file: call it off the event loop."""
    t = _texts(item.language)
    message = item.message
    caller = caller_label(message, item.language)
    when = local_time(message.created_at, item.timezone, item.language)
    team = message.recipient.kind == "team"
    lines = [
        t["hello"].format(name=item.recipient_name),
        "",
        t["intro_team" if team else "intro"].format(caller=caller, time=when,
                                                    team=item.recipient_name),
        "",
        f"{t['caller']}: {message.caller_name or '-'}",
        f"{t['number']}: {message.caller_number or t['withheld']}",
        f"{t['time']}: {when} ({item.timezone})",
    ]
    if message.path:
        lines.append(f"{t['tried']}: {message.path}")
    taken = (t["by_caller"] if message.taken_by == TAKEN_BY_CALLER
             else t["by_operator"].format(who=message.taken_by))
    lines.append(f"{t['taken_by']}: {taken}")
    if message.language and message.language != item.language:
        lines.append(f"{t['language']}: {t.get('lang_' + message.language, message.language)}")
    lines += ["", f"{t['note']}:", message.note or t["no_note"]]
    recording, attach = _recording_line(item, settings)
    if recording:
        lines += ["", f"{t['recording']}: {recording}"]
    lines += ["", "-- ", t["footer"].format(company=item.company_name, id=message.id)]

    mail = EmailMessage()
    from_name = clean_line(settings.from_name or item.company_name, 100)
    # Address objects quote display names: a name with ',', ':' or '<' stays one name.
    mail["From"] = Address(display_name=from_name, addr_spec=settings.from_address)
    try:
        mail["To"] = Address(display_name=clean_line(item.recipient_name, 100),
                             addr_spec=item.delivery.address)
    except (ValueError, IndexError) as exc:
        raise SendError(f"not an e-mail address: {item.delivery.address!r}",
                        permanent=True) from exc
    mail["Subject"] = subject(item)
    mail["Date"] = format_datetime(message.created_at)
    # The same for every attempt of this delivery: a copy sent again after a takeover (an
    # instance that died between the server's 250 and recording it) is recognisably the same
    # mail to the servers and mail programs that drop repeats. The message's time keeps it
    # unique when ids start again in a new database.
    taken_us = int(message.created_at.timestamp() * 1_000_000)
    mail["Message-ID"] = (f"<vaihde-message-{message.id}-{item.delivery.id}-{taken_us}"
                          f"@{settings.from_address.rpartition('@')[2]}>")
    # Tells vacation responders not to answer a machine.
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content("\n".join(lines) + "\n")
    if attach is not None:
        try:
            data = attach.read_bytes()
        except OSError:
            pass  # gone since stat(): the mail still goes, the body names the message id
        else:
            subtype = {"wav": "wav", "gsm": "gsm", "mp3": "mpeg"}.get(
                attach.suffix.lower().lstrip("."), "wav")
            mail.add_attachment(data, maintype="audio", subtype=subtype,
                                filename=_attachment_name(item, attach))
    return mail


class EmailTransport:
    """Sends one delivery's mail through the configured SMTP server. Never blocks the event
    loop: building the mail (reading the recording) and the SMTP dialogue run in a thread."""

    channel = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, item: Outgoing) -> None:
        """Raises SendError (permanent when the server refused the address or the content)."""
        await asyncio.to_thread(self._send_sync, item)

    async def close(self) -> None:
        """Nothing to release: each send has its own connection."""

    def _tls(self) -> ssl.SSLContext:
        # Verified against the system's CAs or the configured ones; never unverified.
        return ssl.create_default_context(cafile=self.settings.tls_ca_file or None)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=self._tls())
        return smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)

    def _send_sync(self, item: Outgoing) -> None:
        self._send_mail_sync(render_email(item, self.settings), [item.delivery.address])

    async def send_mail(self, mail: EmailMessage, to: list[str]) -> None:
        """Any other mail (a company's daily summary) to `to`, in a worker thread; the same
        SendError as a message's."""
        await asyncio.to_thread(self._send_mail_sync, mail, to)

    def _send_mail_sync(self, mail: EmailMessage, to: list[str]) -> None:
        s = self.settings
        try:
            with self._connect() as smtp:
                smtp.ehlo()
                if s.security == "starttls":
                    smtp.starttls(context=self._tls())
                    smtp.ehlo()
                if s.username:
                    smtp.login(s.username, s.password)
                smtp.send_message(mail, from_addr=s.from_address, to_addrs=to)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{c} {_text(m)}" for c, m in exc.recipients.values())
            raise SendError(f"SMTP refused the recipient: {detail}",
                            permanent=all(c >= 500 for c in codes)) from None
        except smtplib.SMTPDataError as exc:
            # 5xx on the content (too large, rejected as spam) will be refused again.
            raise SendError(f"SMTP refused the mail: {exc.smtp_code} {_text(exc.smtp_error)}",
                            permanent=exc.smtp_code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            # Sender refused, authentication failed…: the settings are wrong, not the message;
            # retried so that nothing is lost while the admin fixes them.
            raise SendError(f"SMTP error: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise SendError(f"SMTP server {s.host}:{s.port}: {exc} "
                            f"(security: {s.security})") from None
        except ssl.SSLError as exc:
            raise SendError(f"TLS with SMTP server {s.host}:{s.port} failed: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"SMTP server {s.host}:{s.port} not reachable: "
                            f"{type(exc).__name__}: {exc}") from None


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return clean_line(text, 300)
