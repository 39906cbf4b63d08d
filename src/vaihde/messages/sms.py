"""SMS delivery through an HTTP gateway: the text for a message (render_sms, at most 320
characters) and a transport that POSTs it as JSON or a form with a token header.
"""

from __future__ import annotations

import aiohttp

from vaihde.messages.model import Outgoing, SendError, caller_label, clean_line, local_time
from vaihde.messages.settings import SmsSettings

SMS_MAX = 320  # two concatenated SMS; gateways bill per part

TEXTS = {
    "fi": {"intro": "Viesti: {caller} soitti {time}.", "recording": "Äänite sähköpostissa.",
           "no_note": "Ei kirjoitettua viestiä."},
    "sv": {"intro": "Meddelande: {caller} ringde {time}.", "recording": "Inspelningen i e-posten.",
           "no_note": "Inget skrivet meddelande."},
    "en": {"intro": "Message: {caller} called {time}.", "recording": "Recording in your e-mail.",
           "no_note": "No written message."},
}
# Gateway answers that mean "not now" rather than "never": retried like 5xx.
_RETRY_4XX = (408, 425, 429)


def delivery_key(item: Outgoing) -> str:
    """The same for every attempt of one delivery, and no other: the message's and the
    delivery's ids and when the message was taken (ids start again in a new database)."""
    taken = int(item.message.created_at.timestamp() * 1_000_000)
    return f"vaihde-{item.message.id}-{item.delivery.id}-{taken}"


def render_sms(item: Outgoing, limit: int = SMS_MAX) -> str:
    """One line of at most `limit` characters; the note is shortened (with …) to fit."""
    t = TEXTS.get(item.language, TEXTS["en"])
    message = item.message
    head = t["intro"].format(caller=caller_label(message, item.language),
                             time=local_time(message.created_at, item.timezone, item.language))
    tail = f" {t['recording']}" if message.recording_path else ""
    note = clean_line(message.note, limit) if message.note else t["no_note"]
    room = limit - len(head) - len(tail) - 1
    if room < 10:
        return clean_line(head + tail, limit)
    if len(note) > room:
        note = note[: room - 1].rstrip() + "…"
    return f"{head} {note}{tail}"


class SmsTransport:
    """POSTs one SMS per delivery to the gateway: 2xx sent; other 4xx refused for good (bad
    number, bad request: retrying cannot help); 5xx, 408/429, timeouts and connection errors
    are retried."""

    channel = "sms"

    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    def request(self, item: Outgoing) -> tuple[dict[str, str], dict[str, str]]:
        """The headers and the fields of the gateway request."""
        return self._request(item.delivery.address, render_sms(item), delivery_key(item))

    def _request(self, to: str, text: str, key: str) -> tuple[dict[str, str], dict[str, str]]:
        s = self.settings
        headers = {}
        if s.token:
            headers[s.token_header] = f"{s.token_scheme} {s.token}" if s.token_scheme else s.token
        if s.idempotency_header and key:
            headers[s.idempotency_header] = key
        fields = {s.to_field: to, s.text_field: text}
        if s.sender:
            fields[s.sender_field] = s.sender
        return headers, fields

    async def send(self, item: Outgoing) -> None:
        """Raises SendError (permanent for a 4xx answer)."""
        await self._post(*self.request(item))

    async def send_text(self, to: str, text: str, key: str) -> None:
        """Any other text (an urgent message's reply code): `key` the same for every attempt of
        this one SMS, so a gateway that honours the idempotency header sends it once."""
        await self._post(*self._request(to, text, key))

    async def _post(self, headers: dict[str, str], fields: dict[str, str]) -> None:
        s = self.settings
        as_json = s.format == "json"
        try:
            async with self._client().post(
                s.url, headers=headers, allow_redirects=False,
                json=fields if as_json else None, data=None if as_json else fields,
            ) as response:
                if 200 <= response.status < 300:
                    return
                detail = clean_line(await response.text(errors="replace"), 200)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The token is never in these messages: only the URL and the error.
            why = f"SMS gateway not reachable: {type(exc).__name__}: {exc}"
            raise SendError(why[:500]) from None
        status = response.status
        permanent = 400 <= status < 500 and status not in _RETRY_4XX
        raise SendError(f"SMS gateway answered {status}: {detail}", permanent=permanent)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
