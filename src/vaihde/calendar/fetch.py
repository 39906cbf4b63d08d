"""Fetch a calendar feed (a local file or an http(s) URL) with a timeout, a size limit and
conditional requests, only where the CalendarPolicy allows (redirects included); every failure
is a CalendarError that names the source, secrets masked.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from vaihde import __version__
from vaihde.calendar.ics import MAX_ICS_BYTES, CalendarError
from vaihde.calendar.policy import CalendarPolicy

_CHUNK = 64 * 1024
_USER_AGENT = f"vaihde/{__version__} (calendar sync)"


@dataclass(frozen=True, slots=True)
class FeedResult:
    """content is None when the feed has not changed since the given etag/last_modified.

    Store etag and last_modified and pass them to the next fetch_feed of the same source.
    """

    content: bytes | None
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        return self.content is None


async def fetch_feed(
    source: str,
    *,
    policy: CalendarPolicy,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 10.0,
    max_bytes: int = MAX_ICS_BYTES,
    session: aiohttp.ClientSession | None = None,
) -> FeedResult:
    """Fetch source: an absolute file path, a file:// URL, or an http://, https:// or webcal://
    URL (webcal is what calendar apps hand out for https subscriptions), if `policy` allows it:
    files only inside its directory (after symlinks), http only from its listed hosts, and the
    same for every redirect.

    timeout (seconds) covers connecting, redirects and the whole body of a web fetch; files
    are only limited in size. Pass session to reuse connections or to configure proxies
    (trust_env); otherwise a session is made for this one request. Raises CalendarError, and
    the feed's previous state should then be kept.
    """
    shown = mask_source(source)
    path = _local_path(source, shown)
    if path is not None:
        real, why = policy.file_path(str(path))
        if real is None:
            raise CalendarError(f"{shown}: {why}")
        return await asyncio.to_thread(
            _read_file, real, shown, etag, last_modified, max_bytes, policy
        )
    problem = policy.url_problem(source)
    if problem is not None:
        raise CalendarError(f"{shown}: {problem}")
    scheme = urlsplit(source).scheme.lower()
    url = "https" + source[len("webcal") :] if scheme == "webcal" else source
    try:
        async with asyncio.timeout(timeout):
            return await _fetch_http(url, shown, etag, last_modified, max_bytes, session, policy)
    except TimeoutError:
        raise CalendarError(f"{shown}: no complete answer within {timeout:g} s") from None
    except aiohttp.ClientError as e:
        # from None: aiohttp's own messages and tracebacks can carry the full URL.
        raise CalendarError(f"{shown}: {_scrub(_describe(e), source)}") from None
    except ValueError as e:  # yarl's verdict on a malformed URL
        raise CalendarError(f"{shown}: invalid URL: {_scrub(str(e), source)}") from None


def _local_path(source: str, shown: str) -> Path | None:
    """The file a source names, None for a web URL; CalendarError for anything else."""
    if source.startswith("/"):
        return Path(source)
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise CalendarError(f"{shown}: file URLs on other hosts are not supported")
        if not parts.path.startswith("/"):
            raise CalendarError(f"{shown}: a file URL needs an absolute path")
        return Path(unquote(parts.path))
    if scheme in ("http", "https", "webcal"):
        if not parts.hostname:
            raise CalendarError(f"{shown}: the URL has no host")
        return None
    if not scheme or re.fullmatch(r"[A-Za-z]", scheme):  # "cal.ics" or "C:\cal.ics"
        raise CalendarError(f"{shown}: use an absolute file path or an http(s) URL")
    raise CalendarError(
        f"{shown}: unsupported scheme {scheme!r} (use a file path, file://, http:// or https://)"
    )


def _read_file(
    path: Path,
    shown: str,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    policy: CalendarPolicy,
) -> FeedResult:
    try:
        # O_NOFOLLOW: `path` is already the real path, so a link here means it was just swapped
        # in; O_NONBLOCK: opening a FIFO must not block the thread (it is refused below).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise CalendarError(f"{shown}: not a regular file")
        with os.fdopen(fd, "rb") as f:
            opened = _opened_path(f.fileno())
            if opened is not None and policy.file_path(opened)[0] is None:
                raise CalendarError(f"{shown}: not in {policy.files_dir} (a link out of it?)")
            # A file has no ETag of its own; size and mtime change whenever it is rewritten.
            file_etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
            file_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            if etag == file_etag or (etag is None and last_modified == file_modified):
                return FeedResult(None, file_etag, file_modified)
            if st.st_size > max_bytes:
                raise CalendarError(_too_big(shown, st.st_size, max_bytes))
            content = f.read(max_bytes + 1)  # the file may have grown since fstat
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CalendarError(f"{shown}: not in {policy.files_dir} (a link out of it?)") from None
        raise CalendarError(f"{shown}: cannot read: {e.strerror or e}") from None
    if len(content) > max_bytes:
        raise CalendarError(_too_big(shown, len(content), max_bytes, at_least=True))
    return FeedResult(content, file_etag, file_modified)


def _opened_path(fd: int) -> str | None:
    """Where an open file really is (Linux /proc), to catch a directory swapped for a link
    between the check and the open; None where /proc is not there."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


