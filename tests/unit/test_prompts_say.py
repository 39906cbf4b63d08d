"""Sentence parts for speech: times, dates and greetings read naturally in fi, sv and en."""

import shutil
import subprocess
from datetime import date, time

import pytest

from vaihde.prompts.say import MAX_NAME, clock, greeting_for, on_date, sanitize_name, speakable


@pytest.mark.parametrize(
    ("at", "language", "expected"),
    [
        (time(14, 0), "fi", "kello 14"),
        (time(14, 30), "fi", "kello 14 30"),
        (time(9, 5), "fi", "kello 9 05"),
        (time(14, 0), "sv", "klockan 14"),
        (time(14, 30), "sv", "klockan 14 30"),
        (time(14, 0), "en", "2 pm"),
        (time(14, 30), "en", "2:30 pm"),
        (time(9, 5), "en", "9:05 am"),
        (time(12, 0), "en", "12 noon"),
        (time(0, 0), "en", "midnight"),
        (time(0, 30), "en", "12:30 am"),
    ],
)
def test_clock(at, language, expected):
    assert clock(at, language) == expected


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("fi", "Anna on palaverissa 14.30 asti.", "Anna on palaverissa 14 30 asti."),
        ("fi", "Avoinna kello 8-16.30.", "Avoinna kello 8 – 16 30."),
        ("fi", "perjantaisin kello 8-15", "perjantaisin kello 8 – 15"),
        ("fi", "klo 9.00", "kello 9"),
        ("sv", "klockan 8-16.30", "klockan 8 till 16 30"),
        ("sv", "till kl. 14.00", "till klockan 14"),
        ("en", "from 8 am to 4.30 pm", "from 8 am to 4:30 pm"),
        ("en", "until 14.00", "until 2 pm"),
        ("en", "open 9-5 pm", "open 9 am to 5 pm"),
        ("en", "open 8.00-16.00", "open 8 am to 4 pm"),
        # Not times: left for espeak to read as it does.
        ("fi", "huone 8-16", "huone 8-16"),
        ("fi", "versio 1.2.3", "versio 1.2.3"),
        ("fi", "hinta 3,14.50", "hinta 3,14.50"),
        ("fi", "numero 040-1234567", "numero 040-1234567"),
        ("fi", "kello 25.00", "kello 25.00"),
        ("en", "1.75 metres", "1.75 metres"),
    ],
)
def test_speakable_times(language, text, expected):
    assert speakable(text, language) == expected


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("fi", "Suljettu 6.12. koko päivän.", "Suljettu kuudes joulukuuta koko päivän."),
        ("fi", "Suljettu 6.12.", "Suljettu kuudes joulukuuta."),
        ("fi", "lomalla 21.1.2027 asti", "lomalla kahdeskymmenesensimmäinen tammikuuta 2027 asti"),
        ("sv", "stängt 24.12.", "stängt 24:e december."),
        ("sv", "ledig till 1.7.", "ledig till 1:a juli."),
        ("en", "closed on 6.12.", "closed on 6th December."),
        ("en", "back on 22.3.2027.", "back on 22nd March 2027."),
        ("fi", "kello 10.10.", "kello 10 10."),  # a clock word before it: a time, not 10 October
        ("fi", "32.13.", "32.13."),
    ],
)
def test_speakable_dates(language, text, expected):
    assert speakable(text, language) == expected


def test_on_date():
    assert on_date(date(2027, 1, 6), "fi") == "kuudes tammikuuta"
    assert on_date(date(2027, 1, 6), "sv", with_year=True) == "6:e januari 2027"
    assert on_date(date(2027, 1, 11), "en") == "11th January"


def _ipa(text: str, voice: str) -> str:
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is not installed: run ./scripts/setup"
    out = subprocess.run(
        [espeak, "-q", "--ipa", "-v", voice, "--stdin"],
        input=text, capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    return out.stdout


@pytest.mark.parametrize(
    ("language", "voice", "text", "decimal_point"),
    [
        ("fi", "fi", "Anna on palaverissa kello 14.30 asti.", "pˌiste"),
        ("sv", "sv", "Anna är på möte till klockan 14.30.", "pˈɵŋkt"),
        ("en", "en-gb", "Anna is in a meeting until 14.30.", "pɔɪnt"),
    ],
)
def test_espeak_reads_rewritten_times_without_a_decimal_point(language, voice, text, decimal_point):
    # The reason speakable() exists: espeak-ng reads "14.30" as "fourteen point three zero".
    assert decimal_point in _ipa(text, voice)
    assert decimal_point not in _ipa(speakable(text, language), voice)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Anna", "Anna"),
        ("  Anna-Liisa  ", "Anna-Liisa"),
        ("Jörgen Åström", "Jörgen Åström"),
        ("Anna\x00\x1b[31m", "Annam"),  # the escape is gone; its letter is harmless
        ("Anna; rm -rf /", "Anna rm -rf"),
        ("<speak>Anna</speak>", "speakAnnaspeak"),
        ("[[a]] Anna", "a Anna"),
        ("Anna\nBob\t", "Anna Bob"),
        ("R2D2", "RD"),
        ("A\u0308nne", "Änne"),  # decomposed umlaut kept as one letter
        ("123", ""),
        ("--", ""),
    ],
)
def test_sanitize_name(raw, clean):
    assert sanitize_name(raw) == clean


def test_sanitize_name_caps_length_at_a_word():
    long = "Maria " * 10
    out = sanitize_name(long)
    assert len(out) <= MAX_NAME
    assert out.split() == ["Maria"] * len(out.split())
    assert len(sanitize_name("x" * 100)) == MAX_NAME


def test_greeting_for():
    assert greeting_for("Anna", "fi") == "Hei Anna"
    assert greeting_for("Anna", "sv") == "Hej Anna"
    assert greeting_for("Anna", "en") == "Hello Anna"
    assert greeting_for("$(reboot)", "fi") == "Hei reboot"
    assert greeting_for("42", "sv") == "Hej"
    assert greeting_for("Anna", "de") == "Hello Anna"
