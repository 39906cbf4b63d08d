"""Plays Asterisk's side of an AGI session: used by the load benchmark and protocol tests.

It answers commands the way res_agi does for a live channel, from a small dictionary of channel
variables and a queue of digits the "caller" will press.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass, field


def environment(script: str, **values: str) -> bytes:
    """An AGI environment block as Asterisk 22 sends it for `agi://host/<script>`."""
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1/{script}",
        "agi_channel": "PJSIP/trunk-00000001",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": "1700000000.1",
        "agi_version": "22.0.0",
        "agi_callerid": "0401234567",
        "agi_calleridname": "Caller",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": "0201234567",
        "agi_rdnis": "unknown",
        "agi_context": "vaihde-main",
        "agi_extension": "s",
        "agi_priority": "4",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000000",
    }
    env.update(values)
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


@dataclass
class SimulatedChannel:
    """Channel state the responder reads and writes."""

    variables: dict[str, str] = field(default_factory=dict)
    digits: list[str] = field(default_factory=list)  # one entry per GET DATA / WAIT FOR DIGIT
    commands: list[str] = field(default_factory=list)
    deadlines: list[float] = field(default_factory=list)  # SET AUTOHANGUP seconds, in order

    def reply(self, line: str) -> str:
        self.commands.append(line)
        try:
            words = shlex.split(line)
        except ValueError:
            return "520 Invalid command syntax.  Proper usage not available."
        verb = " ".join(words[:2]).upper()
        if verb == "SET VARIABLE" and len(words) == 4:
            self.variables[words[2]] = words[3]
            return "200 result=1"
        if verb == "EXEC MSET" and len(words) == 3:
            # As Asterisk's MSet(): name=value pairs separated by commas.
            for pair in words[2].split(","):
                name, _, value = pair.partition("=")
                self.variables[name] = value
            return "200 result=0"
        if verb == "GET VARIABLE" and len(words) == 3:
            known = self.variables.get(words[2])
            return "200 result=0" if known is None else f"200 result=1 ({known})"
        if verb == "SET AUTOHANGUP" and len(words) == 3:
            # The session's deadline, not part of what the caller experiences: kept apart.
            self.commands.pop()
            self.deadlines.append(float(words[2]))
            return "200 result=0"
        if verb == "GET DATA":
            digits = self.digits.pop(0) if self.digits else ""
            return f"200 result={digits}" + ("" if digits else " (timeout)")
        if verb == "STREAM FILE":
            return "200 result=0 endpos=8000"
        if verb == "WAIT FOR":
            digits = self.digits.pop(0) if self.digits else ""
            return f"200 result={ord(digits[0]) if digits else 0}"
        if words and words[0].upper() in {"ANSWER", "VERBOSE", "EXEC", "HANGUP", "NOOP"}:
            return "200 result=0" if words[0].upper() != "VERBOSE" else "200 result=1"
        return "510 Invalid or unknown command"


async def next_command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The next command line a server sends, answering the deadline updates (SET AUTOHANGUP)
    that may come before it as Asterisk would; b"" at the end of the stream."""
    while line := await reader.readline():
        if not line.startswith(b"SET AUTOHANGUP "):
            return line
        writer.write(b"200 result=0\n")
    return b""


async def play_session(
    host: str, port: int, script: str, channel: SimulatedChannel, **env: str
) -> SimulatedChannel:
    """Connect like Asterisk does, answer every command, return when the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(environment(script, **env))
        await writer.drain()
        while line := await reader.readline():
            writer.write(channel.reply(line.decode().rstrip("\n")).encode() + b"\n")
    except ConnectionError:
        pass
    finally:
        writer.close()
    return channel
