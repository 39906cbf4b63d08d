"""Who the client is behind trusted reverse proxies (pure): forwarded headers only from trusted
peers, the right-most untrusted address, the scheme the client used."""

from __future__ import annotations

import ipaddress

from vaihde.http.forwarded import Origin, client_origin, forwarded_elements

PROXY = [ipaddress.ip_network("10.0.0.5"), ipaddress.ip_network("192.168.1.0/24")]


def xff(*values: str, proto: tuple[str, ...] = ()) -> dict[str, list[str]]:
    return {"x-forwarded-for": list(values), "x-forwarded-proto": list(proto)}


def test_headers_from_an_untrusted_peer_are_ignored():
    # Anyone can send these: from a client they must change nothing.
    assert client_origin("203.0.113.9", xff("1.2.3.4", proto=("https",)), PROXY) == Origin(
        "203.0.113.9", None)
    assert client_origin("203.0.113.9", xff("1.2.3.4"), []) == Origin("203.0.113.9", None)
    assert client_origin("10.0.0.5", xff("1.2.3.4"), []) == Origin("10.0.0.5", None)


def test_the_right_most_untrusted_address_is_the_client():
    assert client_origin("10.0.0.5", xff("198.51.100.7"), PROXY).address == "198.51.100.7"
    # The client made up the first entry; our proxy appended the address it really saw.
    assert client_origin("10.0.0.5", xff("6.6.6.6, 198.51.100.7"), PROXY).address == (
        "198.51.100.7")
    # Two proxies of ours in a row are skipped; headers given twice are one list.
    got = client_origin("10.0.0.5", xff("6.6.6.6, 198.51.100.7", "192.168.1.20"), PROXY)
    assert got.address == "198.51.100.7"
    # Only proxies of ours: the left-most is as far back as anyone knows.
    assert client_origin("10.0.0.5", xff("192.168.1.3, 192.168.1.4"), PROXY).address == (
        "192.168.1.3")
    # No header from a trusted proxy: the proxy itself.
    assert client_origin("10.0.0.5", {}, PROXY) == Origin("10.0.0.5", None)


def test_addresses_with_ports_and_ipv6_are_normalised():
    assert client_origin("10.0.0.5", xff("198.51.100.7:5555"), PROXY).address == "198.51.100.7"
    assert client_origin("10.0.0.5", xff("2001:DB8::1"), PROXY).address == "2001:db8::1"
    # An IPv4 peer seen through an IPv6 socket is still the trusted proxy.
    assert client_origin("::ffff:10.0.0.5", xff("198.51.100.7"), PROXY).address == (
        "198.51.100.7")


def test_the_scheme_comes_from_the_proxy_and_only_http_or_https():
    assert client_origin("10.0.0.5", xff("198.51.100.7", proto=("https",)), PROXY).scheme == (
        "https")
    assert client_origin("10.0.0.5", xff("198.51.100.7", proto=("gopher",)), PROXY).scheme is None
    # One protocol per address: the client's entry says what the client used.
    got = client_origin("10.0.0.5", xff("198.51.100.7, 192.168.1.20", proto=("https, http",)),
                        PROXY)
    assert got == Origin("198.51.100.7", "https")
    # Otherwise the one our nearest proxy set.
    got = client_origin("10.0.0.5", xff("6.6.6.6, 198.51.100.7", proto=("https",)), PROXY)
    assert got == Origin("198.51.100.7", "https")


def test_rfc_7239_forwarded():
    headers = {"forwarded": ['for=6.6.6.6;proto=http, for="[2001:db8::7]:4711";proto=https',
                             "for=192.168.1.20;proto=http;by=10.0.0.5"]}
    assert client_origin("10.0.0.5", headers, PROXY, "forwarded") == Origin("2001:db8::7",
                                                                             "https")
    # In forwarded mode X-Forwarded-For is not read (the proxy may pass a client's through).
    assert client_origin("10.0.0.5", xff("198.51.100.7"), PROXY, "forwarded") == Origin(
        "10.0.0.5", None)
    assert forwarded_elements(['For="_hidden";Proto=HTTPS']) == [{"for": "_hidden",
                                                                  "proto": "HTTPS"}]
