"""The Kamailio template's rendering for the sandbox (vaihde.sandbox.kamailio): pure parts only;
tests/integration/test_kamailio.py runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vaihde.sandbox.chroot import SandboxError
from vaihde.sandbox.kamailio import (
    TEMPLATE,
    KamailioSettings,
    numbers_regex,
    parse_dispatcher_list,
    render_dispatcher_list,
    render_kamailio_cfg,
)


def settings(**changes) -> KamailioSettings:  # type: ignore[no-untyped-def]
    base = {"name": "kam", "port": 15086, "asterisks": ["127.0.0.1:15060", "127.0.0.1:15096"]}
    return KamailioSettings(**{**base, **changes})


def test_the_shipped_template_gets_every_site_setting_and_keeps_the_rest():
    template = TEMPLATE.read_text()
    text = render_kamailio_cfg(template, settings(ping_interval=1).defines(Path("/x/d.list")))
    defines = dict(re.findall(r"^#!define (\w+) (.*)$", text, re.M))
    assert defines["LISTEN"] == "udp:127.0.0.1:15086"
    assert defines["DISPATCHER_LIST"] == '"/x/d.list"'
    assert defines["COMPANY_NUMBERS"] == '"^[+]?(0201234567)$"'
    assert defines["CARRIER_NETS"] == '"127.0.0.1/32"'
    assert defines["DS_ALG"] == "4"
    assert defines["PING_INTERVAL"] == "1"
    assert (defines["FR_TIMER"], defines["FR_INV_TIMER"]) == ("2000", "10000")
    # Only site settings changed (those whose example value differs: 5 of the 8).
    changed = [a for a, b in zip(template.splitlines(), text.splitlines(), strict=True) if a != b]
    assert [a.split()[1] for a in changed] == [
        "LISTEN", "DISPATCHER_LIST", "COMPANY_NUMBERS", "CARRIER_NETS", "PING_INTERVAL"]


def test_a_site_setting_missing_or_repeated_in_the_template_is_an_error():
    template = TEMPLATE.read_text()
    values = settings().defines(Path("/x/d.list"))
    lost = re.sub(r"^#!define PING_INTERVAL .*\n", "", template, flags=re.M)
    with pytest.raises(SandboxError, match="PING_INTERVAL is defined 0 times"):
        render_kamailio_cfg(lost, values)
    twice = template + "\n#!define FR_TIMER 5\n"
    with pytest.raises(SandboxError, match="FR_TIMER is defined 2 times"):
        render_kamailio_cfg(twice, values)


def test_company_numbers_match_with_or_without_a_plus_and_nothing_longer():
    regex = numbers_regex(["0201234567", "+358201234567"])
    assert regex == "^[+]?(0201234567|358201234567)$"
    for user in ("0201234567", "+0201234567", "358201234567", "+358201234567"):
        assert re.match(regex, user)
    for user in ("02012345670", "9358201234567", "020123456", "anna", ""):
        assert not re.match(regex, user)


@pytest.mark.parametrize("numbers", [[], ["020 1234"], ['020"|.*'], ["12"]])
def test_bad_company_numbers_are_refused(numbers):
    with pytest.raises(SandboxError, match="company number"):
        numbers_regex(numbers)


def test_dispatcher_list_keeps_the_order_and_refuses_duplicates_and_bad_addresses():
    text = render_dispatcher_list(["127.0.0.1:15060", "10.0.0.2:5060"])
    assert text.splitlines()[1:] == ["1 sip:127.0.0.1:15060", "1 sip:10.0.0.2:5060"]
    with pytest.raises(SandboxError, match="listed twice"):
        render_dispatcher_list(["127.0.0.1:15060", "127.0.0.1:15060"])
    for bad in ("127.0.0.1", "host:5060", "300.0.0.1:5060", "127.0.0.1:0"):
        with pytest.raises(SandboxError, match="IPv4 address and port"):
            render_dispatcher_list([bad])
    with pytest.raises(SandboxError, match="at least one"):
        render_dispatcher_list([])


@pytest.mark.parametrize(("change", "message"), [
    ({"carrier_nets": ["10.0.0.0/33"]}, "carrier net"),
    ({"algorithm": "random"}, "algorithm"),
    ({"ping_interval": 0}, "ping_interval"),
    ({"fr_timer_ms": 20000, "fr_inv_timer_ms": 10000}, "timers"),
    ({"name": "a b"}, "invalid kamailio name"),
    ({"port": 70000}, "listen address"),
])
def test_bad_settings_are_refused(change, message):
    with pytest.raises(SandboxError, match=message):
        settings(**change)


def test_hash_over_call_id_is_algorithm_0():
    assert settings(algorithm="hash-callid").defines(Path("/d"))["DS_ALG"] == "0"


def test_dispatcher_state_is_read_from_kamcmd_output():
    # `kamcmd dispatcher.list` of Kamailio 5.6 with one Asterisk down.
    output = """{
\tNRSETS: 1
\tRECORDS: {
\t\tSET: {
\t\t\tID: 1
\t\t\tTARGETS: {
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.1:15796
\t\t\t\t\tFLAGS: IP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.1:15760
\t\t\t\t\tFLAGS: AP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
"""
    assert parse_dispatcher_list(output) == {
        "sip:127.0.0.1:15796": "IP", "sip:127.0.0.1:15760": "AP"}
