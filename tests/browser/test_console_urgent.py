"""The console's "Urgent messages" panel in the real page: an urgent message nobody has
confirmed is listed with whom it is for and from whom, in the state the database holds (README:
"the console's "Urgent messages" panel marks it for the operators")."""

from __future__ import annotations

from browserhelp import BROWSER, login
from test_console_profile import PROFILED

pytestmark = BROWSER

URGENT_STATE = {"open": "waiting for confirmation", "exhausted": "NOBODY CONFIRMED: take over"}


async def test_an_unconfirmed_urgent_message_is_on_the_operators_panel(page, vaihde):
    from vaihde.company import parse_company
    from vaihde.company.apply import apply_company
    from vaihde.dispatch import store as dispatch
    from vaihde.messages import store as messages
    from vaihde.messages.model import MessageDraft, Recipient

    company = parse_company(PROFILED, "company.yaml")
    result = await apply_company(vaihde.db.sessions, company, applied_by="test",
                                 source_name="company.yaml")
    assert result.applied
    await vaihde.live.check_for_changes()
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    assert await page.locator("#urgent-panel").is_hidden()  # nothing urgent yet
    async with vaihde.db.sessions.begin() as session:
        message = await messages.create_message(
            session, MessageDraft(Recipient("employee", "anna"), caller_number="0401234599",
                                  caller_name="Pekka Kiire", note="Vesivahinko"),
            company, channels=("email",))
        made = await dispatch.start_dispatch(session, message, company, rota="duty",
                                             company_key=company.id)
    async with vaihde.db.sessions() as session:
        stored = await dispatch.get_dispatch(session, made.id, company)
    assert stored is not None and stored.status in URGENT_STATE
    item = page.locator("#urgent li.urgent").filter(has_text="Pekka Kiire")
    await item.wait_for(timeout=15_000)  # the panel re-reads every 5 s
    assert await page.locator("#urgent-panel").is_visible()
    assert await item.locator(".name").text_content() == "Anna Virtanen ← Pekka Kiire, 0401234599"
    state = await item.locator(".state").text_content() or ""
    assert state.startswith(URGENT_STATE[stored.status])
    assert await page.locator("#urgent-count").text_content() == "1"
