"""Asterisk Manager Interface (AMI) client: a supervised session with login, pings,
reconnects, actions and a never-blocking event stream."""

# panoramisk's Message.from_line parses each AMI message; the connection, framing, action
# bookkeeping and supervision are ours, because panoramisk's Manager and AMIProtocol get
# those wrong for a long-running service (see _AmiProtocol).

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from panoramisk.message import Message

from vaihde.jobs import RECANCEL_S, until_set

__all__ = [
    "AmiActionError", "AmiAuthError", "AmiClient", "AmiConnectError", "AmiError", "AmiMessage",
    "AmiNotConnected", "AmiRefused", "AmiResponse", "AmiTimeout", "ConnectedHook", "EventListener",
    "StateListener"
]

log = logging.getLogger("vaihde.ami")

# An AMI event or response. Header lookups are case-insensitive (panoramisk's Message).
# Values are str, except that a header repeated within one message (ChanVariable, Output)
# becomes a list[str] -- hence Any rather than str.
AmiMessage = Mapping[str, Any]
EventListener = Callable[[AmiMessage], object]
StateListener = Callable[[bool], object]
ConnectedHook = Callable[["AmiClient"], Awaitable[object]]

_EOM = b"\r\n\r\n"
_BANNER_PREFIX = "Asterisk Call Manager/"
# A peer that never terminates a message must not make us buffer without limit.
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_LISTENER_LOG_EVERY = 10.0  # seconds between tracebacks from one failing listener


class AmiError(Exception):
    """Base class of every error this module raises."""


class AmiAuthError(AmiError):
    """Asterisk refused the login."""


class AmiConnectError(AmiError):
    """No AMI session could be established (refused, unreachable, timed out, not AMI)."""


class AmiNotConnected(AmiError):
    """There is no logged-in session, or it ended (or the client closed) before the reply."""


class AmiRefused(AmiError):
    """The service will not use this Asterisk (an on_connected hook said why: e.g. its
    systemname); the session is dropped and tried again later."""


