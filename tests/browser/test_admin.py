"""The admin edits the company configuration in the browser: a broken file shows every problem
with its line and applies nothing; a good change shows its diff, applies, and the console's
directory shows it (accent-insensitive search, names as text)."""

from __future__ import annotations

from browserhelp import BROWSER, login, new_context
from company import COMPANY

pytestmark = BROWSER

NEW_PEOPLE = (
    "  dora: {name: Dóra Ääkkönen, devices: [desk: Local/anna@vaihde-test-phones]}\n"
    "  eve: {name: \"<img src=x onerror=alert(1)> Eve\", "
    "devices: [desk: Local/anna@vaihde-test-phones]}\n"
)
BROKEN = (
    COMPANY.replace("      5: {message: anna}\n",
                    "      5: {message: anna}\n      6: {employee: nobody}\n")
    + NEW_PEOPLE.replace("Local/anna@vaihde-test-phones]}\n  eve", "bad dev ice]}\n  eve")
)
GOOD = COMPANY + NEW_PEOPLE


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


async def test_admin_checks_diffs_and_applies_and_the_console_shows_it(page, browser, base_url):
    await login(page, "admin")
    assert page.url.endswith("/admin")
    editor = page.locator("#yaml")
    await page.locator("#editor-state").filter(has_text="applied version loaded").wait_for()
    assert "Anna Virtanen" in await editor.input_value()  # the applied configuration
    assert await page.locator("#apply").is_disabled()

    # A broken file: every problem with its line, the lines marked, nothing applicable.
    await editor.fill(BROKEN)
    await page.click("#check")
    problems = page.locator("#problems li.problem")
    await page.locator("#result-title").filter(has_text="2 problem(s)").wait_for()
    texts = await problems.all_text_contents()
    menu_line, device_line = line_of(BROKEN, "nobody"), line_of(BROKEN, "bad dev ice")
    assert any(t.startswith(f"line {menu_line}: ") and "no employee 'nobody'" in t
               for t in texts), texts
    assert any(t.startswith(f"line {device_line}: ") and "must be a device" in t
               for t in texts), texts
    marked = await page.locator("#gutter span.bad").all_text_contents()
    assert sorted(int(n) for n in marked) == sorted([menu_line, device_line])
    await page.click("#diff")
    await page.locator("#editor-state").filter(has_text="diff failed").wait_for()
    assert await page.locator("#apply").is_disabled()

    # Clicking a problem selects its line in the editor.
    await problems.filter(has_text=f"line {device_line}").locator("a").click()
    selected = await editor.evaluate("t => t.value.slice(t.selectionStart, t.selectionEnd)")
    assert "bad dev ice" in selected

    # A good file: no problems, a diff, then Apply (and only then).
    await editor.fill(GOOD)
    await page.click("#check")
    await page.locator("#result-title").filter(has_text="No problems").wait_for()
    await page.click("#diff")
    diff = page.locator("#diff-text")
    await diff.wait_for(state="visible")
    text = await diff.text_content()
    assert "Dóra Ääkkönen" in text and "<img src=x onerror=alert(1)> Eve" in text
    await page.locator("#apply:enabled").wait_for()

    # Editing after the diff takes Apply away until the new text was diffed.
    await editor.press("End")
    await editor.type(" ")
    assert await page.locator("#apply").is_disabled()
    await editor.fill(GOOD)
    await page.click("#diff")
    await page.locator("#apply:enabled").wait_for()
    await page.click("#apply")
    await page.locator("#result-title").filter(has_text="Applied: version 2").wait_for()
    assert not page.watch.dialogs

    # The operator's console finds the new people (accents ignored) and shows names as text.
    console = await new_context(browser, base_url)
    try:
        operator = await console.new_page()
        dialogs: list[str] = []
        operator.on("dialog", lambda d: dialogs.append(d.message))
        await login(operator, "olga")
        await operator.press("body", "/")
        await operator.keyboard.type("aakkonen")
        await operator.locator("#people .entry .name").filter(has_text="Dóra Ääkkönen").wait_for()
        await operator.fill("#search", "eve")
        row = operator.locator("#people .entry .name").filter(has_text="Eve")
        await row.wait_for()
        assert await row.text_content() == "<img src=x onerror=alert(1)> Eve"
        assert await operator.locator("#people img").count() == 0
        assert not dialogs
    finally:
        await console.close()


