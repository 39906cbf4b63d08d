"""The sandbox's pure parts: apt mirror discovery, generated Asterisk config, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaihde.sandbox import chroot, instance
from vaihde.sandbox.__main__ import main as cli_main
from vaihde.sandbox.chroot import (
    SandboxError,
    choose_mirror,
    find_mirror,
    parse_deb822,
    parse_one_line,
)
from vaihde.sandbox.instance import Endpoint, InstanceSettings, render_config

REPO = Path(__file__).resolve().parents[2]

# Example hosts only (RFC 2606 names): no real mirror is named in the repo.
DEB822 = """\
Types: deb
# a comment between fields
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
"""

THIRD_PARTY = """\
Types: deb
URIs: https://repo.example.com/node_20.x
Suites: nodistro
Components: main
"""


def test_deb822_picks_main_archive_not_security() -> None:
    sources = parse_deb822(DEB822)
    assert [s.uri for s in sources] == [
        "http://mirror.example.org/debian",
        "http://security.example.org/debian-security",
    ]
    assert choose_mirror(sources) == "http://mirror.example.org/debian"


def test_security_listed_first_is_still_skipped() -> None:
    stanzas = DEB822.split("\n\n")
    reordered = parse_deb822(stanzas[1] + "\n\n" + stanzas[0])
    assert choose_mirror(reordered) == "http://mirror.example.org/debian"


def test_third_party_and_disabled_entries_are_ignored() -> None:
    disabled = DEB822.replace("Types: deb\n#", "Enabled: no\nTypes: deb\n#", 1)
    assert choose_mirror(parse_deb822(THIRD_PARTY)) is None
    assert choose_mirror(parse_deb822(disabled)) is None


def test_one_line_format_with_options() -> None:
    text = """\
