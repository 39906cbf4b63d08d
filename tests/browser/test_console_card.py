"""What the operator sees, in the real console page: the call card names the company number the
caller dialled (its label from the company file) and lists the caller's last five calls (when,
whom they sought, how it ended); the directory finds people and teams by the topics they answer
for ("kalastuslupa", "invoices")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from browserhelp import BROWSER, login
from company import COMPANY, COMPANY_NUMBER
from test_first_call import call  # tests/integration: a simulated caller (AMI Originate)

pytestmark = BROWSER

NUMBER = "0401234577"


async def test_the_card_shows_the_dialled_number_and_the_callers_last_five_calls(
    page, ami, vaihde
):
    from vaihde.directory.store import add_contact

    now = datetime.now(UTC)
    earlier = [  # newest first: (days ago, sought, outcome)
        (1, "employee:anna", "answered"),
        (2, "team:ops", "message"),
        (3, "employee:bob", "noanswer"),
        (4, "", "hangup"),
        (5, "employee:carl", "busy"),
        (6, "employee:anna", "callback"),  # the sixth: not on the card
    ]
    async with vaihde.db.sessions.begin() as session:
        for days, sought, outcome in earlier:
            await add_contact(session, caller_number=NUMBER, direction="in",
                              path="menu_option", outcome=outcome,
                              employee_id=sought.partition(":")[2]
                              if sought.startswith("employee") else None,
                              details={"sought": sought}, at=now - timedelta(days=days))
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    await call(ami, "0", callerid=NUMBER)
    row = page.locator("#waiting li.call").filter(has_text=NUMBER)
    await row.wait_for(timeout=30_000)
    assert await row.locator(".dialled").text_content() == f"on Main ({COMPANY_NUMBER})"
    history = row.locator(".history li")
    await history.first.wait_for()  # the picked call's card shows them
    assert await history.count() == 5
    whom = await row.locator(".history .whom").all_text_contents()
    ended = await row.locator(".history .ended").all_text_contents()
    assert whom == ["→ Anna Virtanen", "→ Operators", "→ Bob Ringing", "→ (no choice)",
                    "→ Carl Busy"]
    assert ended == ["answered", "left a message", "no answer", "caller hung up", "busy"]
    when = await row.locator(".history .when").all_text_contents()
    assert all(when), when
    await ami.action({"Action": "Hangup", "Channel": "/^Local/.*vaihde-inbound/"})
    await row.wait_for(state="detached", timeout=10_000)


TOPICS = COMPANY.replace(
    "  anna: {name: Anna Virtanen, ",
    "  anna: {name: Anna Virtanen, title: Kalastusvalvoja, "
    "topics: [kalastuslupa, fishing permits], ",
).replace(
    "  ops: {name: Operators, kind: operators, members: [olga]}\n",
    "  ops: {name: Operators, kind: operators, members: [olga]}\n"
    "  billing: {name: Laskutus, members: [bob], title: Laskutus ja reskontra, "
    "topics: [laskut, invoices]}\n",
)


async def test_the_directory_finds_who_answers_for_a_topic(page, vaihde):
    from vaihde.company import parse_company
    from vaihde.company.apply import apply_company

    assert TOPICS != COMPANY
    result = await apply_company(vaihde.db.sessions, parse_company(TOPICS, "company.yaml"),
                                 applied_by="test", source_name="company.yaml")
    assert result.applied
    await vaihde.live.check_for_changes()
    await vaihde.directory.refresh()
    await login(page, "olga")
    await page.locator("#people .entry").first.wait_for()
    await page.keyboard.press("/")
    await page.keyboard.type("kalastus")
    anna = page.locator("#people .entry.chosen").filter(has_text="Anna Virtanen")
    await anna.wait_for()
    assert await anna.locator(".topics").text_content() == (
        "answers for: kalastuslupa, fishing permits")
    assert await anna.locator(".title").text_content() == "Kalastusvalvoja"
    await page.locator("#person").filter(has_text="Answers for: kalastuslupa").wait_for()

    await page.fill("#search", "")
    await page.keyboard.type("invoices")
    team = page.locator("#people .entry.team.chosen").filter(has_text="Laskutus")
    await team.wait_for()
    assert await team.locator(".topics").text_content() == "answers for: laskut, invoices"
    assert await page.locator("#people .entry").count() == 1
