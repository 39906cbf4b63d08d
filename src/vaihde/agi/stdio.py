"""Process-per-call AGI over stdin/stdout, using the same protocol layer and handlers as FastAGI.

Asterisk starts the script with pipes on stdin/stdout and signals hangup with SIGHUP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from vaihde.agi.channel import AgiConnection
from vaihde.agi.protocol import MAX_LINE_BYTES
from vaihde.agi.session import Router, SessionResult, run_session


async def open_stdio() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(sys.stdout.fileno(), "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def serve_stdio(router: Router, script: str) -> SessionResult:
    """Run one session on this process's stdin/stdout, routed to `script`."""
    reader, writer = await open_stdio()
    conn = AgiConnection(reader, writer)
    loop = asyncio.get_running_loop()
    # SIGHUP is how Asterisk tells a local script the caller left; the default would kill us
    # before the fallback bookkeeping runs.
    loop.add_signal_handler(signal.SIGHUP, reader.feed_eof)
    return await run_session(conn, router, script_override=script)
