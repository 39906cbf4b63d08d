"""The account profile and the on-call list in the real console page: a real waiting call's card
shows the company's name and answer phrase with the operator's own name filled in, and (on the
picked call) its instructions, what to ask and the urgent rules; the on-call panel lists who is
on call now on each rota."""

from __future__ import annotations

from browserhelp import BROWSER, login
from company import COMPANY, COMPANY_NUMBER
from test_first_call import call  # tests/integration: a simulated caller (AMI Originate)

pytestmark = BROWSER

NUMBER = "0401234588"
PROFILED = COMPANY + """\
profile:
  answer: "Testi Oy, {operator} speaking"
  instructions: |
    Ask for the customer number first.
    Never give out mobile numbers.
  ask: [Name, Customer number]
  urgent:
    - {when: Production is down, contact: duty}
oncall:
  duty:
    name: Duty
    weekly:
      - {days: mon-sun, hours: 00:00-24:00, people: [bob, anna]}
"""


async def test_the_card_shows_the_answer_phrase_and_instructions_and_who_is_on_call(
    page, ami, vaihde
):
    from vaihde.company import parse_company
    from vaihde.company.apply import apply_company

    result = await apply_company(vaihde.db.sessions, parse_company(PROFILED, "company.yaml"),
                                 applied_by="test", source_name="company.yaml")
    assert result.applied
    await vaihde.live.check_for_changes()
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    await call(ami, "0", callerid=NUMBER)
    row = page.locator("#waiting li.call").filter(has_text=NUMBER)
    await row.wait_for(timeout=30_000)
    assert await row.locator(".dialled").text_content() == f"on Main ({COMPANY_NUMBER})"
    assert await row.locator(".profile-head .company").text_content() == "Testi Oy"
    # The operator's own display name in the company's phrase.
    assert await row.locator(".answer").text_content() == "“Testi Oy, Olga Operator speaking”"
    # The only call is the picked one: its card shows the rest of the profile.
    instructions = row.locator(".instructions")
    await instructions.wait_for(state="visible")
    assert await instructions.text_content() == (
        "Ask for the customer number first.\nNever give out mobile numbers.")
    assert await row.locator(".ask li").all_text_contents() == ["Name", "Customer number"]
    assert await row.locator(".urgent li").all_text_contents() == ["Production is down → Duty"]
    duty = page.locator("#oncall li.rota").filter(has_text="Duty")
    await duty.wait_for()
    assert await duty.locator(".person-on-call").all_text_contents() == [
        "Bob Ringing", "Anna Virtanen"]
    await ami.action({"Action": "Hangup", "Channel": "/^Local/.*vaihde-inbound/"})
    await row.wait_for(state="detached", timeout=10_000)


async def test_without_a_profile_the_card_shows_the_company_alone_and_no_on_call_panel(
    page, ami, vaihde
):
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    await call(ami, "0", callerid=NUMBER)
    row = page.locator("#waiting li.call").filter(has_text=NUMBER)
    await row.wait_for(timeout=30_000)
    assert await row.locator(".profile-head .company").text_content() == "Testi Oy"
    assert await row.locator(".answer").count() == 0
    assert await row.locator(".profile-more").count() == 0
    assert await page.locator("#oncall-panel").is_hidden()
    await ami.action({"Action": "Hangup", "Channel": "/^Local/.*vaihde-inbound/"})
    await row.wait_for(state="detached", timeout=10_000)
