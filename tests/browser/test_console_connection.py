"""The console's connection indicator: when the page loses the service, or the service loses
Asterisk, the page says so, and it recovers by itself (with the board re-read)."""

from __future__ import annotations

from dataclasses import replace

from browserhelp import BROWSER, login
from test_first_call import call  # tests/integration: a simulated caller (AMI Originate)

from vaihde.service import Service

pytestmark = BROWSER


async def test_page_that_loses_the_service_says_so_and_recovers(page, ami, vaihde):
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    port = vaihde.http_port
    await vaihde.stop()  # the service goes away (a restart, a crash)
    banner = page.locator("#banner")
    await banner.filter(has_text="Disconnected from the vaihde service").wait_for()
    assert await page.locator("#conn").text_content() == "disconnected"

    # A caller arrives meanwhile; the service comes back on its address, and the page
    # reconnects and catches up by itself (the login session is in the database).
    settings = replace(vaihde.settings, http=replace(vaihde.settings.http, port=port))
    again = Service(settings)
    await again.start()
    try:
        await call(ami, "0", callerid="0401110021")
        await page.locator("#conn.live").wait_for(timeout=20_000)
        await banner.wait_for(state="hidden")
        await page.locator("#waiting li.call").filter(has_text="0401110021").wait_for(
            timeout=30_000)
    finally:
        await again.stop()


async def test_service_that_loses_asterisk_is_shown_and_recovers(page, vaihde):
    await login(page, "olga")
    await page.locator("#conn.live").wait_for()
    session = vaihde.ami._session  # the live AMI connection; private on purpose: cut it
    assert session is not None
    session.abort("test: AMI connection cut")
    banner = page.locator("#banner")
    await banner.filter(has_text="lost its connection to Asterisk").wait_for()
    # The service reconnects by itself; the page follows without a reload.
    await banner.wait_for(state="hidden", timeout=20_000)
    await page.locator("#conn.live").wait_for()
    assert vaihde.ami.connected
