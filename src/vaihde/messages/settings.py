"""How messages leave vaihde: the SMTP server and the SMS gateway, read from the `messages:`
section of the service's settings file (parse_messaging) or from a plain mapping.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from vaihde.config import patterns
from vaihde.config.source import ConfigError, Reader, node_from_data
from vaihde.messages.model import EMAIL, RETRY_FOR, SMS

SECURITY = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
SMS_FORMATS = ("json", "form")
SMTP_PASSWORD_ENV = "VAIHDE_SMTP_PASSWORD"
SMS_TOKEN_ENV = "VAIHDE_SMS_TOKEN"
SMS_INBOUND_TOKEN_ENV = "VAIHDE_SMS_INBOUND_TOKEN"
INBOUND_TOKEN_MIN = 16

_HEADER = re.compile(r"^[A-Za-z0-9\-]{1,64}$")
_FIELD = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    from_address: str
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    username: str = ""  # "" = no AUTH
    password: str = field(default="", repr=False)
    from_name: str = ""  # e.g. "Demo Oy vaihde"; "" = the company's name
    timeout_s: float = 30
    attach_max_bytes: int = 5_000_000  # larger recordings are linked or mentioned, not attached
    # Link to a recording in the mail, e.g. https://vaihde.example/messages/{message_id}/recording
    recording_link: str = ""
    # CA certificates (PEM) that sign the server's certificate, for a relay with a certificate
    # of the company's own CA; "" = the system's. The server's certificate is always verified.
    tls_ca_file: str = ""


@dataclass(frozen=True, slots=True)
class SmsSettings:
    url: str
    token: str = field(default="", repr=False)
    token_header: str = "Authorization"
    token_scheme: str = "Bearer"  # header value "Bearer <token>"; "" = the token alone
    format: str = "json"  # json | form
    to_field: str = "to"
    text_field: str = "text"
    sender: str = ""  # the sender name or number the gateway shows; "" = gateway's default
    sender_field: str = "from"
    timeout_s: float = 10
    # The secret the gateway sends with replies to POST /api/v1/sms/inbound (urgent messages'
    # reply codes); "" = that webhook is off.
    inbound_token: str = field(default="", repr=False)
    # Each delivery's own key in this header (the IETF draft's Idempotency-Key): a gateway that
    # honours it sends an SMS once even when it is asked again, as it is when an instance dies
    # between the gateway's answer and recording it (vaihde.db.once). "" = no such header.
    idempotency_header: str = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class MessagingSettings:
    smtp: SmtpSettings | None = None  # None: no e-mail
    sms: SmsSettings | None = None  # None: no SMS
    retry_for: timedelta = RETRY_FOR  # then a delivery is failed
    poll_interval_s: int = 30  # the sender also wakes at once when a message is taken

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels there are settings for: messages are only planned for these."""
        return tuple(
            c for c, s in ((EMAIL, self.smtp), (SMS, self.sms)) if s is not None
        )


def parse_messaging(
    reader: Reader, environ: Mapping[str, str] | None = None
) -> MessagingSettings:
    """Read a `messages:` section (a vaihde.config.source.Reader over it). Problems are added
    to reader.problems (as `file:line: field: what`) and defaults returned, like the other
    sections; the caller raises ConfigError when the list is not empty. Secrets may come from
    $VAIHDE_SMTP_PASSWORD and $VAIHDE_SMS_TOKEN so that the file can be committed."""
    env = os.environ if environ is None else environ
    smtp = _smtp(reader.section("email"), env) if reader.has("email") else None
    sms = _sms(reader.section("sms"), env) if reader.has("sms") else None
    hours = reader.int("retry_for_h", 24, low=1, high=24 * 14)
    poll = reader.int("poll_interval_s", 30, low=1, high=3600)
    reader.done()
    return MessagingSettings(smtp=smtp, sms=sms, retry_for=timedelta(hours=hours),
                             poll_interval_s=poll)


def messaging_from_mapping(
    data: Mapping[str, Any] | None,
    file: str = "<messages>",
    environ: Mapping[str, str] | None = None,
) -> MessagingSettings:
    """The same from plain data (e.g. a JSON document); raises ConfigError listing every
    problem."""
    problems: list[str] = []
    root = node_from_data(dict(data or {}), file, "messages")
    settings = parse_messaging(Reader(root, problems), environ)
    if problems:
        raise ConfigError(problems)
    return settings


def _problem(r: Reader, key: str, message: str) -> None:
    node = r.child(key)
    if node is not None:
        r.error(node, message)
    else:
        r.problems.append(f"{r.where}.{key}: {message}")


