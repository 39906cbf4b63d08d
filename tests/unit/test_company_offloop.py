"""Company files sent to the service are checked in a separate process (vaihde.company.offloop):
the same answers as the loader gives in this process, every problem by line, and a check that
runs too long is stopped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vaihde.calendar.policy import CalendarPolicy
from vaihde.company import ConfigError
from vaihde.company.load import check_company_text
from vaihde.company.offloop import ConfigChecker, Summary
from vaihde.company.synthetic import synthetic_company_yaml

POLICY = CalendarPolicy(files_dir="/srv/calendars")


async def test_the_process_answers_what_the_loader_answers():
    text = synthetic_company_yaml(50)
    got = await ConfigChecker(POLICY).check(text, "company.yaml")
    assert got == check_company_text(text, "company.yaml", POLICY)
    assert got.to_document() == check_company_text(text, "company.yaml", POLICY).to_document()
    # Locations stay with the loader (its messages); what travels is what the service uses.
    assert got.source == "company.yaml" and got.warnings == ()
    assert got.extension_prefixes  # and the indexes built after loading


async def test_problems_come_back_by_line_with_the_checkers_calendar_rules():
    text = synthetic_company_yaml(5).replace(
        "calendar: https://calendar.suuri.example.fi/ics/e00002.ics", "calendar: /etc/passwd"
    ) + "employees_file: /etc/passwd\n"
    with pytest.raises(ConfigError) as err:
        await ConfigChecker(POLICY).check(text, "company.yaml")
    line = text.splitlines().index("    calendar: /etc/passwd") + 1
    assert err.value.problems == [
        f"company.yaml:{line}: employees.e00002.calendar: must be a file in calendar.files_dir "
        "(/srv/calendars)",
        f"company.yaml:{text.count(chr(10))}: employees_file: cannot be read here: give the "
        "employees inline",
    ]


async def test_a_check_that_takes_too_long_is_stopped():
    checker = ConfigChecker(timeout=0.001)  # less than the process needs to start
    with pytest.raises(ConfigError) as err:
        await checker.check(synthetic_company_yaml(2_000), "company.yaml")
    assert err.value.problems == [
        "company.yaml:1: (top level): checking took longer than 0.001 s and was stopped: the "
        "file is too large or too intricate"
    ]


async def test_thread_mode_gives_the_same_answers():
    text = synthetic_company_yaml(20)
    assert await ConfigChecker(POLICY, mode="thread").check(text, "c.yaml") == (
        await ConfigChecker(POLICY).check(text, "c.yaml")
    )


async def test_a_summary_is_what_the_api_check_answers():
    text = synthetic_company_yaml(30)
    summary = await ConfigChecker(POLICY).summary(text, "company.yaml")
    config = check_company_text(text, "company.yaml", POLICY)
    assert summary == Summary.of(config)
    assert summary.counts == {"employees": 30, "teams": 12, "menus": 2, "numbers": 2}
    assert summary.company == "Suuri Oy"


def test_the_checking_process_is_limited_as_documented():
    """config/README.md: stopped after 120 s; bench/README.md: nice 10, 2 GiB."""
    assert ConfigChecker().timeout == 120
    probe = (
        "import os, resource, gc\n"
        "from vaihde.company.offloop import setup_checking_process\n"
        "setup_checking_process()\n"
        "print(os.nice(0), resource.getrlimit(resource.RLIMIT_AS)[0], gc.isenabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out == [str(os.nice(0) + 10), str(2 * 1024**3), "False"]


async def test_the_next_check_s_process_is_started_ahead_and_waits_for_its_file():
    """An admin's check, diff and apply come one after another: each is answered by a process
    that was started (its imports done) before the file came, and a new one then waits."""
    checker = ConfigChecker(POLICY)
    checker.warm()
    waiting = checker._spare
    assert waiting is not None and waiting.poll() is None
    try:
        config = await checker.check(synthetic_company_yaml(5), "company.yaml")
        assert len(config.employees) == 5
        assert waiting.wait(10) == 0  # it answered this check, then ended
        following = checker._spare
        assert following is not None and following.pid != waiting.pid
        assert following.poll() is None
        summary = await checker.summary(synthetic_company_yaml(7), "company.yaml")
        assert summary.counts["employees"] == 7
        assert following.wait(10) == 0
    finally:
        checker.close()
    assert checker._spare is None


def test_a_waiting_checking_process_ends_when_the_service_is_gone():
    """kill -9 of the service closes its end of the pipe: the waiting process ends by itself,
    quietly, instead of staying behind."""
    checker = ConfigChecker(POLICY)
    checker.warm()
    waiting = checker._spare
    assert waiting is not None and waiting.stdin is not None
    waiting.stdin.close()
    assert waiting.wait(30) == 0
    assert waiting.stderr is not None and waiting.stderr.read() == b""
