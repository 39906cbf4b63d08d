"""The answering service on the phone: a caller leaves a message after the tone, or asks to be
called back. The message is stored before the caller hears that it was taken; if it cannot be
stored, the caller is taken to a person instead of being told something untrue. 0 during the
instructions or the confirmation takes the caller to the switchboard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vaihde.agi.channel import Channel
from vaihde.agi.protocol import AgiHangup
from vaihde.phrases import CALLBACK_TAKEN, MESSAGE_SAVED, RECORD_INTRO, phrase

log = logging.getLogger("vaihde.flows.answering")

MAX_MESSAGE_MS = 180_000  # three minutes is plenty for a switchboard message
SILENCE_ENDS_S = 5  # this much silence ends the recording

Speak = Callable[[str, str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Recording:
    """Where Asterisk writes the recording and where the service reads it."""

    asterisk_path: str  # without extension, as RECORD FILE takes it
    host_path: str  # the .wav the message points at


# What the service provides: store the message / callback, return True once committed.
StoreMessage = Callable[[str, str, str | None], Awaitable[bool]]  # kind, id, recording path
StoreCallback = Callable[[str, str], Awaitable[bool]]  # kind, id


OPERATOR_KEY = "0"


@dataclass(frozen=True, slots=True)
class Taken:
    """How taking a message or a callback request went."""

    stored: bool  # committed to the database
    zero: bool = False  # the caller pressed 0: they want a person (instead, or as well)


async def _say(channel: Channel, speak: Speak | None, key: str, language: str,
               fallback: str) -> str | None:
    """Say the phrase `key`; returns the key that interrupted it (only 0 does)."""
    sound = await speak(phrase(language, key), language) if speak else None
    return await channel.stream_file(sound or fallback, OPERATOR_KEY)


async def leave_message(
    channel: Channel,
    recipient_kind: str,
    recipient_id: str,
    recording: Recording,
    store: StoreMessage,
    *,
    speak: Speak | None,
    language: str,
) -> Taken:
    """Record after the tone and store. Not stored: the caller must then reach a person; 0
    during the instructions: nothing is recorded, the caller wants a person."""
    hung_up = False
    try:
        if await _say(channel, speak, "message.intro", language, RECORD_INTRO) == OPERATOR_KEY:
            return Taken(False, zero=True)
        await channel.record_file(
            recording.asterisk_path, "wav", "#", MAX_MESSAGE_MS, beep=True,
            silence_s=SILENCE_ENDS_S,
        )
    except AgiHangup:
        hung_up = True  # hanging up is how many callers end a message: keep it
    if not hung_up:
        try:
            await channel.confirm_live()
        except AgiHangup:
            # The service stalled while the caller recorded and the session is gone: Asterisk
            # took them to the operators (or they hung up) without hearing it was taken.
            log.warning("message not stored: its session ended while the service stalled",
                        extra={"uniqueid": channel.uniqueid, "recording": recording.host_path})
            raise
    stored = await store(recipient_kind, recipient_id, recording.host_path)
    if hung_up:
        if not stored:
            log.error("message of a caller who hung up could not be stored",
                      extra={"uniqueid": channel.uniqueid, "recording": recording.host_path})
        raise AgiHangup("caller hung up after leaving a message")
    zero = False
    if stored:
        zero = await _say(channel, speak, "message.saved", language, MESSAGE_SAVED) == OPERATOR_KEY
    return Taken(stored, zero)


async def request_callback(
    channel: Channel,
    kind: str,
    target: str,
    store: StoreCallback,
    *,
    speak: Speak | None,
    language: str,
) -> Taken:
    await channel.confirm_live()  # the key may have been read after a stall: not behind a rescue
    if not await store(kind, target):
        return Taken(False)
    zero = await _say(channel, speak, "callback.taken", language, CALLBACK_TAKEN) == OPERATOR_KEY
    return Taken(True, zero)


@dataclass(frozen=True, slots=True)
class Answering:
    """What the flows need from the service to take messages and callback requests."""

    recording_for: Callable[[str], Recording]  # call id → where its recording goes
    store_message: StoreMessage
    store_callback: StoreCallback
