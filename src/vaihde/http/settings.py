"""The HTTP server's settings (`service.http` in the settings file): where it listens, how long
a client may take and hold a connection, how much it may send, and which reverse proxies are
trusted to say who the client is.

Defaults are safe for a server on the open network and keep the demo working; every value is
checked, and a mistake is reported as `file:line: service.http.field: what`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vaihde.config.safe_yaml import DEFAULT_LIMITS
from vaihde.config.source import Reader

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Which header a trusted proxy writes: nginx's and most proxies' X-Forwarded-For (with
# X-Forwarded-Proto), or RFC 7239's Forwarded. Only one is read: a proxy that writes one
# usually passes the other through from the client untouched.
PROXY_HEADERS = ("x-forwarded-for", "forwarded")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # An idle keep-alive connection is closed after this long (aiohttp's default is an hour).
    keepalive_s: int = 15
    # A request's line and headers must arrive within this long of its first byte (of the
    # connection, for the first request): a client trickling headers is cut off.
    header_timeout_s: int = 10
    # A request's body must arrive within this long of its headers.
    body_timeout_s: int = 30
    # No request body may be larger (endpoints have smaller limits of their own); the
    # largest legitimate one is a company file, as large as one read from disk may be (8 MiB:
    # 10,000 employees written out in full are 4.5 MiB). At 4 MiB the admin page refused such
    # a company that `vaihde config apply` took.
    max_body_bytes: int = DEFAULT_LIMITS.max_bytes
    # Open HTTP connections at most (console streams included); more are answered 503 and
    # closed at once, so the FastAGI server always has file descriptors for calls.
    max_connections: int = 256
    # Peers whose forwarded headers are believed (addresses or networks); () = none.
    trusted_proxies: tuple[IpNetwork, ...] = ()
    proxy_header: str = "x-forwarded-for"


DEFAULT = HttpSettings()


def parse_http(r: Reader) -> HttpSettings:
    """Read `service.http`; problems go to `r.problems` (the caller raises them together)."""
    host = r.host("host", "127.0.0.1")
    # 0 = any free port (tests, several instances on one machine).
    port = r.int("port", DEFAULT.port, low=0, high=65535)
    keepalive = r.int("keepalive_s", DEFAULT.keepalive_s, low=1, high=3600)
    header = r.int("header_timeout_s", DEFAULT.header_timeout_s, low=1, high=300)
    body = r.int("body_timeout_s", DEFAULT.body_timeout_s, low=1, high=3600)
    max_body = r.int("max_body_bytes", DEFAULT.max_body_bytes, low=1024, high=256 * 1024 * 1024)
    max_connections = r.int("max_connections", DEFAULT.max_connections, low=8, high=100_000)
    proxies: list[IpNetwork] = []
    for node in r.list("trusted_proxies"):
        text = node.text if node.text is not None else node.value
        try:
            proxies.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError:
            r.error(node, f"not an IP address or network (like 10.0.0.5 or 10.0.0.0/24): "
                          f"{text!r}")
    proxy_header = r.str("proxy_header", DEFAULT.proxy_header).lower()
    if proxy_header not in PROXY_HEADERS:
        r.error(r.node.value["proxy_header"],
                f"must be x-forwarded-for or forwarded, not {proxy_header!r}")
        proxy_header = DEFAULT.proxy_header
    r.done()
    return HttpSettings(host=host, port=port, keepalive_s=keepalive, header_timeout_s=header,
                        body_timeout_s=body, max_body_bytes=max_body,
                        max_connections=max_connections, trusted_proxies=tuple(proxies),
                        proxy_header=proxy_header)
