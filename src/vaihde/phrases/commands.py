"""`vaihde phrases [--language fi]`: every sentence vaihde speaks to callers, for the admin."""

from __future__ import annotations

import argparse

from vaihde.phrases import LANGUAGES, listing


def cmd_phrases(args: argparse.Namespace) -> int:
    languages = (args.language,) if args.language else LANGUAGES
    print(listing(languages), end="")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    phrases = sub.add_parser("phrases", help="what vaihde says to callers, per language")
    phrases.add_argument("--language", choices=LANGUAGES, help="only this language")
    phrases.set_defaults(func=cmd_phrases)
