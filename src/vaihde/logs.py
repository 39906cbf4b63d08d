"""Structured logging: every record carries its `extra` fields, as logfmt text or JSON lines.

`setup()` is the service's logging configuration (`vaihde serve`, `vaihde agi`, the tests). It
also guards against `extra=` keys that shadow a LogRecord attribute (`created`, `name`, `msg`…):
the standard library raises KeyError for those, and only when the level is enabled, so such a
line passes every test that logs below INFO and then breaks the job that logs it in production.
Guarded, the key is kept under `<key>_` and counted in `collisions`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

# taskName is new in Python 3.12; reserved here already so code written now stays valid there.
RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}

# "logger: key" → how often a log call used a reserved extra key since the process started.
collisions: Counter[str] = Counter()


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in RESERVED}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={_quote(v)}" for k, v in _fields(record).items())
        line = f"{ts}.{int(record.msecs):03d} {record.levelname[0]} {record.name}: "
        line += record.getMessage() + (f" {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: object) -> str:
    text = str(value)
    plain = text and " " not in text and '"' not in text
    return text if plain else json.dumps(text, ensure_ascii=False)


def safe_extra(logger: str, extra: Mapping[str, Any]) -> Mapping[str, Any]:
    """`extra` with every reserved key renamed to `<key>_` (and counted in `collisions`)."""
    if RESERVED.isdisjoint(extra):
        return extra
    out: dict[str, Any] = {}
    for key, value in extra.items():
        if key in RESERVED:
            collisions[f"{logger}: {key}"] += 1
            key = f"{key}_"
        out[key] = value
    return out


class _Guard(logging.Logger):
    """makeRecord that renames reserved extra keys instead of raising (one set test per call
    that has an `extra`)."""

    def makeRecord(
        self, name: str, level: int, fn: str, lno: int, msg: object, args: Any,
        exc_info: Any, func: str | None = None, extra: Mapping[str, object] | None = None,
        sinfo: str | None = None,
    ) -> logging.LogRecord:
        if extra:
            extra = safe_extra(name, extra)
        return super().makeRecord(name, level, fn, lno, msg, args, exc_info, func, extra, sinfo)


class GuardedLogger(_Guard):
    pass


class GuardedRootLogger(_Guard, logging.RootLogger):
    pass


def guard_loggers() -> None:
    """Guard every logger, those made before this call (module-level getLogger) included.
    Loggers of other classes (a library's own) are left alone."""
    logging.setLoggerClass(GuardedLogger)
    root = logging.getLogger()
    if type(root) is logging.RootLogger:
        root.__class__ = GuardedRootLogger
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if type(logger) is logging.Logger:
            logger.__class__ = GuardedLogger


def setup(fmt: str = "text", level: int = logging.INFO) -> None:
    guard_loggers()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
