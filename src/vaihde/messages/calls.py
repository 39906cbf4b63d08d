"""Messages and callback requests that callers leave in the menus (vaihde.flows.answering):
where Asterisk records the message, and storing it with what the call's story says (who called,
whom they sought and how), committed before the caller hears that it was taken.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.company.schema import CompanyConfig
from vaihde.flows.answering import Recording
from vaihde.messages.model import CHANNELS, CallbackDraft, MessageDraft, Recipient
from vaihde.messages.store import take_callback, take_message
from vaihde.story import CallStory, describe_path

log = logging.getLogger("vaihde.messages")


class CallMessages:
    """What the call flows store: `store_message` and `store_callback` answer True once the
    request is committed, False (logged) if it could not be, so that the caller then reaches a
    person instead of hearing something untrue. `taken` runs after a message is stored (the
    sender's wake)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        company: Callable[[], CompanyConfig],
        *,
        recordings: Path,
        asterisk_recordings: str,
        channels: Iterable[str] = CHANNELS,
        taken: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.company = company
        self.recordings = recordings
        self.asterisk_recordings = asterisk_recordings.rstrip("/")
        self.channels = tuple(channels)
        self.taken = taken

    def recording_for(self, call_id: str) -> Recording:
        """A message recording's place: a directory both the service and Asterisk can reach
        (each by its own path; the prompts' `recordings/`)."""
        name = "msg-" + "".join(c for c in call_id if c.isalnum() or c in ".-")[:40]
        name += datetime.now(UTC).strftime("-%Y%m%dT%H%M%S")
        return Recording(
            asterisk_path=f"{self.asterisk_recordings}/{name}",
            host_path=str(self.recordings / f"{name}.wav"),
        )

    async def store_message(
        self, story: CallStory, kind: str, target: str, recording_path: str | None
    ) -> bool:
        """Stored and committed before the caller is told so; False if it could not be."""
        draft = MessageDraft(
            Recipient(kind=kind, id=target), caller_number=story.caller_number or None,
            caller_name=story.caller_name, path=describe_path(story),
            recording_path=recording_path, call_id=story.call_id,
        )
        try:
            await take_message(self.sessions, draft, self.company(), channels=self.channels)
        except Exception as exc:  # the caller then reaches a person: say so in the log
            log.error("message not stored", extra={"call_id": story.call_id, "error": repr(exc)})
            return False
        if self.taken is not None:
            self.taken()
        return True

    async def store_callback(self, story: CallStory, kind: str, target: str) -> bool:
        if not story.caller_number.isdigit():
            return False  # a withheld number cannot be called back: a person helps instead
        draft = CallbackDraft(
            story.caller_number, caller_name=story.caller_name, for_kind=kind, for_id=target,
            call_id=story.call_id,
        )
        try:
            await take_callback(self.sessions, draft)
        except Exception as exc:
            log.error("callback not stored", extra={"call_id": story.call_id, "error": repr(exc)})
            return False
        return True


__all__ = ["CallMessages"]