# deb http://old.example.org/debian buster main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
http://security.example.org/debian-security bookworm-security main
deb-src http://src.example.org/debian bookworm main
deb http://mirror.example.net/debian/ bookworm main contrib
deb https://packages.example.com/apt cloud-sdk main
"""
    sources = parse_one_line(text)
    assert [s.uri for s in sources] == [
        "http://security.example.org/debian-security",
        "http://src.example.org/debian",
        "http://mirror.example.net/debian",
        "https://packages.example.com/apt",
    ]
    assert choose_mirror(sources) == "http://mirror.example.net/debian"


def test_find_mirror_reads_both_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(chroot.MIRROR_ENV, raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "other.sources").write_text(THIRD_PARTY)
    (tmp_path / "sources.list.d" / "debian.sources.disabled").write_text(DEB822)
    with pytest.raises(SandboxError, match="no Debian mirror"):
        find_mirror(tmp_path)
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert find_mirror(tmp_path) == "http://mirror.example.org/debian"
    (tmp_path / "sources.list").write_text("deb http://first.example.org/debian sid main\n")
    assert find_mirror(tmp_path) == "http://first.example.org/debian"
    monkeypatch.setenv(chroot.MIRROR_ENV, "http://env.example.org/debian/")
    assert find_mirror(tmp_path) == "http://env.example.org/debian"


def _settings(**overrides: object) -> InstanceSettings:
    values: dict[str, object] = {
        "name": "unit",
        "ami_port": 15038,
        "sip_port": 15060,
        "rtp_start": 21000,
        "rtp_end": 21999,
        "ami_secret": "s3cret-unit",
        "agi_url": "agi://127.0.0.1:14573",
        "operators": "Local/operator@vaihde-test-phones&PJSIP/op2",
        "operator_timeout": 20,
        "endpoints": [
            {"name": "sipp-phone", "contact": "sip:sipp@127.0.0.1:15070"},
            {"name": "alice", "password": "pw-alice"},
        ],
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


def _render(settings: InstanceSettings, extra: dict[str, str] | None = None) -> dict[str, str]:
    manager = (REPO / "config" / "asterisk" / "manager-vaihde.conf").read_text()
    return render_config(settings, manager, "; dialplan\n", extra)


def test_extensions_conf_has_globals_and_includes() -> None:
    files = _render(_settings(), {"vaihde-test.conf": "[vaihde-test-phones]\n"})
    ext = files["extensions.conf"]
    assert "static = yes" in ext and "writeprotect = yes" in ext
    assert "VAIHDE_AGI = agi://127.0.0.1:14573" in ext
    assert "VAIHDE_OPERATORS = Local/operator@vaihde-test-phones&PJSIP/op2" in ext
    assert "VAIHDE_OPERATOR_TIMEOUT = 20" in ext
    lines = ext.splitlines()
    assert lines.index("[globals]") < lines.index("#include vaihde.conf")
    assert lines.index("#include vaihde.conf") < lines.index("#include vaihde-test.conf")
    assert files["vaihde.conf"] == "; dialplan\n"
    assert files["vaihde-test.conf"] == "[vaihde-test-phones]\n"


def test_further_instances_are_the_dialplans_next_agi_urls_with_the_same_secret() -> None:
    ext = _render(_settings(agi_secret="s" * 20, agi_fallbacks=[
        "agi://127.0.0.1:14600", "agi://10.0.0.2:4573/"]))["extensions.conf"]
    lines = ext.splitlines()
    assert "VAIHDE_AGI = agi://127.0.0.1:14573/" + "s" * 20 in lines
    assert "VAIHDE_AGI2 = agi://127.0.0.1:14600/" + "s" * 20 in lines
    assert "VAIHDE_AGI3 = agi://10.0.0.2:4573/" + "s" * 20 in lines
    assert not [line for line in lines if line.startswith("VAIHDE_AGI4")]
    assert "VAIHDE_AGI2" not in _render(_settings())["extensions.conf"]
    with pytest.raises(SandboxError, match="at most 3"):
        _settings(agi_fallbacks=[f"agi://127.0.0.1:{14600 + n}" for n in range(4)])
    with pytest.raises(SandboxError, match="agi://"):
        _settings(agi_fallbacks=["http://127.0.0.1:14600"])
    with pytest.raises(SandboxError, match="line breaks"):
        _render(_settings(agi_fallbacks=["agi://127.0.0.1:14600/\nVAIHDE_OPERATORS = x"]))


def test_asterisks_own_event_timestamps_only_when_asked_for() -> None:
    assert "timestampevents" not in _render(_settings())["manager.conf"]
    manager = _render(_settings(timestamp_events=True))["manager.conf"]
    general = manager.split("[general]", 1)[1].split("[", 1)[0]
    assert "timestampevents = yes" in general.splitlines()


def test_manager_secret_substituted_and_permissions_kept() -> None:
    files = _render(_settings())
    user = files["manager-vaihde.conf"]
    assert "[vaihde]" in user
    assert "secret = s3cret-unit" in user
    assert "change-me" not in user
    original = (REPO / "config" / "asterisk" / "manager-vaihde.conf").read_text()
    for line in original.splitlines():
        if line.startswith(("read", "write", "permit", "deny")):
            assert line in user.splitlines()
    manager = files["manager.conf"]
    assert "bindaddr = 127.0.0.1" in manager
    assert "port = 15038" in manager
    assert "#include manager-vaihde.conf" in manager


def _classes(conf: str, section: str, key: str) -> set[str]:
    inside = False
    for line in conf.splitlines():
        if line.startswith("["):
            inside = line.strip() == f"[{section}]"
        elif inside and line.split("=")[0].strip() == key:
            return {c.strip() for c in line.partition("=")[2].split(",")}
    raise AssertionError(f"no {key} in [{section}]")


def test_the_shipped_ami_user_has_only_the_classes_vaihde_uses() -> None:
    """Least privilege (docs/deploying.md): what vaihde reads and writes, nothing that runs
    commands or programs, touches Asterisk's files, or places calls."""
    shipped = (REPO / "config" / "asterisk" / "manager-vaihde.conf").read_text()
    # system is read only for ContactStatus (phones registering); never written.
    assert _classes(shipped, "vaihde", "read") == {
        "system", "call", "dialplan", "agi", "agent", "dtmf", "user"
    }
    assert _classes(shipped, "vaihde", "write") == {"call", "agent", "reporting"}
    assert "permit = 127.0.0.1/255.255.255.255" in shipped.splitlines()


