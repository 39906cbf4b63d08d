import json, time
from datetime import UTC, datetime, timedelta
from browserhelp import BROWSER, login
pytestmark = BROWSER

def iso(s):
    return (datetime.now(UTC) - timedelta(seconds=s)).isoformat().replace("+00:00", "Z")

def call(i, state, **kw):
    c = {"id": f"17000.{i}", "state": state, "queue": "operators", "position": None,
         "since": iso(30 * i), "answered_at": None,
         "caller": {"number": f"04012345{i:02d}", "name": "", "known": None},
         "sought": None, "what_happened": "", "availability": None, "bounced": None,
         "parties": [], "earlier": {"today": 0, "last_30_days": 0}, "story": []}
    c.update(kw)
    return c

BOARD = {"seq": 1, "ami": {"connected": True},
  "waiting": [
    call(1, "waiting", position=1, caller={"number": "0401234567", "name": "<img src=x onerror=alert(1)>", "known": {"name": "Matti Mäkinen", "organisation": "Rakennus Oy"}},
         sought={"kind": "employee", "id": "bob", "name": "Bob Ringing", "path": "menu_option", "detail": "menu main, key 2"},
         what_happened="no answer after 5 s", availability={"state": "meeting", "until": iso(-3600), "note": "Back at 15"},
         earlier={"today": 1, "last_30_days": 4}),
    call(2, "waiting", position=2, sought={"kind": "operator", "id": "", "name": "Operator", "path": "operator", "detail": "menu main, key 0"}),
    call(3, "ringing", position=3, bounced={"target": "Carl Busy", "why": "busy", "by": "olga"}, what_happened="busy"),
  ],
  "active": [call(4, "active", answered_at=iso(50), parties=[{"channel": "Local/operator", "name": "Olga Operator", "number": ""}]),
             call(5, "transferring", transfer={"target": "employee:anna", "name": "Anna Virtanen", "mode": "attended", "by": "olga", "answered": True})],
  "parked": [call(6, "parked", parking={"space": "701", "lot": "default", "timeout": 45})],
}

async def test_peek(page):
    body = "event: board\nid: 1\ndata: " + json.dumps(BOARD) + "\n\n"
    async def stream(route):
        await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)
    await page.route("**/api/v1/console/stream", stream)
    await login(page, "olga")
    await page.locator("#waiting .call").first.wait_for()
    await page.keyboard.press("/")
    await page.keyboard.type("ann")
    await page.locator("#person h3").filter(has_text="Anna").wait_for()
    await page.keyboard.press("Enter")
    await page.wait_for_timeout(300)
    await page.screenshot(path="/tmp/ui/console.png")
    print(page.watch.dialogs, page.watch.errors, page.watch.console_errors)
