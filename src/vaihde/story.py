"""A call's story as data: whom the caller sought, through which path, what happened at each step.

The flows add steps while they decide; AMI events add what Asterisk did afterwards (the phone
rang out, was busy, answered); when the caller hangs up the story becomes a contact in the
caller's history. The operator console and messages read stories, never log lines.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("vaihde.story")

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
MAX_STEPS = 100


def clean(value: str, limit: int = 80) -> str:
    """Caller-controlled text (caller ID name…) as plain, bounded text."""
    return _UNSAFE.sub(" ", value)[:limit].strip()


@dataclass(frozen=True, slots=True)
class Step:
    at: datetime
    kind: str  # entered, menu, sought, availability, routed, dial, hangup
    detail: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, **self.detail}


@dataclass(slots=True)
class CallStory:
    call_id: str  # the caller channel's Uniqueid (AGI's agi_uniqueid)
    caller_number: str
    caller_name: str
    dialled: str
    started_at: datetime
    steps: list[Step] = field(default_factory=list)
    sought_kind: str = ""  # employee | team | operator | oncall
    sought_id: str = ""
    path: str = ""  # direct_number | menu_option | extension | dial_by_name | forwarded | operator
    outcome: str = ""  # answered, noanswer, busy, operator, hangup…
    # A call forwarded here from someone's own phone: number, reason (no_answer, busy, …),
    # employee and via (mobile, direct, extension) when it was an employee's, and `text` for
    # people ("for Anna Virtanen, forwarded from their mobile, no answer").
    forwarded: dict[str, str] = field(default_factory=dict)
    company: str = ""  # the id of the company the call belongs to ("" before it is known)

    def add(self, kind: str, at: datetime | None = None, **detail: str) -> None:
        if len(self.steps) >= MAX_STEPS:
            return  # a caller pressing keys for an hour must not grow memory without end
        self.steps.append(
            Step(at or datetime.now(UTC), kind, {k: clean(str(v)) for k, v in detail.items()})
        )

    def seek(self, kind: str, target: str, path: str, **detail: str) -> None:
        self.sought_kind, self.sought_id, self.path = kind, target, path
        # `at` given by position: a detail is never taken for the step's time.
        self.add("sought", None, target=f"{kind}:{target}", path=path, **detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "dialled": self.dialled,
            "company": self.company,
            "started_at": self.started_at.isoformat(),
            "sought": f"{self.sought_kind}:{self.sought_id}" if self.sought_kind else "",
            "path": self.path,
            "outcome": self.outcome,
            "forwarded": dict(self.forwarded) or None,
            "steps": [s.to_dict() for s in self.steps],
        }


Finished = Callable[[CallStory], object]


class StoryBook:
    """Stories of calls in progress (and recently ended), fed by the flows and AMI events."""

    def __init__(self, limit: int = 5000, on_finished: Finished | None = None) -> None:
        self._stories: OrderedDict[str, CallStory] = OrderedDict()
        self.limit = limit
        self.on_finished = on_finished

    def open(
        self, call_id: str, caller_number: str, caller_name: str, dialled: str,
        company: str = "",
    ) -> CallStory:
        story = self._stories.get(call_id)
        if story is None:
            story = CallStory(
                call_id, clean(caller_number, 40), clean(caller_name), dialled,
                datetime.now(UTC), company=company,
            )
            self._stories[call_id] = story
            while len(self._stories) > self.limit:
                self._stories.popitem(last=False)
        return story

    def get(self, call_id: str) -> CallStory | None:
        return self._stories.get(call_id)

    def __len__(self) -> int:
        return len(self._stories)

    def stories(self) -> list[CallStory]:
        """The stories held now, oldest first."""
        return list(self._stories.values())

    def apply(self, event: Mapping[str, Any]) -> None:
        """AMI events of the caller's own channel complete the story (sync: the AMI reader)."""
        name = str(event.get("Event", ""))
        story = self._stories.get(str(event.get("Uniqueid", "")))
        if story is None:
            return
        if name == "DialEnd":
            status = str(event.get("DialStatus", "")).lower()
            story.add("dial", status=status, device=str(event.get("DestChannel", "")))
            story.outcome = "answered" if status == "answer" else status
        elif name == "Hangup":
            story.add("hangup", cause=str(event.get("Cause-txt", "")))
            if not story.outcome:
                story.outcome = "hangup"
            self._stories.pop(story.call_id, None)
            if self.on_finished is not None:
                try:
                    self.on_finished(story)
                except Exception:  # a failing listener must not break the AMI reader
                    log.exception("story listener failed", extra={"call_id": story.call_id})


def describe_path(story: CallStory) -> str:
    """In words, for a message: whom the caller sought and how ("employee anna via menu_option
    main/1")."""
    if not story.sought_kind:
        return story.path
    via = story.path
    for step in reversed(story.steps):
        if step.kind == "sought" and "menu" in step.detail:
            via += f" {step.detail['menu']}/{step.detail.get('key', '')}"
            break
    return f"{story.sought_kind} {story.sought_id} via {via}".strip()