async def test_admin_reads_what_vaihde_says_to_callers(page):
    from vaihde.phrases import CATALOG, KEYS

    await login(page, "admin")
    await page.click("button.tab[data-view=phrases]")
    view = page.locator("#view-phrases")
    await view.locator("h2").filter(has_text=f"({len(KEYS)} phrases)").wait_for()
    row = view.locator("tr").filter(has_text="offer.operator")
    assert await row.locator("td").all_text_contents() == [
        "offer.operator", CATALOG["fi"]["offer.operator"], CATALOG["sv"]["offer.operator"],
        CATALOG["en"]["offer.operator"],
    ]
    assert await view.locator("td").filter(has_text="vm-intro").count() == 1


BEETA = """\
company: {id: beta, name: Beeta Ab, language: en, languages: [en]}
numbers:
  "0201234568": {label: Beeta, menu: main}
hours: {mon-sun: 00:00-24:00, closed_action: {operator: true}}
menus:
  main: {prompt: {en: Choose, sound: beep}, options: {1: {employee: bea}}}
teams:
  beta-ops: {name: Switchboard, kind: operators, members: [otto]}
employees:
  bea: {name: Bea Berg, devices: [desk: Local/noanswer@vaihde-test-phones]}
  otto: {name: Otto Operator, devices: [desk: Local/answers@vaihde-test-phones]}
"""


async def test_admin_picks_the_second_company_and_applies_to_it_alone(page, vaihde):
    """Several companies: the picker chooses whose file is checked, diffed and applied
    (?company=), and the first company is left exactly as it was."""
    from vaihde.company.apply import apply_company
    from vaihde.company.load import parse_company
    from vaihde.directory.store import latest_config

    await apply_company(vaihde.db.sessions, parse_company(BEETA, "beta.yaml"),
                        applied_by="test", source_name="beta.yaml")
    await vaihde.live.check_for_changes()
    async with vaihde.db.sessions() as session:
        main_before = await latest_config(session, "main")
        beta_before = await latest_config(session, "beta")
    assert main_before is not None and beta_before is not None
    main_version = vaihde.live.tenant("main").version

    await login(page, "admin")
    editor, picker = page.locator("#yaml"), page.locator("#company")
    await page.locator("#editor-state").filter(has_text="applied version loaded").wait_for()
    assert await page.locator("#company-picker").is_visible()
    assert await picker.locator("option").all_text_contents() == [
        "Testi Oy (main)", "Beeta Ab (beta)"]
    assert "Anna Virtanen" in await editor.input_value()  # the first company's, first

    await picker.select_option("beta")
    await page.wait_for_function(
        "() => document.getElementById('yaml').value.includes('Bea Berg')")
    assert "Anna Virtanen" not in await editor.input_value()
    changed = (await editor.input_value()).replace(
        "employees:\n",
        "employees:\n  berit: {name: Berit Beeta, "
        "devices: [desk: Local/busy@vaihde-test-phones]}\n", 1)
    await editor.fill(changed)
    await page.click("#check")
    await page.locator("#result-title").filter(has_text="No problems").wait_for()
    await page.click("#diff")
    diff = page.locator("#diff-text")
    await diff.wait_for(state="visible")
    text = await diff.text_content()
    assert "Berit Beeta" in text and "Anna Virtanen" not in text
    await page.click("#apply:enabled")
    await page.locator("#result-title").filter(has_text="Applied: version").wait_for()

    async with vaihde.db.sessions() as session:
        main_after = await latest_config(session, "main")
        beta_after = await latest_config(session, "beta")
    assert beta_after is not None and beta_after.id > beta_before.id
    assert "berit" in beta_after.document and "berit" not in main_after.document
    # The first company: the same version, the same document, the same live configuration.
    assert (main_after.id, main_after.sha256) == (main_before.id, main_before.sha256)
    assert vaihde.live.tenant("main").version == main_version
    assert "berit" in vaihde.live.tenant("beta").config.employees
    assert "berit" not in vaihde.live.tenant("main").config.employees