def test_the_driver_user_exists_only_when_asked_for() -> None:
    assert "vaihde-test-driver" not in _render(_settings())["manager.conf"]
    manager = _render(_settings(driver_secret="drv;secret"))["manager.conf"]
    assert "[vaihde-test-driver]" in manager and "secret = drv\\;secret" in manager
    assert "originate" in _classes(manager, "vaihde-test-driver", "write")
    assert not {"system", "command", "config", "all"} & _classes(
        manager, "vaihde-test-driver", "write"
    )


@pytest.mark.parametrize("field", ["ami_secret", "driver_secret"])
def test_the_example_secret_is_refused(field: str) -> None:
    with pytest.raises(SandboxError, match="example"):
        _settings(**{field: "change-me"})


def test_ports_and_endpoints() -> None:
    files = _render(_settings())
    pjsip = files["pjsip.conf"]
    assert "bind = 127.0.0.1:15060" in pjsip
    assert "contact = sip:sipp@127.0.0.1:15070" in pjsip
    assert "match = 127.0.0.1:15070" in pjsip
    assert "password = pw-alice" in pjsip
    assert pjsip.count("allow = ulaw,alaw") == 2
    assert pjsip.count("direct_media = no") == 2
    assert "rtpstart = 21000" in files["rtp.conf"] and "rtpend = 21999" in files["rtp.conf"]
    assert "astetcdir => /vaihde/unit/etc" in files["asterisk.conf"]
    assert "astdatadir" not in files["asterisk.conf"]  # sounds stay at the shared default
    assert "autoload = yes" in files["modules.conf"]
    assert "noload => chan_iax2" in files["modules.conf"]


def test_values_cannot_break_out_of_their_line() -> None:
    with pytest.raises(SandboxError):
        _render(_settings(operators="PJSIP/a\n#include /etc/passwd"))
    with pytest.raises(SandboxError):
        _settings(ami_secret="x\n[admin]")
    with pytest.raises(SandboxError):
        Endpoint(name="bad]name", contact="sip:x@127.0.0.1")
    # ';' would start a comment and silently cut the value.
    assert "VAIHDE_OPERATORS = a\\;b" in _render(_settings(operators="a;b"))["extensions.conf"]


def test_settings_validation() -> None:
    with pytest.raises(SandboxError):
        _settings(rtp_start=22000, rtp_end=21000)
    with pytest.raises(SandboxError):
        Endpoint(name="both", contact="sip:x@127.0.0.1", password="p")
    with pytest.raises(SandboxError, match="unknown keys"):
        InstanceSettings.from_mapping({"name": "x", "amiport": 1})
    with pytest.raises(SandboxError):
        _settings(extra_dialplan=["/tmp/a/extensions.conf"])
    assert len(InstanceSettings().ami_secret) >= 16  # a random secret when none is given


def test_build_refuses_without_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chroot.os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError, match="needs root") as info:
        chroot.build(tmp_path / "never-built")
    assert info.value.exit_code == 2
    assert not (tmp_path / "never-built").exists()


def test_cli_reports_errors_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(chroot.os, "geteuid", lambda: 1000)
    assert cli_main(["--root", str(tmp_path / "sb"), "build"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sandbox: ") and "needs root" in err
    assert "Traceback" not in err


def test_missing_debootstrap_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chroot.shutil, "which", lambda *a, **k: None)
    with pytest.raises(SandboxError, match="apt-get install debootstrap"):
        chroot.find_debootstrap()


def test_start_refuses_without_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chroot.os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError, match="needs root"):
        instance.Instance(_settings(), root=tmp_path).start()


def test_agi_port_parsing() -> None:
    assert instance.agi_port("agi://127.0.0.1:14573") == 14573
    assert instance.agi_port("agi://127.0.0.1:14573/inbound") == 14573
    assert instance.agi_port("agi://localhost") == 4573
    with pytest.raises(SandboxError):
        _settings(agi_url="http://127.0.0.1:14573")
    assert instance.Instance(_settings()).agi_port == 14573


