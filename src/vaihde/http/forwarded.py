"""Who the client is behind trusted reverse proxies (pure: no I/O).

A proxy appends the address it received a request from to X-Forwarded-For (or adds a
`for=` element to RFC 7239's Forwarded), so the list reads client, proxy 1, proxy 2, …, and the
last entry was written by the proxy we talk to. Everything left of an address we do not trust
may be made up by that address, so the client is the right-most entry that is not one of our
trusted proxies. Headers from a peer that is not a trusted proxy are ignored altogether.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from vaihde.http.settings import IpNetwork

MAX_ENTRIES = 50  # a longer chain is not a real one; it is read from the right this far
SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class Origin:
    address: str  # the client's address as the rate limits and logs see it
    scheme: str | None  # what the client used, if a trusted proxy said so


def _address(token: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a list entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
    `[2001:db8::1]:4711` (quoted in Forwarded); None for `unknown`, `_hidden` and the like."""
    text = token.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: str | None, trusted: Sequence[IpNetwork]) -> bool:
    if address is None:
        return False
    found = _address(address)
    if found is None:
        return False
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        found = found.ipv4_mapped
    return any(found in net for net in trusted)


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def forwarded_elements(values: Sequence[str]) -> list[dict[str, str]]:
    """RFC 7239 Forwarded header values → one dict per element (lower-case keys)."""
    out: list[dict[str, str]] = []
    for element in _split(values):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            key, sep, value = pair.partition("=")
            if sep:
                pairs[key.strip().lower()] = value.strip().strip('"')
        out.append(pairs)
    return out


def _pick(chain: list[str], trusted: Sequence[IpNetwork]) -> int | None:
    """Index of the right-most entry that is not a trusted proxy (None: the chain is empty)."""
    if not chain:
        return None
    start = max(0, len(chain) - MAX_ENTRIES)
    for i in range(len(chain) - 1, start - 1, -1):
        if not _trusted(chain[i], trusted):
            return i
    return start  # every entry is one of ours: the left-most is as far as anyone knows


def _canonical(token: str) -> str:
    found = _address(token)
    if found is None:
        return token.strip().strip('"')[:100] or "?"
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        found = found.ipv4_mapped
    return str(found)


def _scheme(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return text if text in SCHEMES else None


def client_origin(
    peer: str | None,
    headers: dict[str, list[str]],
    trusted: Sequence[IpNetwork],
    header: str = "x-forwarded-for",
) -> Origin:
    """The client behind `peer` (the socket's address). `headers` maps lower-case header
    names to all their values; `header` is the one the proxies write (x-forwarded-for, with
    x-forwarded-proto, or forwarded)."""
    me = Origin(_canonical(peer) if peer else "?", None)
    if not trusted or not _trusted(peer, trusted):
        return me
    if header == "forwarded":
        elements = forwarded_elements(headers.get("forwarded", []))
        chain = [e.get("for", "") for e in elements]
        i = _pick(chain, trusted)
        if i is None:
            return me
        # The element naming the client was written by the proxy it connected to: its proto
        # is the scheme the client used.
        return Origin(_canonical(chain[i]), _scheme(elements[i].get("proto")))
    chain = _split(headers.get("x-forwarded-for", []))
    protos = _split(headers.get("x-forwarded-proto", []))
    i = _pick(chain, trusted)
    if i is None:
        return Origin(me.address, _scheme(protos[-1]) if protos else None)
    # A list of protocols as long as the address list lines up with it; otherwise the one
    # the nearest proxy set.
    proto = protos[i] if len(protos) == len(chain) else (protos[-1] if protos else None)
    return Origin(_canonical(chain[i]), _scheme(proto))
