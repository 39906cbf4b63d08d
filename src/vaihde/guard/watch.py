"""Which AGI sessions is Asterisk waiting on, and since when: a pure state machine fed with AMI
events (Newexten, AGIExecStart, AGIExecEnd, Hangup, Rename) and a clock.

Asterisk emits AGIExecStart when it starts a command the service sent and AGIExecEnd when the
command is done (res/res_agi.c, agi_handle_command). Between an AGIExecEnd (or the AGI
application starting) and the next AGIExecStart, Asterisk is waiting for the service: that is
the only time the service can hold a caller in silence. While a command runs (a prompt plays,
Asterisk waits for the caller's keys) the wait is Asterisk's own and bounded by the command.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The dialplan's AGI applications; other applications mean the channel left the AGI session.
AGI_APPLICATIONS = frozenset({"agi", "eagi"})


@dataclass(frozen=True, slots=True)
class Stalled:
    """A session Asterisk has waited on too long: send `channel` to `context`,T,1."""

    uniqueid: str
    channel: str
    context: str
    waited_s: float


@dataclass(slots=True)
class _Session:
    channel: str
    context: str
    # Since when Asterisk waits for the service's next command (a monotonic time); None while
    # Asterisk itself runs a command, or while we do not know (after a resync).
    waiting_since: float | None
    rescued: bool = False


def _s(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    return value if isinstance(value, str) else ""


class AgiWatch:
    """Follows the AGI sessions of the given dialplan contexts."""

    def __init__(self, stall_s: float, contexts: Iterable[str], agi_url: str | None = None) -> None:
        """`agi_url`: follow only the sessions whose AGI() URL starts with it (the one instance
        this guard stands in for, when several share the Asterisks); None: every session."""
        if stall_s <= 0:
            raise ValueError("stall_s must be positive")
        self.stall_s = stall_s
        self.contexts = frozenset(contexts)
        self.agi_url = agi_url
        self._sessions: dict[str, _Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def waiting(self, uniqueid: str) -> float | None:
        session = self._sessions.get(uniqueid)
        return session.waiting_since if session is not None else None

    def event(self, event: Mapping[str, Any], now: float) -> bool:
        """Apply one AMI event; True when Asterisk has just begun waiting for the service."""
        name = _s(event, "Event")
        uid = _s(event, "Uniqueid")
        if not uid:
            return False
        if name == "Newexten":
            return self._newexten(uid, event, now)
        session = self._sessions.get(uid)
        if session is None:
            return False
        began = False
        if name == "AGIExecStart":
            session.waiting_since = None
        elif name == "AGIExecEnd":
            session.waiting_since = now
            began = True
        elif name == "Hangup":
            del self._sessions[uid]
            return False
        channel = _s(event, "Channel")
        if name == "Rename":
            channel = _s(event, "Newname") or channel
        if channel:
            session.channel = channel
        return began

    def _newexten(self, uid: str, event: Mapping[str, Any], now: float) -> bool:
        application = _s(event, "Application").lower()
        context = _s(event, "Context")
        if (application in AGI_APPLICATIONS and context in self.contexts
                and (self.agi_url is None or _s(event, "AppData").startswith(self.agi_url))):
            # The AGI application starts: Asterisk connects and waits for the first command.
            self._sessions[uid] = _Session(_s(event, "Channel"), context, now)
            return True
        # Any other application: the channel has left its AGI session.
        self._sessions.pop(uid, None)
        return False

    def resync(self, channels: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild from CoreShowChannel entries after (re)connecting to AMI. A channel found in
        an AGI session is followed from its next event on; until then we cannot tell a prompt
        playing from a stalled service, and a rescue on a guess could cut a caller's prompt."""
        found: dict[str, _Session] = {}
        for entry in channels:
            uid = _s(entry, "Uniqueid")
            application = _s(entry, "Application").lower()
            context = _s(entry, "Context")
            ours = self.agi_url is None or _s(entry, "ApplicationData").startswith(self.agi_url)
            if uid and application in AGI_APPLICATIONS and context in self.contexts and ours:
                old = self._sessions.get(uid)
                found[uid] = old or _Session(_s(entry, "Channel"), context, None)
        self._sessions = found

    def next_due(self) -> float | None:
        """The earliest time at which a session becomes stalled, if any is being waited on."""
        times = [s.waiting_since for s in self._sessions.values()
                 if s.waiting_since is not None and not s.rescued]
        return min(times) + self.stall_s if times else None

    def due(self, now: float) -> list[Stalled]:
        """Sessions stalled at `now`; each is returned once (it is then being rescued)."""
        out = []
        for uid, s in self._sessions.items():
            if s.rescued or s.waiting_since is None:
                continue
            waited = now - s.waiting_since
            if waited >= self.stall_s:
                s.rescued = True
                out.append(Stalled(uid, s.channel, s.context, waited))
        return out

    def rescue_failed(self, uniqueid: str, now: float, retry_s: float = 0.5) -> None:
        """The redirect did not happen (AMI down, an action error): try again in `retry_s`."""
        session = self._sessions.get(uniqueid)
        if session is not None and session.waiting_since is not None:
            session.rescued = False
            session.waiting_since = now - self.stall_s + retry_s
