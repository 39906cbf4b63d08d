"""Each company number's music class as an Asterisk global (vaihde.ami.music): which globals a
set of companies wants, what a change sends (pure), and the edge's login and change behaviour
against a recording client."""

import asyncio

import pytest

from vaihde.ami.client import AmiActionError
from vaihde.ami.music import NumberMusic, changes, wanted
from vaihde.company import parse_company


def company(cid: str, numbers: list[str], music: str = "") -> object:
    extra = f", music_on_hold: {music}" if music else ""
    listed = "".join(f'  "{n}": {{label: Main, menu: main}}\n' for n in numbers)
    return parse_company(f"""\
company: {{id: {cid}, name: {cid.title()} Oy, language: en, languages: [en]{extra}}}
numbers:
{listed}hours:
  mon-sun: 00:00-24:00
  closed_action: {{operator: true}}
menus:
  main:
    prompt: {{en: Choose}}
    options:
      1: {{employee: {cid}-anna}}
teams:
  {cid}-ops: {{name: Operators, kind: operators, members: [{cid}-anna]}}
employees:
  {cid}-anna: {{name: Anna, devices: [desk: PJSIP/{cid}-anna]}}
""", f"{cid}.yaml")


ALFA = company("alfa", ["+358201234567"])
BETA = company("beta", ["0201234568", "+46812345678"], "client-b")


def test_every_number_wants_its_company_s_class_by_the_digits_the_dialplan_has():
    assert wanted([ALFA, BETA]) == {
        "358201234567": "", "0201234568": "client-b", "46812345678": "client-b"}


def test_a_change_sends_what_differs_and_empties_numbers_no_one_has_any_more():
    sent = {"358201234567": "", "0201234568": "client-b", "46812345678": "client-b"}
    beta_plain = company("beta", ["0201234568"])
    assert changes(sent, wanted([ALFA, beta_plain])) == {"0201234568": "", "46812345678": ""}
    assert changes(sent, wanted([ALFA, BETA])) == {}
    # A number that had no class and is gone needs nothing: its global is already empty.
    assert changes({"111": ""}, {}) == {}


class Recorder:
    def __init__(self, fail: str = "") -> None:
        self.connected = True
        self.sent: list[dict[str, str]] = []
        self.fail = fail
        self.hooks: list[object] = []

    async def action(self, action, timeout=None):
        await asyncio.sleep(0)
        if action["Variable"] == self.fail:
            raise AmiActionError("no such thing", action="Setvar")
        self.sent.append(dict(action))
        return {"Response": "Success"}

    def add_on_connected(self, hook) -> None:
        self.hooks.append(hook)


async def test_each_login_sets_every_number_and_a_change_only_what_changed():
    companies = [ALFA, BETA]
    client = Recorder()
    music = NumberMusic(client, lambda: companies)
    music.attach()
    assert client.hooks == [music.resync]
    await music.resync(client)
    assert sorted((a["Variable"], a["Value"]) for a in client.sent) == [
        ("VAIHDE_MOH_0201234568", "client-b"), ("VAIHDE_MOH_358201234567", ""),
        ("VAIHDE_MOH_46812345678", "client-b")]
    assert all(a["Action"] == "Setvar" and "Channel" not in a for a in client.sent)

    client.sent.clear()
    companies = [ALFA, company("beta", ["0201234568"], "client-c")]
    await music.changed()
    assert sorted((a["Variable"], a["Value"]) for a in client.sent) == [
        ("VAIHDE_MOH_0201234568", "client-c"), ("VAIHDE_MOH_46812345678", "")]

    # After a new login (Asterisk may have restarted) everything again.
    client.sent.clear()
    await music.resync(client)
    assert len(client.sent) == 2


async def test_a_refused_global_fails_the_login_and_a_change_is_logged_not_raised(caplog):
    client = Recorder(fail="VAIHDE_MOH_0201234568")
    music = NumberMusic(client, lambda: [ALFA, BETA])
    with pytest.raises(AmiActionError):
        await music.resync(client)
    await music.changed()  # logged; the next login sets everything
    assert "music on hold per number not updated" in caplog.text
    assert "0201234568" not in music.sent
