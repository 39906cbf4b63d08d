"""The web pages without a browser: who lands where, the editor's YAML round-trips, the static
files stay free of inline code and HTML injection sinks, and asset serving stays in its folder.
"""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from vaihde.auth.model import Role
from vaihde.calendar.policy import NO_FILES
from vaihde.company.load import check_company_text
from vaihde.web.pages import STATIC, add_web, company_yaml, landing, may_open

COMPANY = """\
company: {name: Testi Oy, language: fi, languages: [fi, en]}
numbers:
  "0201234567": {label: Main, menu: main}
hours: {mon-fri: 08:00-16:00, closed_action: {operator: true}}
menus:
  main:
    greeting: {fi: Hei, en: Hello}
    prompt: {fi: Valitse, en: Choose}
    options:
      1: {employee: anna}
      0: {operator: true}
teams:
  ops: {name: Vaihde, kind: operators, members: [olli]}
employees:
  anna: {name: Ánna Öberg, devices: [desk: PJSIP/anna]}
  olli: {name: Olli, devices: [desk: PJSIP/olli]}
"""


def test_each_role_lands_on_its_own_page_and_only_there():
    assert landing(Role.OPERATOR) == "/console"
    assert landing(Role.ADMIN) == "/admin"
    assert landing(Role.EMPLOYEE) == "/me"
    assert landing(Role.ADMIN, "/console") == "/console"
    assert landing(Role.EMPLOYEE, "/console") == "/me"
    assert landing(Role.OPERATOR, "/admin") == "/console"
    assert landing(Role.OPERATOR, "https://evil.example/") == "/console"
    assert not may_open(Role.OPERATOR, "/admin") and may_open(Role.ADMIN, "/admin")
    assert not may_open(Role.EMPLOYEE, "/console") and may_open(Role.EMPLOYEE, "/me")


def test_the_editor_starts_from_a_file_that_means_what_is_applied():
    config = check_company_text(COMPANY, "company.yaml", NO_FILES)  # what the API checks
    text = company_yaml(config.to_document())
    assert text.startswith("company:")  # reading order, not alphabetical
    assert "Ánna Öberg" in text  # not escaped
    assert check_company_text(text, "company.yaml", NO_FILES).to_document() == (
        config.to_document()
    )


def _files(*suffixes: str) -> list:
    return sorted(p for p in STATIC.iterdir() if p.suffix in suffixes)


@pytest.mark.parametrize("path", _files(".html"), ids=lambda p: p.name)
def test_pages_have_no_inline_code_or_outside_resources(path):
    html = path.read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert re.search(r'\bsrc="/static/[a-z]+\.js"', tag), tag  # CSP allows only these
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html)  # no inline script bodies
    assert not re.search(r"\son[a-z]+\s*=", html, re.I)  # no inline handlers
    assert not re.search(r"\sstyle\s*=", html, re.I)
    assert "<style" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


@pytest.mark.parametrize("path", _files(".js"), ids=lambda p: p.name)
def test_scripts_never_parse_strings_as_html(path):
    js = path.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "createContextualFragment"):
        assert sink not in js, sink


async def test_assets_are_served_from_their_folder_only():
    app = web.Application()
    add_web(app, sessions=None)  # type: ignore[arg-type]  # these routes read no sessions
    async with TestClient(TestServer(app)) as client:
        ok = await client.get("/static/console.js")
        assert ok.status == 200 and ok.content_type == "text/javascript"
        assert "script-src 'self'" in ok.headers["Content-Security-Policy"]
        for bad in ("/static/console.html", "/static/..%2fpages.py", "/static/.hidden.js",
                    "/static/nothere.js"):
            assert (await client.get(bad)).status == 404, bad
        login = await client.get("/login")
        assert login.status == 200 and "login-form" in await login.text()
        assert login.headers["X-Frame-Options"] == "DENY"
