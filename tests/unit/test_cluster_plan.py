"""The cluster harness's decisions without starting anything (vaihde.sandbox.cluster): where each
part listens, what each Asterisk and each vaihde instance is configured with, the state file, and
stopping only the processes it recorded."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from vaihde.config.settings import loads
from vaihde.sandbox.chroot import SandboxError
from vaihde.sandbox.cluster import (
    ASTERISKS,
    INSTANCES,
    Cluster,
    ClusterSpec,
    Ports,
    Secrets,
    _process_record,
    asterisk_settings,
    default_ports,
    default_spec,
    kamailio_settings,
    service_settings,
    stop_recorded,
)
from vaihde.sandbox.instance import MANAGER_TEMPLATE, render_config

SPEC = ClusterSpec(name="unit", port_base=18300, rtp_base=35600,
                   operators={"ast1": "Local/op@phones", "ast2": "Local/op@phones"})


def keys(spec: ClusterSpec = SPEC) -> Secrets:
    return Secrets.new(spec)


def all_ports(ports: Ports) -> list[int]:
    out = [ports.postgres, ports.kamailio]
    for ast in ASTERISKS:
        out += [ports.ami(ast), ports.sip(ast)]
    for instance in INSTANCES:
        out += [ports.agi(instance), ports.http(instance)]
    return out


def test_every_part_has_a_port_of_its_own_within_the_block() -> None:
    ports = SPEC.ports
    used = all_ports(ports)
    assert len(set(used)) == len(used)
    assert all(18300 <= p < 18370 for p in used)
    assert ports.spare(0) == 18370 and ports.spare(29) == 18399
    assert ports.rtp("ast1") == (35600, 35699) and ports.rtp("ast2") == (35700, 35799)
    with pytest.raises(SandboxError):
        ports.spare(30)
    with pytest.raises(SandboxError):
        ports.ami("ast3")


def test_test_slots_and_the_command_line_never_share_a_port() -> None:
    blocks = [default_ports(slot) for slot in range(10)] + [default_ports(None)]
    names = [name for name, _, _ in blocks]
    assert len(set(names)) == len(names)
    seen: set[int] = set()
    for _, base, rtp in blocks:
        ports = Ports(base, rtp)
        mine = set(range(base, base + 100)) | set(range(rtp, rtp + 200))
        assert not mine & seen
        seen |= mine
        # Not the ports the other tests and benchmarks of the slots use (14573-15999, the
        # benchmarks' 16500-17599 blocks, their RTP 20000-34999).
        assert not [p for p in all_ports(ports) if 14500 <= p < 16000]
    assert not [p for p in seen if 20000 <= p < 35000]


def test_each_asterisk_tries_its_own_instance_first_and_the_other_next() -> None:
    k = keys()
    agi = {}
    for ast in ASTERISKS:
        files = render_config(asterisk_settings(SPEC, k, ast), MANAGER_TEMPLATE.read_text(),
                              "; dialplan\n")
        agi[ast] = [line for line in files["extensions.conf"].splitlines()
                    if line.startswith("VAIHDE_AGI")]
    a, b = SPEC.ports.agi("a"), SPEC.ports.agi("b")
    assert agi["ast1"] == [f"VAIHDE_AGI = agi://127.0.0.1:{a}/{k.agi}",
                           f"VAIHDE_AGI2 = agi://127.0.0.1:{b}/{k.agi}"]
    assert agi["ast2"] == [f"VAIHDE_AGI = agi://127.0.0.1:{b}/{k.agi}",
                           f"VAIHDE_AGI2 = agi://127.0.0.1:{a}/{k.agi}"]


def test_a_trunk_each_way_into_the_other_asterisks_reach_context() -> None:
    k = keys()
    one, two = (asterisk_settings(SPEC, k, ast) for ast in ASTERISKS)
    assert one.name != two.name and SPEC.system_name("ast1") == "vaihde-unit-ast1"
    trunk = {e.name: e for e in one.endpoints}["to-ast2"]
    assert trunk.contact == f"sip:127.0.0.1:{two.sip_port}" and trunk.context == "vaihde-reach"
    trunk = {e.name: e for e in two.endpoints}["to-ast1"]
    assert trunk.contact == f"sip:127.0.0.1:{one.sip_port}" and trunk.context == "vaihde-reach"
    pjsip = render_config(one, MANAGER_TEMPLATE.read_text(), "; x\n")["pjsip.conf"]
    # Calls from Asterisk 2 are taken as that trunk by their address (and port).
    assert f"match = 127.0.0.1:{two.sip_port}" in pjsip
    assert one.ami_secret != two.ami_secret and one.agi_secret == two.agi_secret
    assert "kamailio" not in {e.name for e in one.endpoints}
    assert one.operators == "Local/op@phones" and one.driver_secret


def test_kamailio_in_front_of_both_when_asked_for() -> None:
    spec = ClusterSpec(name="unit", port_base=18300, rtp_base=35600, kamailio=True)
    for ast in ASTERISKS:
        ep = {e.name: e for e in asterisk_settings(spec, keys(spec), ast).endpoints}["kamailio"]
        assert ep.contact == f"sip:kamailio@127.0.0.1:{spec.ports.kamailio}"
        assert ep.context == "vaihde-inbound"
    kam = kamailio_settings(spec, ["+358201234567"])
    assert kam.port == spec.ports.kamailio
    assert kam.asterisks == [f"127.0.0.1:{spec.ports.sip(a)}" for a in ASTERISKS]


def test_each_instance_reaches_both_asterisks_and_guards_only_its_own_sessions() -> None:
    k = keys()
    extra = "messages:\n  email: {host: 127.0.0.1, port: 18380, security: none, " \
            "from: vaihde@example.fi}\n"
    spec = ClusterSpec(name="unit", port_base=18300, rtp_base=35600, settings_extra=extra)
    texts = {i: service_settings(spec, k, i, company_file="/c/company.yaml",
                                 prompts_dir="/p", prompts_asterisk_dir="/vaihde/unit-ast1/s")
             for i in INSTANCES}
    for instance, text in texts.items():
        s = loads(text, f"settings-{instance}.yaml")
        assert s.fastagi.port == spec.ports.agi(instance) and s.fastagi.secret == k.agi
        assert s.http.port == spec.ports.http(instance)
        assert s.guard_agi_url == f"agi://127.0.0.1:{spec.ports.agi(instance)}/"
        assert [(a.name, a.port, a.secret) for a in s.asterisks] == [
            (spec.system_name(ast), spec.ports.ami(ast), k.ami[ast]) for ast in ASTERISKS]
        # A phone on Asterisk 1 is dialled from Asterisk 2 through its trunk to 1, and back.
        assert s.asterisks[0].reach_from(spec.system_name("ast2")) == "PJSIP/{resource}@to-ast1"
        assert s.asterisks[1].reach_from(spec.system_name("ast1")) == "PJSIP/{resource}@to-ast2"
        assert s.database_url == spec.database_url
        assert s.company_file == "/c/company.yaml"
        assert (s.prompts_dir, s.prompts_asterisk_dir) == ("/p", "/vaihde/unit-ast1/s")
        assert s.messaging.smtp is not None and s.messaging.smtp.port == 18380
    assert texts["a"] != texts["b"]


def test_the_spec_refuses_what_would_break_a_systemname_or_a_part() -> None:
    with pytest.raises(SandboxError, match="cluster name"):
        ClusterSpec(name="a" * 21)
    with pytest.raises(SandboxError, match="cluster name"):
        ClusterSpec(name="with.dot")
    with pytest.raises(SandboxError, match="per Asterisk"):
        ClusterSpec(endpoints={"ast3": []})
    with pytest.raises(SandboxError, match="user"):
        ClusterSpec(users=[{"name": "x", "role": "operator", "password": "p"}])
    with pytest.raises(SandboxError, match="port base"):
        ClusterSpec(port_base=65500)
    with pytest.raises(SandboxError, match="exactly one"):
        ClusterSpec(endpoints={"ast1": [{"name": "p"}]})


def test_the_command_lines_cluster_puts_each_softphone_on_one_asterisk() -> None:
    spec = default_spec("cluster", 17000, 37000)
    names = {ast: [e["name"] for e in spec.endpoints[ast]] for ast in ASTERISKS}
    assert names == {"ast1": ["operator", "caller"], "ast2": ["anna", "caller"]}
    # Asterisk 2's operators are the operator's phone on Asterisk 1, through the trunk.
    assert spec.operators == {"ast1": "PJSIP/operator", "ast2": "PJSIP/operator@to-ast1"}
    assert {u["role"] for u in spec.users} == {"operator", "admin"}
    assert Path(spec.company_file).is_file()


def test_state_is_kept_in_the_run_dir_and_read_back(tmp_path: Path) -> None:
    spec = ClusterSpec(name="unit", port_base=18300, rtp_base=35600,
                       run_dir=str(tmp_path / "run"))
    cluster = Cluster(spec)
    cluster.keys = keys(spec)
    cluster._save(spec=spec.to_dict(), secrets=cluster.keys.__dict__, status="up")
    cluster._record("a", 1)  # pid 1 runs, but was not started at this start time
    assert (tmp_path / "run" / "state.json").stat().st_mode & 0o777 == 0o600
    again = Cluster.from_run_dir(tmp_path / "run")
    assert again is not None and again.spec == spec
    assert again.keys == cluster.keys
    assert again._state["processes"]["a"]["pid"] == 1
    assert Cluster.from_run_dir(tmp_path / "nothing") is None


def test_only_the_recorded_process_is_stopped_never_one_that_reused_its_pid() -> None:
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        record = _process_record(proc.pid)
        assert not stop_recorded({**record, "start_time": record["start_time"] - 1})
        assert proc.poll() is None
        began = time.monotonic()
        assert stop_recorded(record)
        assert proc.wait(timeout=5) == -15  # SIGTERM was enough
        assert time.monotonic() - began < 5
        assert not stop_recorded(record)  # gone: nothing to do
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
