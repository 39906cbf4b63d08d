"""AGI wire format: replies, usage blocks, hangup notices, environment, quoting."""

import pytest

from vaihde.agi.protocol import (
    AgiCommandError,
    AgiHangup,
    AgiProtocolError,
    EnvironmentParser,
    ReplyAssembler,
    format_command,
    parse_reply,
    quote,
    split_script,
)


@pytest.mark.parametrize(
    ("line", "result", "data", "endpos"),
    [
        ("200 result=1", "1", None, None),
        ("200 result=0 endpos=12345", "0", None, 12345),
        ("200 result=49 endpos=800", "49", None, 800),
        ("200 result=-1 endpos=0", "-1", None, 0),
        ("200 result=123 (timeout)", "123", "timeout", None),
        ("200 result= (timeout)", "", "timeout", None),
        ("200 result=1 (a (nested) value)", "1", "a (nested) value", None),
        ("200 result=1 (with spaces and ) inside)", "1", "with spaces and ) inside", None),
    ],
)
def test_parse_reply(line, result, data, endpos):
    reply = parse_reply(line)
    assert (reply.code, reply.result, reply.data, reply.endpos) == (200, result, data, endpos)


def test_parse_reply_rejects_garbage():
    with pytest.raises(AgiProtocolError):
        parse_reply("hello there")


def test_usage_block_is_one_error_and_resyncs():
    asm = ReplyAssembler()
    assert asm.feed("520-Invalid command syntax.  Proper usage follows:") is None
    assert asm.feed(" Usage: GET DATA <file to be streamed> [timeout] [max digits]") is None
    with pytest.raises(AgiCommandError) as err:
        asm.feed("520 End of proper usage.")
    assert err.value.code == 520
    assert "Usage: GET DATA" in err.value.message
    # The next command's reply is read normally: no desync after a usage block.
    assert asm.feed("200 result=1").result == "1"


def test_hangup_notice_then_reply():
    asm = ReplyAssembler()
    assert asm.feed("HANGUP") is None
    assert asm.hungup
    assert asm.feed("200 result=-1").result == "-1"


def test_dead_channel_and_unknown_command():
    with pytest.raises(AgiHangup):
        ReplyAssembler().feed("511 Command Not Permitted on a dead channel or intercept routine")
    with pytest.raises(AgiCommandError) as err:
        ReplyAssembler().feed("510 Invalid or unknown command")
    assert err.value.code == 510


def test_environment_block():
    parser = EnvironmentParser()
    lines = [
        "agi_network: yes",
        "agi_network_script: inbound?lang=fi",
        "agi_callerid: 0401234567",
        "agi_calleridname: Virtanen: Anna",
        "agi_accountcode: ",
        "agi_arg_1: first",
        "agi_arg_2: second",
    ]
    for line in lines:
        assert parser.feed(line) is False
    assert parser.feed("") is True
    env = parser.env
    assert env.calleridname == "Virtanen: Anna"
    assert env.get("agi_accountcode") == ""
    assert env.args == ["first", "second"]
    assert split_script(env.network_script) == ("inbound", {"lang": "fi"})


@pytest.mark.parametrize("line", ["GET / HTTP/1.1", "agi_x", "foo: bar", "agi_a b: c"])
def test_environment_rejects_non_agi(line):
    with pytest.raises(AgiProtocolError):
        EnvironmentParser().feed(line)


def test_empty_environment_is_an_error():
    with pytest.raises(AgiProtocolError):
        EnvironmentParser().feed("")


def test_split_script_normalises_path():
    assert split_script("/flows//inbound/?a=1&a=2&b=") == ("flows/inbound", {"a": "1", "b": ""})


def test_quote_matches_res_agi_parse_args():
    assert quote('say "hi" \\ now') == '"say \\"hi\\" \\\\ now"'
    assert format_command("SET VARIABLE", "X", "a b", 5) == b'SET VARIABLE "X" "a b" 5\n'


@pytest.mark.parametrize("bad", ["line\nbreak", "nul\x00", "cr\r"])
def test_quote_refuses_control_characters(bad):
    with pytest.raises(ValueError, match="control character"):
        quote(bad)


def test_overlong_command_refused():
    with pytest.raises(ValueError, match="longer than"):
        format_command("VERBOSE", "x" * 3000)