def test_queue_has_the_operators_as_members_and_is_a_global() -> None:
    template = (REPO / "config" / "asterisk" / "queues-vaihde.conf").read_text()
    files = render_config(_settings(), "[vaihde]\nsecret = x\n", "; dialplan\n", None, template)
    queues = files["queues.conf"].splitlines()
    start = queues.index("[vaihde-switchboard]")
    assert "strategy = ringall" in "\n".join(queues[start:])
    assert queues[-2:] == ["member => Local/operator@vaihde-test-phones", "member => PJSIP/op2"]
    assert "VAIHDE_QUEUE = vaihde-switchboard" in files["extensions.conf"]
    assert "channelvars = VAIHDE_CALL_ID,VAIHDE_REASON,VAIHDE_SOUGHT" in files["manager.conf"]


def test_no_queue_means_operators_are_rung_directly() -> None:
    files = _render(_settings(queue=""))
    assert "member =>" not in files["queues.conf"]
    assert "VAIHDE_QUEUE = \n" in files["extensions.conf"]


def test_shipped_dialplan_files_are_all_written() -> None:
    files = render_config(
        _settings(), "[vaihde]\nsecret = x\n",
        {"vaihde.conf": "; main\n#include vaihde-console.conf\n", "vaihde-console.conf": "; c\n"},
    )
    assert files["vaihde-console.conf"] == "; c\n"
    with pytest.raises(SandboxError):
        render_config(_settings(), "[vaihde]\nsecret = x\n", {"other.conf": ""})
    with pytest.raises(SandboxError):
        _settings(queue="bad name;")


def test_service_settings_point_a_vaihde_at_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaihde.config.settings import loads

    for name in ("VAIHDE_AMI_SECRET", "VAIHDE_DB_URL", "VAIHDE_PROMPTS_DIR",
                 "VAIHDE_PROMPTS_ASTERISK_DIR"):
        monkeypatch.delenv(name, raising=False)
    from vaihde.sandbox.instance import Instance

    inst = Instance(_settings(ami_secret='se"cr:et {x}'), root=tmp_path)
    text = inst.service_settings(database_url="sqlite:///db.sqlite", company_file="c.yaml",
                                 service_extra="  mobile_dial: PJSIP/{number}@trunk")
    settings = loads(text, str(tmp_path / "settings.yaml"))
    assert settings.fastagi.port == 14573 and settings.ami.port == 15038
    assert settings.ami.secret == 'se"cr:et {x}'
    assert settings.database_url == "sqlite:///db.sqlite"
    assert settings.mobile_dial == "PJSIP/{number}@trunk"
    assert str(settings.prompts_dir).endswith("/vaihde/unit/sounds")
    assert settings.prompts_asterisk_dir == "/vaihde/unit/sounds"


def test_team_queues_from_the_shipped_template_without_members() -> None:
    from vaihde.sandbox.instance import render_queues_conf

    template = (REPO / "config" / "asterisk" / "queues-vaihde.conf").read_text()
    text = render_queues_conf(template, "vaihde-switchboard", "PJSIP/op1&PJSIP/op2",
                              ["sales-q", "help-q"])
    sections = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line
            sections[current] = []
        elif current and line.strip() and not line.lstrip().startswith(";"):
            sections[current].append(line)
    # The operators are members of the switchboard's queue only; team queues inherit the
    # template and have no members (vaihde adds them).
    assert [x for x in sections["[vaihde-switchboard]"] if x.startswith("member")] == [
        "member => PJSIP/op1", "member => PJSIP/op2"]
    assert not any(x.startswith("member") for x in sections["[vaihde-team](!)"])
    assert "joinempty = paused,unavailable,invalid  ; nobody who could answer: the caller " \
        "goes on at once" in sections["[vaihde-team](!)"]
    assert sections["[sales-q](vaihde-team)"] == [] and sections["[help-q](vaihde-team)"] == []
    with pytest.raises(SandboxError):
        _settings(team_queues=["bad]name"])
    with pytest.raises(SandboxError):
        _settings(team_queues=["vaihde-switchboard"])


def test_a_qualified_contact_is_pinged() -> None:
    files = _render(_settings(endpoints=[
        {"name": "soft", "contact": "sip:soft@127.0.0.1:15074", "qualify": 1}]))
    assert "qualify_frequency = 1" in files["pjsip.conf"]
    with pytest.raises(SandboxError):
        Endpoint(name="soft", contact="sip:x@127.0.0.1", qualify=-1)