async def _fetch_http(
    url: str,
    shown: str,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    session: aiohttp.ClientSession | None,
    policy: CalendarPolicy,
) -> FeedResult:
    headers = {"Accept": "text/calendar, */*;q=0.5", "User-Agent": _USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    own = session is None
    client = aiohttp.ClientSession() if session is None else session
    try:
        target = URL(url)
        # Redirects are followed here, not by aiohttp, so each hop is checked like the source:
        # an allowed https address must not hand the service on to http://127.0.0.1/…
        for _ in range(MAX_REDIRECTS + 1):
            async with client.get(target, headers=headers, allow_redirects=False) as resp:
                if resp.status in _REDIRECTS and "Location" in resp.headers:
                    target = resp.url.join(URL(resp.headers["Location"]))
                    problem = policy.url_problem(str(target))
                    if problem is not None:
                        raise CalendarError(
                            f"{shown}: refused a redirect to {mask_source(str(target))}: "
                            f"{problem}"
                        )
                    continue
                return await _answer(resp, shown, etag, last_modified, max_bytes)
        raise CalendarError(f"{shown}: too many redirects")
    finally:
        if own:
            await client.close()


async def _answer(
    resp: aiohttp.ClientResponse,
    shown: str,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
) -> FeedResult:
    new_etag = resp.headers.get("ETag")
    new_modified = resp.headers.get("Last-Modified")
    if resp.status == 304:
        return FeedResult(None, new_etag or etag, new_modified or last_modified)
    if resp.status != 200:
        raise CalendarError(f"{shown}: HTTP {resp.status} {resp.reason or ''}".rstrip())
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise CalendarError(_too_big(shown, resp.content_length, max_bytes))
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise CalendarError(_too_big(shown, len(body), max_bytes, at_least=True))
    content = bytes(body)
    if resp.content_type == "text/html" and not _looks_like_ics(content):
        raise CalendarError(
            f"{shown}: the server sent a web page, not a calendar "
            "(expired link or login page?)"
        )
    return FeedResult(content, new_etag, new_modified)


def _looks_like_ics(content: bytes) -> bool:
    return content.lstrip(b"\xef\xbb\xbf \t\r\n")[:15].upper() == b"BEGIN:VCALENDAR"


def _too_big(shown: str, size: int, limit: int, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"{shown}: the calendar is {more}{size:,} bytes, over the limit of {limit:,} bytes"


def _describe(e: aiohttp.ClientError) -> str:
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate not accepted: {e.certificate_error}"
    if isinstance(e, aiohttp.ClientSSLError):
        reason = getattr(e.os_error, "reason", None)
        return f"TLS handshake failed ({reason})" if reason else "TLS handshake failed"
    if isinstance(e, aiohttp.ClientConnectorError):
        reason = e.os_error.strerror or str(e.os_error) or type(e.os_error).__name__
        return f"cannot connect to {e.host}:{e.port}: {reason}"
    if isinstance(e, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(e, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(e, aiohttp.ClientPayloadError):
        return "the response was cut off or malformed"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


# Tokens hidden in paths: Google's ".../private-<hex>/basic.ics", Outlook's
# ".../<hex token>/calendar.ics", and anything else long and random-looking.
_SECRET_SEGMENT = re.compile(
    r"(?i)^(?:private-.+|(?=[^/]*\d)(?=[^/]*[a-z])[A-Za-z0-9_\-.~%=+]{20,})$"
)


def mask_source(source: str) -> str:
    """The source fit for logs and messages: passwords, tokens and query values are masked."""
    parts = urlsplit(source)
    if parts.scheme.lower() not in ("http", "https", "webcal"):
        return source
    host = parts.hostname or ""
    try:
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:  # a port that is not a number: show the URL without it
        pass
    if parts.username is not None or parts.password is not None:
        host = f"***@{host}"
    segments = parts.path.split("/")
    masked_path = "/".join(
        "***" if _SECRET_SEGMENT.match(s) and not _is_file_name(s) else s for s in segments
    )
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if "=" in pair else "***"
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, host, masked_path, query, ""))


def _is_file_name(segment: str) -> bool:
    return bool(re.fullmatch(r"[\w\-]{1,40}\.(?:ics|ical|ifb|vcs)", segment, re.IGNORECASE))


def _scrub(text: str, source: str) -> str:
    """Remove anything secret from a library's message, in case it quotes the URL."""
    parts = urlsplit(source)
    secrets = {source, parts.query, parts.password or "", parts.username or ""}
    secrets.update(s for s in parts.path.split("/") if _SECRET_SEGMENT.match(s))
    secrets.update(v.partition("=")[2] for v in parts.query.split("&"))
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
