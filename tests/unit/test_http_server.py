"""The HTTP server's deadlines and limits (security review, finding 5: slowloris), with raw
sockets that trickle bytes into the real server on 127.0.0.1: headers and bodies that take too
long are cut off, idle keep-alive connections end, oversized bodies are refused before they are
sent, and connections beyond the cap are answered 503 at once so that the process keeps file
descriptors for FastAGI.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from vaihde.http.health import make_app
from vaihde.http.server import GuardedServer
from vaihde.http.settings import HttpSettings

# Keep-alive longer than the header deadline, as in the defaults (15 s and 10 s).
FAST = HttpSettings(host="127.0.0.1", port=0, keepalive_s=5, header_timeout_s=1,
                    body_timeout_s=1, max_body_bytes=4096, max_connections=8)


class Healthy:
    def status(self) -> dict[str, Any]:
        return {"status": "ok", "fastagi": {"listening": True}}


async def echo(request: web.Request) -> web.Response:
    return web.Response(text=f"{len(await request.read())} bytes")


async def slow_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(6):
        await response.write(b"tick\n")
        await asyncio.sleep(0.3)
    return response


Serve = Callable[[HttpSettings], Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the service's HTTP server with the given settings; its port."""
    servers: list[GuardedServer] = []

    async def start(settings: HttpSettings) -> int:
        app = make_app(Healthy(), http=settings)  # type: ignore[arg-type]
        app.router.add_post("/echo", echo)
        app.router.add_get("/slow", slow_stream)
        server = GuardedServer(app, settings)
        await server.start()
        servers.append(server)
        return server.port

    yield start
    for server in servers:
        await server.stop()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[float, bytes]:
    """Read until the server closes the connection: (after how long, what it sent)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    data = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), seconds):
            data += chunk
    return loop.time() - started, data


async def trickle(writer: asyncio.StreamWriter, data: bytes, every_s: float) -> None:
    """One byte at a time until the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every_s)


async def request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  raw: bytes) -> bytes:
    writer.write(raw)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: vaihde\r\n\r\n"
# Valid headers that never end (each well-formed, so only a deadline stops them).
TRICKLE = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
    b"X-Pad-%d: a\r\n" % i for i in range(100))


async def test_trickled_headers_are_cut_off_at_the_deadline(serve):
    port = await serve(FAST)
    reader, writer = await connect(port)
    sender = asyncio.create_task(trickle(writer, TRICKLE, 0.1))
    took, data = await closed_within(reader, 5)
    sender.cancel()
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in data
    assert 0.9 <= took <= 3.0


async def test_a_connection_that_says_nothing_is_closed(serve):
    port = await serve(FAST)
    reader, writer = await connect(port)
    took, data = await closed_within(reader, 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 ") and took <= 3.0


async def test_keep_alive_serves_requests_then_ends_when_idle(serve):
    port = await serve(FAST)
    reader, writer = await connect(port)
    for _ in range(3):
        reply = await request(reader, writer, GET_HEALTH)
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b'{"status": "ok"}')
    # The next request's headers have their own deadline, counted from their first byte.
    sender = asyncio.create_task(trickle(writer, TRICKLE, 0.1))
    took, data = await closed_within(reader, 5)
    sender.cancel()
    assert data.startswith(b"HTTP/1.1 408 ") and took <= 3.0
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(serve):
    port = await serve(HttpSettings(host="127.0.0.1", port=0, keepalive_s=1,
                                    header_timeout_s=5))
    reader, writer = await connect(port)
    assert (await request(reader, writer, GET_HEALTH)).startswith(b"HTTP/1.1 200 ")
    took, data = await closed_within(reader, 5)
    writer.close()
    assert data == b"" and 0.5 <= took <= 3.0


async def test_a_trickled_body_is_cut_off_and_the_handler_is_not_held(serve):
    port = await serve(FAST)
    reader, writer = await connect(port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    sender = asyncio.create_task(trickle(writer, b"x" * 1000, 0.1))
    took, _ = await closed_within(reader, 5)
    sender.cancel()
    writer.close()
    assert 0.9 <= took <= 3.0
    # A body that arrives in time is read as usual.
    reader, writer = await connect(port)
    reply = await request(reader, writer, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 1000\r\n\r\n" + b"x" * 1000)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"1000 bytes")


async def test_a_body_larger_than_the_limit_is_refused_before_it_is_sent(serve):
    port = await serve(FAST)
    reader, writer = await connect(port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 4097\r\n\r\n")
    await writer.drain()
    _, data = await closed_within(reader, 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 413 ") and b'"too_large"' in data


async def test_a_long_response_is_not_cut_by_the_header_deadline(serve):
    port = await serve(FAST)
    reader, writer = await connect(port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    took, data = await closed_within(reader, 10)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"tick") == 6 and took >= 1.5


async def test_connections_beyond_the_cap_get_503_and_room_comes_back(serve):
    settings = HttpSettings(host="127.0.0.1", port=0, header_timeout_s=60, keepalive_s=60,
                            max_connections=8)
    port = await serve(settings)
    held = [await connect(port) for _ in range(8)]
    await asyncio.sleep(0.1)
    reader, writer = await connect(port)
    took, data = await closed_within(reader, 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 503 ") and b'"busy"' in data and took < 1.0
    # One of the eight goes away: the next client is served.
    held.pop()[1].close()
    for _ in range(50):
        reader, writer = await connect(port)
        writer.write(GET_HEALTH)
        await writer.drain()
        first = await asyncio.wait_for(reader.read(12), 5)
        writer.close()
        if first == b"HTTP/1.1 200":
            break
        await asyncio.sleep(0.05)
    assert first == b"HTTP/1.1 200"
    for _, w in held:
        w.close()


def test_the_guard_works_under_uvloop():
    """`vaihde serve` runs on uvloop, whose transports are not asyncio's classes."""
    import uvloop  # a dependency on Linux (pyproject.toml): never skipped

    async def scenario() -> tuple[bytes, bytes]:
        app = make_app(Healthy(), http=FAST)  # type: ignore[arg-type]
        server = GuardedServer(app, FAST)
        await server.start()
        try:
            reader, writer = await connect(server.port)
            served = await request(reader, writer, GET_HEALTH)
            writer.close()
            reader, writer = await connect(server.port)
            sender = asyncio.create_task(trickle(writer, TRICKLE, 0.1))
            _, cut = await closed_within(reader, 5)
            sender.cancel()
            writer.close()
            return served, cut
        finally:
            await server.stop()

    loop = uvloop.new_event_loop()
    try:
        served, cut = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert served.startswith(b"HTTP/1.1 200 ") and cut.startswith(b"HTTP/1.1 408 ")
