"""Roles per company (issue 12): the authorisation walk (tests/authwalk.py) asks every declared
API route and every page, as users of two companies and of every company, for their own
company's things, the other company's and things that do not exist, on SQLite and PostgreSQL:
nothing of one company reaches a user of the other, and every route declares how its company is
found."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authwalk import USERS, walk
from vaihde.api.app import routes


def test_every_route_declares_how_its_company_is_found():
    undeclared = [f"{r.method} {r.path}" for r in routes() if r.company is None]
    assert undeclared == []


async def test_nothing_crosses_over_between_companies(db, tmp_path):
    report = await walk(db, tmp_path)
    assert report.undeclared == []
    assert report.errors == []
    assert report.leaks == 0, "\n".join(report.details)
    # Every route and page, by every user, for own / other / missing things.
    assert report.routes == len(routes()) and report.pages >= 7
    assert report.requests >= report.routes * len(USERS)
    print(f"walk: {report.routes} routes, {report.pages} pages, {report.requests} requests, "
          f"{report.leaks} leaks")