def _smtp(r: Reader, env: Mapping[str, str]) -> SmtpSettings:
    host = r.str("host", required=True)
    if host and not patterns.HOST.match(host):
        _problem(r, "host", f"not a host name or address: {host!r}")
    security = r.str("security", "starttls")
    if security not in SECURITY:
        _problem(r, "security", f"must be one of {', '.join(SECURITY)}, not {security!r}")
        security = "starttls"
    port = r.int("port", DEFAULT_PORTS[security], low=1, high=65535)
    username = r.str("username", "")
    password = env.get(SMTP_PASSWORD_ENV) or r.str("password", "")
    if username and not password:
        r.problems.append(f"{r.where}.password: is required with a username (or set "
                          f"{SMTP_PASSWORD_ENV})")
    if password and not username:
        _problem(r, "password", "given without a username")
    from_address = r.str("from", required=True)
    if from_address and not patterns.EMAIL.match(from_address):
        _problem(r, "from", f"not an e-mail address: {from_address!r}")
    from_name = r.str("from_name", "")
    if any(c in from_name for c in "\r\n\0"):
        _problem(r, "from_name", "must be one line")
    timeout = r.int("timeout_s", 30, low=1, high=300)
    attach_max = r.int("attach_max_bytes", 5_000_000, low=0, high=50_000_000)
    link = r.str("recording_link", "")
    if link and (not link.startswith(("https://", "http://")) or "{message_id}" not in link):
        _problem(r, "recording_link", "must be an http(s) URL containing {message_id}")
    ca_file = r.str("tls_ca_file", "")
    if ca_file:
        if not Path(ca_file).is_absolute():
            # Relative to the settings file, like company_file.
            ca_file = str(Path(r.where.file).parent / ca_file)
        if not Path(ca_file).is_file():
            _problem(r, "tls_ca_file", f"no such file: {ca_file}")
        elif security == "none":
            _problem(r, "tls_ca_file", "given with security: none")
    r.done()
    return SmtpSettings(host=host, from_address=from_address, port=port, security=security,
                        username=username, password=password, from_name=from_name,
                        timeout_s=timeout, attach_max_bytes=attach_max, recording_link=link,
                        tls_ca_file=ca_file)


def _sms(r: Reader, env: Mapping[str, str]) -> SmsSettings:
    url = r.str("url", required=True)
    if url and not url.startswith(("https://", "http://")):
        _problem(r, "url", f"must be an http(s) URL, not {url!r}")
    token = env.get(SMS_TOKEN_ENV) or r.str("token", "")
    header = r.str("token_header", "Authorization")
    if not _HEADER.match(header):
        _problem(r, "token_header", f"not an HTTP header name: {header!r}")
    scheme = r.str("token_scheme", "Bearer")
    if scheme and not _HEADER.match(scheme):
        _problem(r, "token_scheme", f"must be one word like Bearer, not {scheme!r}")
    fmt = r.str("format", "json")
    if fmt not in SMS_FORMATS:
        _problem(r, "format", f"must be json or form, not {fmt!r}")
    fields: dict[str, str] = {}
    for key, default in (("to_field", "to"), ("text_field", "text"), ("sender_field", "from")):
        fields[key] = r.str(key, default)
        if not _FIELD.match(fields[key]):
            _problem(r, key, f"not a field name: {fields[key]!r}")
    if len({fields["to_field"], fields["text_field"], fields["sender_field"]}) < 3:
        r.problems.append(f"{r.where}: to_field, text_field and sender_field must differ")
    sender = r.str("sender", "")
    if len(sender) > 64 or any(c in sender for c in "\r\n\0"):
        _problem(r, "sender", "must be one line of at most 64 characters")
    timeout = r.int("timeout_s", 10, low=1, high=120)
    in_file = r.str("inbound_token", "")  # read either way: the environment's wins
    inbound = env.get(SMS_INBOUND_TOKEN_ENV) or in_file
    if inbound and (len(inbound) < INBOUND_TOKEN_MIN or not inbound.isprintable()
                    or " " in inbound):
        words = (f"must be at least {INBOUND_TOKEN_MIN} characters without spaces (a secret "
                 "shared with the gateway)")
        if env.get(SMS_INBOUND_TOKEN_ENV):
            r.problems.append(f"{SMS_INBOUND_TOKEN_ENV}: {words}")
        else:
            _problem(r, "inbound_token", words)
        inbound = ""
    idempotency = r.str("idempotency_header", "Idempotency-Key")
    if idempotency and not _HEADER.match(idempotency):
        _problem(r, "idempotency_header", f"not an HTTP header name: {idempotency!r}")
    r.done()
    return SmsSettings(url=url, token=token, token_header=header, token_scheme=scheme,
                       format=fmt, sender=sender, timeout_s=timeout, inbound_token=inbound,
                       idempotency_header=idempotency,
                       **fields)
