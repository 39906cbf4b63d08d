"""fetch_feed against a local HTTP server on 127.0.0.1 and temporary files: conditional
requests, limits, errors with masked secrets.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from vaihde.calendar import CalendarError, FeedResult, fetch_feed, mask_source
from vaihde.calendar.policy import CalendarPolicy

# These tests' server speaks plain http on 127.0.0.1: allowed here by name, as the settings'
# calendar.plain_http_hosts would; everything else follows the service's rules.
LOCAL = CalendarPolicy(plain_http_hosts=frozenset({"127.0.0.1"}))


async def fetch(source: str, policy: CalendarPolicy = LOCAL, **kwargs: object) -> FeedResult:
    return await fetch_feed(source, policy=policy, **kwargs)  # type: ignore[arg-type]


ICS = Path(__file__).resolve().parent.parent / "fixtures" / "calendars" / "google_calendar.ics"
CONTENT = ICS.read_bytes()
ETAG = '"v1-abc"'
MODIFIED = "Tue, 24 Nov 2026 08:00:00 GMT"


def make_app(seen: list[web.Request]) -> web.Application:
    async def calendar(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        headers = {"ETag": ETAG, "Last-Modified": MODIFIED}
        if request.headers.get("If-None-Match") == ETAG or (
            request.headers.get("If-Modified-Since") == MODIFIED
        ):
            return web.Response(status=304, headers=headers)
        return web.Response(body=CONTENT, content_type="text/calendar", headers=headers)

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(body=CONTENT)

    async def big(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 2_000, content_type="text/calendar")

    async def endless(request: web.Request) -> web.StreamResponse:
        # Chunked, no Content-Length: only counting the bytes catches it.
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"y" * 1_000)
        await response.write_eof()
        return response

    async def login_page(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html><body>Sign in</body></html>", content_type="text/html")

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/calendar.ics")

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/loop.ics")

    async def secret(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        if request.headers.get("Authorization") != "Basic dXNlcjpzM2NyM3Q=":  # user:s3cr3t
            raise web.HTTPUnauthorized()
        return web.Response(body=CONTENT, content_type="text/calendar")

    app = web.Application()
    app.router.add_get("/calendar.ics", calendar)
    app.router.add_get("/slow.ics", slow)
    app.router.add_get("/big.ics", big)
    app.router.add_get("/endless.ics", endless)
    app.router.add_get("/login", login_page)
    app.router.add_get("/moved.ics", moved)
    app.router.add_get("/elsewhere.ics", elsewhere)
    app.router.add_get("/loop.ics", loop)
    app.router.add_get("/secret.ics", secret)
    return app


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []
    test_server = TestServer(make_app(seen), host="127.0.0.1")
    await test_server.start_server()
    try:
        yield f"http://127.0.0.1:{test_server.port}", seen
    finally:
        await test_server.close()


# --- http ------------------------------------------------------------------------------------


async def test_200_with_etag_then_304_not_modified(server: tuple[str, list]) -> None:
    base, seen = server
    first = await fetch(f"{base}/calendar.ics")
    assert (first.content, first.etag, first.last_modified) == (CONTENT, ETAG, MODIFIED)
    assert not first.not_modified
    assert "vaihde/" in seen[0].headers["User-Agent"]

    second = await fetch(
        f"{base}/calendar.ics", etag=first.etag, last_modified=first.last_modified
    )
    assert second.not_modified and second.content is None
    assert (second.etag, second.last_modified) == (ETAG, MODIFIED)
    assert seen[1].headers["If-None-Match"] == ETAG
    assert seen[1].headers["If-Modified-Since"] == MODIFIED

    by_date = await fetch(f"{base}/calendar.ics", last_modified=MODIFIED)
    assert by_date.not_modified


async def test_redirect_is_followed(server: tuple[str, list]) -> None:
    base, _ = server
    assert (await fetch(f"{base}/moved.ics")).content == CONTENT


async def test_404_names_the_source(server: tuple[str, list]) -> None:
    base, _ = server
    with pytest.raises(CalendarError) as info:
        await fetch(f"{base}/missing.ics")
    assert str(info.value) == f"{base}/missing.ics: HTTP 404 Not Found"


async def test_timeout(server: tuple[str, list]) -> None:
    base, _ = server
    with pytest.raises(CalendarError, match=r"slow\.ics: no complete answer within 0\.2 s"):
        await fetch(f"{base}/slow.ics", timeout=0.2)


async def test_oversize_by_content_length_and_by_counting(server: tuple[str, list]) -> None:
    base, _ = server
    with pytest.raises(CalendarError, match="2,000 bytes, over the limit of 1,000 bytes"):
        await fetch(f"{base}/big.ics", max_bytes=1_000)
    with pytest.raises(CalendarError, match=r"more than [\d,]+ bytes, over the limit of 50,000"):
        await fetch(f"{base}/endless.ics", max_bytes=50_000)


async def test_html_page_instead_of_a_calendar(server: tuple[str, list]) -> None:
    base, _ = server
    with pytest.raises(CalendarError, match="a web page, not a calendar"):
        await fetch(f"{base}/login")


async def test_credentials_are_used_but_never_shown(server: tuple[str, list]) -> None:
    base, _ = server
    host = base.removeprefix("http://")
    ok = await fetch(f"http://user:s3cr3t@{host}/secret.ics")
    assert ok.content == CONTENT

    with pytest.raises(CalendarError) as info:
        await fetch(f"http://user:wr0ngpass@{host}/secret.ics?token=t0psecret&x=1")
    message = str(info.value)
    assert "401" in message and "wr0ngpass" not in message and "t0psecret" not in message
    assert message.startswith(f"http://***@{host}/secret.ics?token=***&x=***")


async def test_webcal_means_https(server: tuple[str, list]) -> None:
    base, _ = server
    webcal = base.replace("http://", "webcal://")
    # The test server speaks plain HTTP, so a TLS failure shows that https was used.
    with pytest.raises(CalendarError, match=r"calendar\.ics: TLS handshake failed"):
        await fetch(f"{webcal}/calendar.ics")


async def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    with pytest.raises(CalendarError) as info:
        await fetch(f"http://127.0.0.1:{port}/private-0123456789abcdef0123/basic.ics")
    assert str(info.value).startswith(
        f"http://127.0.0.1:{port}/***/basic.ics: cannot connect to 127.0.0.1:{port}: "
    )
    # aiohttp's exception quotes the whole URL: it must not ride along in a traceback.
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- files ------------------------------------------------------------------------------------


def files_in(directory: Path) -> CalendarPolicy:
    return CalendarPolicy(files_dir=str(directory))


async def test_file_path_and_file_url(tmp_path: Path) -> None:
    path = tmp_path / "my calendar.ics"
    path.write_bytes(CONTENT)
    by_path = await fetch(str(path), files_in(tmp_path))
    assert by_path.content == CONTENT and by_path.etag and by_path.last_modified
    by_url = await fetch(path.as_uri(), files_in(tmp_path))
    assert by_url == by_path


async def test_unchanged_file_is_not_modified_until_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "cal.ics"
    path.write_bytes(CONTENT)
    policy = files_in(tmp_path)
    first = await fetch(str(path), policy)
    again = await fetch(str(path), policy, etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.etag == first.etag
    assert (await fetch(str(path), policy, last_modified=first.last_modified)).not_modified

    path.write_bytes(CONTENT + b"\r\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    changed = await fetch(str(path), policy, etag=first.etag, last_modified=first.last_modified)
    assert changed.content == CONTENT + b"\r\n" and changed.etag != first.etag


async def test_file_errors(tmp_path: Path) -> None:
    policy = files_in(tmp_path)
    missing = tmp_path / "missing.ics"
    with pytest.raises(CalendarError, match=rf"{missing}: cannot read: No such file"):
        await fetch(str(missing), policy)
    (tmp_path / "sub").mkdir()
    with pytest.raises(CalendarError, match="not a regular file"):
        await fetch(str(tmp_path / "sub"), policy)
    os.mkfifo(tmp_path / "fifo.ics")  # opening it must not block
    with pytest.raises(CalendarError, match="not a regular file"):
        await fetch(str(tmp_path / "fifo.ics"), policy)
    big = tmp_path / "big.ics"
    big.write_bytes(b"x" * 2_000)
    with pytest.raises(CalendarError, match="over the limit of 1,000 bytes"):
        await fetch(str(big), policy, max_bytes=1_000)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("calendar.ics", "use an absolute file path"),
        ("ftp://example.fi/cal.ics", "unsupported scheme 'ftp'"),
        ("file://fileserver/share/cal.ics", "file URLs on other hosts"),
        ("https:///cal.ics", "the URL has no host"),
    ],
)
async def test_rejected_sources(source: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        await fetch(source)


# --- what the policy allows (checked again at every fetch) -------------------------------------


async def test_files_outside_the_directory_are_not_read(tmp_path: Path) -> None:
    allowed = tmp_path / "calendars"
    allowed.mkdir()
    secret = tmp_path / "secret.ics"  # a calendar, even: only where it is matters
    secret.write_bytes(CONTENT)
    policy = files_in(allowed)
    (allowed / "link.ics").symlink_to(secret)
    (allowed / "dir-link").symlink_to(tmp_path, target_is_directory=True)
    for source in (
        str(secret),
        secret.as_uri(),
        f"{allowed}/../secret.ics",
        str(allowed / "link.ics"),
        str(allowed / "dir-link" / "secret.ics"),
        "/etc/hostname",
    ):
        with pytest.raises(CalendarError, match=r"not in .*calendars|'\.\.' is not allowed"):
            await fetch(source, policy)
    # A link that stays inside the directory is fine.
    (allowed / "real.ics").write_bytes(CONTENT)
    (allowed / "alias.ics").symlink_to(allowed / "real.ics")
    assert (await fetch(str(allowed / "alias.ics"), policy)).content == CONTENT


async def test_no_files_at_all_without_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "cal.ics"
    path.write_bytes(CONTENT)
    with pytest.raises(CalendarError, match=r"calendar\.files_dir is not set"):
        await fetch(str(path), CalendarPolicy())


async def test_plain_http_only_from_listed_hosts(server: tuple[str, list]) -> None:
    base, seen = server
    with pytest.raises(CalendarError, match="must be an https:// address"):
        await fetch(f"{base}/calendar.ics", CalendarPolicy())
    localhost = base.replace("127.0.0.1", "localhost")  # the same server by another name
    with pytest.raises(CalendarError, match="must be an https:// address"):
        await fetch(f"{localhost}/calendar.ics")
    assert seen == []  # refused before connecting


async def test_a_redirect_is_checked_like_the_source(server: tuple[str, list]) -> None:
    base, seen = server
    # Allowed source, redirect to a host that is not: refused, and nothing fetched there.
    port = base.rsplit(":", 1)[1]
    with pytest.raises(CalendarError) as info:
        await fetch(f"{base}/elsewhere.ics?to=http://localhost:{port}/calendar.ics")
    assert "refused a redirect to http://localhost:" in str(info.value)
    assert "must be an https:// address" in str(info.value)
    assert seen == []
    with pytest.raises(CalendarError, match="too many redirects"):
        await fetch(f"{base}/loop.ics")


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        (
            "https://calendar.google.com/calendar/ical/matti%40example.fi/"
            "private-0f1e2d3c4b5a69788796a5b4c3d2e1f0/basic.ics",
            "https://calendar.google.com/calendar/ical/matti%40example.fi/***/basic.ics",
        ),
        (
            "https://outlook.office365.com/owa/calendar/4f1c2d3e5a6b@example.fi/"
            "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b1234567/calendar.ics",
            "https://outlook.office365.com/owa/calendar/4f1c2d3e5a6b@example.fi/***/calendar.ics",
        ),
        ("https://u:p@cal.example.fi:8443/x.ics?key=abc", "https://***@cal.example.fi:8443/x.ics?key=***"),
        ("webcal://cal.example.fi/team.ics", "webcal://cal.example.fi/team.ics"),
        ("/srv/calendars/matti.ics", "/srv/calendars/matti.ics"),
        ("https://cal.example.fi:notaport/x.ics", "https://cal.example.fi/x.ics"),
    ],
)  # fmt: skip
def test_mask_source(source: str, shown: str) -> None:
    assert mask_source(source) == shown
