"""A finished call joins its caller's contact history: the call's story (whom they sought, the
path they took, how it ended) stored as a contact when the caller hangs up, off the AMI reader.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vaihde.directory.store import add_contact
from vaihde.jobs import Background
from vaihde.story import CallStory

log = logging.getLogger("vaihde.directory")


async def save_story(sessions: async_sessionmaker[AsyncSession], story: CallStory) -> None:
    """Store a finished call as a contact; a failure is logged, never raised (history is worth
    keeping, but never at a caller's expense)."""
    try:
        async with sessions() as session, session.begin():
            await add_contact(
                session, direction="in",
                # Withheld or odd caller IDs are still a contact, just without a number.
                caller_number=story.caller_number if story.caller_number.isdigit() else None,
                path=story.path or "menu", outcome=story.outcome[:40],
                employee_id=story.sought_id if story.sought_kind == "employee" else None,
                call_id=story.call_id, details=story.to_dict(), at=story.started_at,
            )
    except Exception as exc:
        log.warning("contact not saved", extra={"call_id": story.call_id, "error": repr(exc)})


class ContactHistory:
    """`finished` is the StoryBook's on_finished hook: it stores the story in the background."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], jobs: Background) -> None:
        self.sessions = sessions
        self.jobs = jobs

    def finished(self, story: CallStory) -> None:
        self.jobs.spawn(save_story(self.sessions, story), "vaihde-contact")


__all__ = ["ContactHistory", "save_story"]