class AmiTimeout(AmiError):
    """Asterisk did not answer an action in time."""


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error``."""

    def __init__(self, message: str, *, action: str = "", response: AmiMessage | None = None):
        super().__init__(f"{action}: {message}" if action else message)
        self.message = message
        self.action = action
        self.response: AmiMessage = response if response is not None else {}


def _still_booting(e: AmiActionError) -> bool:
    """Asterisk refused an action it does not know: during boot, that of a module not loaded
    yet (DeviceStateList, QueueStatus)."""
    return "invalid/unknown command" in e.message.lower()


class AmiResponse(Mapping[str, Any]):
    """An action's response headers, plus the events of a list action.

    For list actions (response ``EventList: start``) ``events`` holds the list's events in
    order and ``complete`` the closing ``...Complete`` event; otherwise both are empty.
    """

    __slots__ = ("_headers", "complete", "events")

    def __init__(
        self,
        headers: AmiMessage,
        events: list[AmiMessage] | None = None,
        complete: AmiMessage | None = None,
    ) -> None:
        self._headers = headers
        self.events: list[AmiMessage] = events if events is not None else []
        self.complete: AmiMessage | None = complete

    def __getitem__(self, key: str) -> Any:
        return self._headers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __repr__(self) -> str:
        return f"AmiResponse({dict(self._headers)!r}, events={len(self.events)})"


@dataclass(slots=True)
class _Pending:
    """An action waiting for its response (and, for lists, its events)."""

    action: str
    future: asyncio.Future[AmiResponse]
    response: AmiMessage | None = None
    events: list[AmiMessage] = field(default_factory=list)


class _AmiProtocol(asyncio.Protocol):
    """One TCP session: framing, parsing, response routing and event dispatch.

    Not panoramisk's AMIProtocol, because that one decodes each TCP read on its own with
    errors='ignore' (an "ä" split across two reads silently vanishes from a caller name),
    lets an exception from an event callback escape data_received (asyncio then kills the
    connection), and on connection loss parks unanswered actions in the Manager for replay
    after reconnect -- an Originate must never be sent twice, so ours fail instead.
    """

    def __init__(self, client: AmiClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self.banner: asyncio.Future[str] = loop.create_future()
        # Mark a failed greeting as retrieved: nobody awaits it if the connect was abandoned.
        self.banner.add_done_callback(lambda f: f.cancelled() or f.exception())
        # Resolved (never with an exception, so nobody has to retrieve it) when the session ends.
        self.ended: asyncio.Future[str] = loop.create_future()
        self.pending: dict[str, _Pending] = {}
        self.logged_in = False
        self.closed = False
        self.pinger: asyncio.Task[None] | None = None
        # Set by Asterisk's FullyBooted event: sent at login when it has booted, else once it
        # has (to a user that may read the `system` class, as vaihde's shipped user).
        self.booted = asyncio.Event()

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's (vaihde serve's loop) do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        if self.closed:  # aborted (client closed) while the TCP connect was in flight
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        buf = self._buf
        buf += data
        start = 0
        if not self.banner.done():
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > 1024:
                    self._fail_banner(buf[:80])
                return
            line = buf[:eol].decode("utf-8", "replace")
            if not line.startswith(_BANNER_PREFIX):
                self._fail_banner(buf[:80])
                return
            self.banner.set_result(line[len(_BANNER_PREFIX) :])
            start = eol + 2
        # Split on the message terminator before decoding: CRLFCRLF cannot occur inside a
        # UTF-8 multi-byte sequence, so every complete message decodes whole.
        while True:
            end = buf.find(_EOM, start)
            if end < 0:
                break
            raw = bytes(buf[start:end])
            start = end + 4
            self._handle_raw(raw)
            if self.closed:  # a listener or the handler closed us; drop the rest
                return
        if start:
            del buf[:start]
        if len(buf) > _MAX_MESSAGE_BYTES:
            self.abort(f"AMI message over {_MAX_MESSAGE_BYTES} bytes without terminator")

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost: {exc}" if exc else "connection closed by Asterisk")

    # session control --------------------------------------------------------------------

    def abort(self, reason: str) -> None:
        """Drop the connection now; pending actions fail with AmiNotConnected."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
        self._finish(reason)

    def send(self, payload: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise AmiNotConnected("AMI session is closed")
        self.transport.write(payload)

    # internals --------------------------------------------------------------------------

    def _fail_banner(self, head: bytes | bytearray) -> None:
        reason = f"peer is not an Asterisk manager (greeting {bytes(head)!r})"
        self.banner.set_exception(AmiConnectError(reason))
        self.abort(reason)

    def _finish(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.banner.done():
            self.banner.set_exception(AmiConnectError(reason))
        pending, self.pending = self.pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(AmiNotConnected(f"{p.action}: {reason}"))
        if self.pinger is not None and self.pinger is not _current_task():
            self.pinger.cancel()
        if not self.ended.done():
            self.ended.set_result(reason)
        self._client._session_ended(self, reason)

    def _handle_raw(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip("\r\n")
        if not text:
            return
        try:
            msg = Message.from_line(text)
        except Exception:  # parsing must never take the reader down
            msg = None
        if msg is None:
            self._client._stats["garbled"] += 1
            log.debug("ignoring unparsable AMI message", extra={"raw": text[:200]})
            return
        action_id = msg.get("ActionID")
        pending = self.pending.get(action_id) if isinstance(action_id, str) else None
        if pending is not None:
            self._handle_reply(action_id, pending, msg)
        elif "Event" in msg:
            if msg.get("Event") == "FullyBooted":
                self.booted.set()
            self._client._dispatch(msg)
        else:
            # Typically the late answer to an action that already timed out.
            log.debug("unmatched AMI response", extra={"action_id": action_id})

    def _handle_reply(self, action_id: str, p: _Pending, msg: Message) -> None:
        if p.response is None and "Response" in msg:
            p.response = msg
            status = str(msg.get("Response", "")).lower()
            if status in ("error", "fail", "failure"):
                del self.pending[action_id]
                message = str(msg.get("Message", "")) or "error"
                _settle(p.future, AmiActionError(message, action=p.action, response=msg))
            elif str(msg.get("EventList", "")).lower() != "start":  # else a list follows
                del self.pending[action_id]
                _settle(p.future, AmiResponse(msg))
            return
        if "Event" not in msg:
            return
        if str(msg.get("EventList", "")).lower() == "complete" or str(msg["Event"]).endswith(
            "Complete"
        ):
            del self.pending[action_id]
            _settle(p.future, AmiResponse(p.response or {}, p.events, msg))
        else:
            p.events.append(msg)


def _settle(fut: asyncio.Future[AmiResponse], outcome: AmiResponse | BaseException) -> None:
    if fut.done():  # the waiter timed out or was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


async def _reap(session: _AmiProtocol) -> None:
    """Wait until an ended session's pinger has really finished, so nothing outlives it."""
    pinger = session.pinger
    if pinger is not None and pinger is not _current_task() and not pinger.done():
        await asyncio.wait([pinger])


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


_id_counter = itertools.count(1)


class AmiClient:
    """A client for one Asterisk's AMI.

    Either ``await connect()`` for a single session (no reconnects), or ``start()`` /
    ``await run()`` to keep a session up until ``close()``; ``connect()`` then ``start()``
    is fine too (fail fast on bad configuration at startup, then stay up).
    ``ping_interval <= 0`` disables pings.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        ping_interval: float = 5.0,
        ping_timeout: float = 3.0,
        connect_timeout: float = 3.0,
        action_timeout: float = 5.0,
        reconnect_min: float = 0.5,
        reconnect_max: float = 10.0,
        boot_wait: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connect_timeout = connect_timeout
        self.action_timeout = action_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_max, reconnect_min)
        self.boot_wait = boot_wait

        self.last_error: str | None = None
        self._connected = False
        self._closed = False
        self._session: _AmiProtocol | None = None
        self._handshaking: set[_AmiProtocol] = set()
        self._event_listeners: tuple[EventListener, ...] = ()
        self._state_listeners: tuple[StateListener, ...] = ()
        self._hooks: tuple[ConnectedHook, ...] = ()
        self._runner: asyncio.Task[Any] | None = None
        self._run_done: asyncio.Event | None = None
        self._cancelled_by_close = False
        self._task: asyncio.Task[None] | None = None
        self._id_prefix = f"vaihde-{uuid.uuid4().hex[:8]}-"
        self._listener_errors: dict[EventListener, tuple[float, int]] = {}
        self._stats = dict.fromkeys(("events", "garbled", "listener_errors", "connects",
                                     "connect_failures", "ping_timeouts"), 0)

    def __repr__(self) -> str:
        who = f"{self.host!r}, {self.port}, {self.username!r}"
        return f"AmiClient({who}, connected={self._connected})"

    # public state -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True once logged in and every on_connected hook has finished, until the session ends."""
        return self._connected

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> dict[str, int]:
        """Counters for monitoring (events dispatched, garbled messages, reconnects...)."""
        return dict(self._stats)

    def add_event_listener(self, cb: EventListener) -> None:
        """Call ``cb(event)`` for every event, in arrival order, inside the reader.

        ``cb`` must be fast and must not block: Asterisk disconnects readers that fall
        behind (writetimeout). Its exceptions are logged and otherwise ignored.
        """
        self._event_listeners = (*self._event_listeners, cb)

    def remove_event_listener(self, cb: EventListener) -> None:
        self._event_listeners = tuple(x for x in self._event_listeners if x != cb)

    def add_state_listener(self, cb: StateListener) -> None:
        """Call ``cb(connected)`` whenever ``connected`` changes. Exceptions are logged."""
        self._state_listeners = (*self._state_listeners, cb)

    def remove_state_listener(self, cb: StateListener) -> None:
        self._state_listeners = tuple(x for x in self._state_listeners if x != cb)

    def add_on_connected(self, hook: ConnectedHook) -> None:
        """Await ``hook(client)`` after every login, before ``connected`` becomes True.

        Hooks run in registration order and may send actions. If one raises, the session
        is dropped and (under supervision) retried, since whatever it was resynchronising
        would otherwise be silently stale.
        """
        self._hooks = (*self._hooks, hook)

    # connecting ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Make one attempt to connect, log in and run the on_connected hooks.

        Raises AmiAuthError, AmiConnectError, or AmiError if a hook failed; after a raise
        nothing is left running. On success the session pings, but if it is lost later
        nothing reconnects unless ``start()``/``run()`` supervises the client.
        """
        self._check_open()
        if self._session is not None or self._runner is not None:
            raise AmiError("already connected or supervised")
        session = await self._open_session(attempt=1)
        try:
            await self._run_hooks(session)
            self._declare_up(session)
        except asyncio.CancelledError:
            session.abort("connect() cancelled")
            await _reap(session)
            raise
        except AmiNotConnected as e:
            await _reap(session)
            if self._closed:
                raise
            raise AmiConnectError(
                f"AMI session at {self.host}:{self.port} ended during on_connected hooks"
            ) from e
        except Exception as e:
            session.abort("on_connected hook failed")
            await _reap(session)
            raise AmiError(f"on_connected hook failed: {e}") from e

    def start(self) -> asyncio.Task[None]:
        """Run the supervisor (``run()``) in a background task; ``close()`` stops it."""
        self._check_open()
        if self._task is not None and not self._task.done():
            return self._task
        self._task = asyncio.get_running_loop().create_task(self.run(), name="vaihde-ami")
        return self._task

    async def run(self) -> None:
        """Keep a session up until ``close()``: reconnect with backoff, ping, run hooks.

        Returns normally when ``close()`` is called (or already was).
        """
        if self._closed:
            return
        if self._runner is not None:
            raise RuntimeError("AmiClient.run() is already running")
        runner = asyncio.current_task()
        assert runner is not None
        self._runner = runner
        self._run_done = asyncio.Event()
        try:
            await self._supervise()
        except asyncio.CancelledError:
            if self._cancelled_by_close:
                self._cancelled_by_close = False
                # Swallow only our own cancellation; one from outside still propagates.
                if runner.uncancel() == 0:
                    return
            raise
        finally:
            self._runner = None
            self._run_done.set()

    async def close(self) -> None:
        """Stop everything: supervisor, pings, pending reconnects, the session.

        Pending actions raise AmiNotConnected. No connection attempt happens after this.
        Idempotent.
        """
        self._closed = True
        runner = self._runner
        if runner is not None and not runner.done():
            self._cancelled_by_close = True
            runner.cancel()
            if runner is not _current_task() and self._run_done is not None:
                # Again while run() runs, as cancel_all does (a wait deep in a hook may swallow
                # one cancel); not cancel_all itself: the task that awaited run() may go on
                # after it returns, and that is not ours to cancel.
                while not await until_set(self._run_done, RECANCEL_S):
                    runner.cancel()
        for proto in list(self._handshaking):
            proto.abort("client closed")
        session = self._session
        if session is not None:
            session.abort("client closed")
            await _reap(session)
        self._set_connected(False)
        task = self._task
        if task is not None and task is not _current_task():
            # run() swallowed our cancel; this just reaps the task.
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # actions ----------------------------------------------------------------------------

    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> AmiResponse:
        """Send an action and return its response (with a list action's events).

        ``action`` maps header names to str/int values, or to a list for a header that is
        repeated (``Variable``). The ActionID is ours (read it from the response). Raises
        AmiActionError on ``Response: Error``, AmiNotConnected without a logged-in session
        or if it ends before the reply, AmiTimeout after ``timeout`` (default
        ``action_timeout``) seconds, which covers a list action's whole list.

        Asterisk runs one session's actions one at a time, so an action that blocks inside
        Asterisk (Originate without ``Async: true``) also holds back the pings, and the
        session is dropped as dead after ``ping_timeout``: only send actions that return
        at once.
        """
        session = self._session
        if session is None or not session.logged_in or session.closed:
            raise AmiNotConnected(f"not connected to AMI at {self.host}:{self.port}")
        return await self._send(
            session, action, self.action_timeout if timeout is None else timeout
        )

    # internals: sessions ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AmiError("AmiClient is closed")

    def _log_extra(self, **more: Any) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, **more}

    async def _open_session(self, attempt: int) -> _AmiProtocol:
        """TCP connect, read the greeting, log in; start pinging. Leaves nothing behind on error."""
        loop = asyncio.get_running_loop()
        proto = _AmiProtocol(self, loop)
        self._handshaking.add(proto)
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                try:
                    await loop.create_connection(lambda: proto, self.host, self.port)
                except OSError as e:
                    raise AmiConnectError(f"cannot connect to AMI at {where}: {e}") from e
                if self._closed:
                    raise AmiNotConnected("client closed")
                try:
                    version = await proto.banner
                except AmiConnectError as e:
                    raise AmiConnectError(f"AMI at {where}: {e}") from None
                login = {"Action": "Login", "Username": self.username, "Secret": self._secret,
                         "Events": "on"}
                try:
                    await self._send(proto, login, None)
                except AmiActionError as e:
                    raise AmiAuthError(
                        f"AMI login as user {self.username!r} at {where} was refused: the "
                        f"secret was not accepted or the user may not log in from here "
                        f"(Asterisk said: {e.message!r})"
                    ) from None
                except AmiNotConnected as e:
                    if self._closed:
                        raise
                    raise AmiConnectError(
                        f"AMI at {where} closed the connection during login"
                    ) from e
        except TimeoutError:
            proto.abort("connect timeout")
            raise AmiConnectError(
                f"no AMI session with {where} within {self.connect_timeout}s"
            ) from None
        except BaseException:
            proto.abort("connect failed")
            raise
        finally:
            self._handshaking.discard(proto)
        if self._closed or proto.closed:
            proto.abort("client closed")
            raise AmiNotConnected("client closed" if self._closed else "session lost at login")
        proto.logged_in = True
        self._session = proto
        self._stats["connects"] += 1
        log.info("AMI logged in as %s at %s (Asterisk Call Manager %s)", self.username, where,
                 version, extra=self._log_extra(attempt=attempt))
        if self.ping_interval > 0:
            proto.pinger = loop.create_task(self._ping_loop(proto), name="vaihde-ami-ping")
        return proto

    async def _run_hooks(self, session: _AmiProtocol) -> None:
        """Run every hook. An Asterisk that is still starting (its AMI accepts logins before
        its modules have loaded) answers their actions "Invalid/unknown command": the hooks
        then run again, all of them, once it says FullyBooted (or every reconnect_min when it
        does not say so), for up to boot_wait seconds, rather than dropping the session and
        backing off for seconds after Asterisk is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.boot_wait
        while True:
            booted = session.booted.is_set()  # then an unknown command is no module at all
            try:
                for hook in self._hooks:
                    await hook(self)
                    if session.closed:
                        raise AmiNotConnected("AMI session lost while running on_connected hooks")
                return
            except AmiActionError as e:
                left = deadline - loop.time()
                if not _still_booting(e) or left <= 0 or booted:
                    raise
                log.info("Asterisk is still starting (%s); syncing again once it has booted", e,
                         extra=self._log_extra())
                await until_set(session.booted, min(left, self.reconnect_min))
                if session.closed:
                    raise AmiNotConnected("AMI session lost while Asterisk was starting") from e

    def _declare_up(self, session: _AmiProtocol) -> None:
        if session.closed:
            raise AmiNotConnected("AMI session lost while running on_connected hooks")
        self.last_error = None
        self._set_connected(True)

    def _session_ended(self, session: _AmiProtocol, reason: str) -> None:
        if session is not self._session:
            return
        self._session = None
        if not self._closed:
            self.last_error = reason
            log.warning("AMI session ended: %s", reason, extra=self._log_extra())
        self._set_connected(False)

    def _set_connected(self, value: bool) -> None:
        if value == self._connected:
            return
        self._connected = value
        for cb in self._state_listeners:
            try:
                cb(value)
            except Exception:
                log.exception("AMI state listener %r failed", cb, extra=self._log_extra())

    async def _ping_loop(self, session: _AmiProtocol) -> None:
        # A silent Asterisk (hung, or a half-open TCP path) never closes the socket, so
        # only a missed pong reveals it.
        while not session.closed:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._send(session, {"Action": "Ping"}, self.ping_timeout)
            except AmiTimeout:
                self._stats["ping_timeouts"] += 1
                log.warning("AMI did not answer a ping within %ss; dropping the session",
                            self.ping_timeout, extra=self._log_extra())
                session.abort(f"no pong within {self.ping_timeout}s")
                return
            except AmiNotConnected:
                return
            except AmiActionError as e:  # answered, so alive
                log.debug("AMI ping answered with an error: %s", e)

    async def _supervise(self) -> None:
        failures = 0
        while not self._closed:
            session = self._session
            if session is None:
                delay: float | None = None
                try:
                    session = await self._open_session(attempt=failures + 1)
                except AmiError as e:
                    failures += 1
                    self._stats["connect_failures"] += 1
                    self.last_error = str(e)
                    # A refused login: the admin may fix the secret, so keep trying -- but slowly.
                    refused = isinstance(e, AmiAuthError)
                    delay = self.reconnect_max if refused else self._backoff(failures)
                    log.log(logging.ERROR if refused else logging.WARNING,
                            "%s; retrying in %.1fs", e, delay,
                            extra=self._log_extra(attempt=failures, delay=delay))
                except Exception as e:  # a bug must not kill supervision
                    failures += 1
                    self.last_error = f"unexpected error: {e!r}"
                    delay = self.reconnect_max
                    log.exception("unexpected error connecting to AMI", extra=self._log_extra())
                if delay is not None:
                    await asyncio.sleep(delay)
                    continue
                assert session is not None
                try:
                    await self._run_hooks(session)
                    self._declare_up(session)
                except AmiNotConnected:
                    pass  # the session ended; _session_ended recorded why
                except AmiRefused as e:
                    # A configuration problem, said plainly (no traceback), until it is fixed.
                    log.error("%s; trying again later", e, extra=self._log_extra())
                    session.abort(str(e))
                    self.last_error = str(e)
                except Exception as e:
                    self.last_error = f"on_connected hook failed: {e!r}"
                    log.exception(
                        "AMI on_connected hook failed; reconnecting", extra=self._log_extra()
                    )
                    session.abort("on_connected hook failed")
            up_since = time.monotonic()
            await session.ended
            await _reap(session)
            if self._closed:
                return
            # Only a session that stayed up a while resets the backoff, so a server that
            # accepts logins and then drops us straight away is not hammered.
            if time.monotonic() - up_since >= self.reconnect_max:
                failures = 0
            failures += 1
            delay = self._backoff(failures)
            log.info("reconnecting to AMI in %.1fs", delay,
                     extra=self._log_extra(attempt=failures, delay=delay))
            await asyncio.sleep(delay)

    def _backoff(self, failures: int) -> float:
        base = self.reconnect_min * (2 ** min(max(failures - 1, 0), 30))
        return min(self.reconnect_max, base * random.uniform(1.0, 1.25))

    # internals: actions -------------------------------------------------------------------

    async def _send(
        self, session: _AmiProtocol, action: Mapping[str, Any], timeout: float | None
    ) -> AmiResponse:
        name = str(action.get("Action") or "")
        if not name:
            raise ValueError("an AMI action needs an 'Action' header")
        action_id = f"{self._id_prefix}{next(_id_counter)}"
        payload = _encode(action, action_id)
        future: asyncio.Future[AmiResponse] = asyncio.get_running_loop().create_future()
        session.pending[action_id] = _Pending(name, future)
        try:
            session.send(payload)
            if timeout is None:
                return await future
            try:
                async with asyncio.timeout(timeout):
                    return await future
            except TimeoutError:
                raise AmiTimeout(f"{name}: no answer from AMI within {timeout}s") from None
        finally:
            session.pending.pop(action_id, None)

    def _dispatch(self, event: Message) -> None:
        self._stats["events"] += 1
        for cb in self._event_listeners:
            try:
                cb(event)
            except Exception:
                self._stats["listener_errors"] += 1
                self._log_listener_error(cb, event)

    def _log_listener_error(self, cb: EventListener, event: Message) -> None:
        # A listener broken for every event would otherwise log a traceback per event.
        now = time.monotonic()
        last, suppressed = self._listener_errors.get(cb, (-_LISTENER_LOG_EVERY, 0))
        if now - last < _LISTENER_LOG_EVERY:
            self._listener_errors[cb] = (last, suppressed + 1)
            return
        self._listener_errors[cb] = (now, 0)
        log.exception("AMI event listener %r failed on %s event (%d similar failures not logged)",
                      cb, event.get("Event"), suppressed, extra=self._log_extra())


def _encode(action: Mapping[str, Any], action_id: str) -> bytes:
    lines: list[str] = []
    for key, value in action.items():
        if key.lower() == "actionid":
            raise ValueError("ActionID is assigned by AmiClient; read it from the response")
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            sv = str(v)
            # A CR or LF would let a value inject extra headers or a second action.
            if any(c in key or c in sv for c in "\r\n") or ":" in key:
                raise ValueError(f"illegal character in AMI header {key!r}")
            lines.append(f"{key}: {sv}")
    lines.append(f"ActionID: {action_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
