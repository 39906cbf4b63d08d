"""No log call's `extra=` key shadows a LogRecord attribute (`created`, `name`, `msg`…).

The standard library raises KeyError for such a key, and only when the record is made, i.e. at
the level the service logs at and not in tests that log less: a calendar sync once failed for
every employee in production that way. Checked twice: statically here (every log call in src/,
bench/ and agi/ whose keys can be read from the source), and at run time by the guard that
`vaihde.logs.setup` installs.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from vaihde import logs

REPO = Path(__file__).resolve().parents[2]
LEVELS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}


def _functions(tree: ast.AST) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _assigned(scope: ast.AST, name: str) -> list[ast.expr]:
    """Values assigned to `name` anywhere in `scope` (the enclosing function or module)."""
    out = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                out.append(node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            if isinstance(node.target, ast.Name) and node.target.id == name:
                out.append(node.value)
    return out


def extra_keys(
    value: ast.expr, scope: ast.AST, functions: dict[str, ast.AST], depth: int = 0
) -> set[str]:
    """The keys an `extra=` expression can be read to have (what cannot be read is skipped:
    the run-time guard covers it)."""
    if depth > 5:
        return set()
    keys: set[str] = set()
    if isinstance(value, ast.Dict):
        for key, item in zip(value.keys, value.values, strict=True):
            if key is None:  # {**other}
                keys |= extra_keys(item, scope, functions, depth + 1)
            elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                keys.add(key.value)
    elif isinstance(value, ast.Name):
        for assigned in _assigned(scope, value.id):
            keys |= extra_keys(assigned, scope, functions, depth + 1)
    elif isinstance(value, ast.Call):
        keys |= {k.arg for k in value.keywords if k.arg is not None}
        func = value.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        body = functions.get(called)
        if body is not None:
            for node in ast.walk(body):
                if isinstance(node, ast.Return) and node.value is not None:
                    keys |= extra_keys(node.value, body, functions, depth + 1)
    return keys


def log_calls(tree: ast.AST) -> list[tuple[int, set[str]]]:
    """(line, extra keys) of every logger call with an `extra=` in `tree`."""
    functions = _functions(tree)
    out = []
    scopes = [tree, *functions.values()]
    for scope in scopes:
        for node in ast.walk(scope):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS):
                continue
            for kw in node.keywords:
                if kw.arg == "extra":
                    out.append((node.lineno, extra_keys(kw.value, scope, functions)))
    # A call inside a function is seen from the module and from the function: keep the
    # function's view (it resolves the function's local names).
    by_line: dict[int, set[str]] = {}
    for line, keys in out:
        by_line[line] = by_line.get(line, set()) | keys
    return sorted(by_line.items())


def sources() -> list[Path]:
    files = sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "bench").rglob("*.py"))
    return [*files, REPO / "agi" / "vaihde-agi"]


def test_no_log_extra_key_is_a_logrecord_attribute():
    found, bad = 0, []
    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, keys in log_calls(tree):
            found += 1
            for key in sorted(keys & logs.RESERVED):
                bad.append(f"{path.relative_to(REPO)}:{line}: extra key {key!r} shadows "
                           "LogRecord."
                           f"{key} (KeyError at run time): name it after what it is")
    assert not bad, "\n".join(bad)
    assert found > 50  # the scan sees the service's log calls at all


@pytest.mark.parametrize(
    "code",
    [
        # The calendar sync's line that failed in production.
        'log.info("calendar synced", extra={"employee": e, "created": 1, "updated": 2})',
        'extra = {"name": n}\nlog.warning("x", extra=extra)',
        'def f():\n    ids = {"a": 1}\n    log.error("x", extra={**ids, "msg": m})',
        'class C:\n    def _x(self, **more):\n        return {"module": 1, **more}\n'
        '    def f(self):\n        log.info("x", extra=self._x(attempt=1))',
        'log.info("x", extra=dict(process=1))',
    ],
)
def test_the_scan_finds_shadowing_keys(code):
    tree = ast.parse(code)
    assert any(keys & logs.RESERVED for _, keys in log_calls(tree)), code


def test_the_guard_keeps_the_line_instead_of_raising():
    logger = logging.getLogger("vaihde.test.guard")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    old_class = logger.__class__
    try:
        logger.__class__ = logging.Logger
        with pytest.raises(KeyError, match="created"):  # what the standard library does
            logger.info("synced", extra={"created": 1})
        logs.guard_loggers()  # as logs.setup() does; loggers made before it are guarded too
        before = logs.collisions["vaihde.test.guard: created"]
        logger.info("synced", extra={"created": 1, "employee": "anna"})
    finally:
        logger.removeHandler(handler)
        logger.__class__ = old_class
    (record,) = records
    assert record.created != 1 and vars(record)["created_"] == 1
    assert vars(record)["employee"] == "anna"
    assert logs.collisions["vaihde.test.guard: created"] == before + 1
    logs.collisions.pop("vaihde.test.guard: created")


def test_text_and_json_lines_carry_the_renamed_key():
    record = logging.LogRecord("vaihde.x", logging.INFO, __file__, 1, "synced", (), None)
    record.__dict__["created_"] = 3
    assert "created_=3" in logs.TextFormatter().format(record)
    assert '"created_": 3' in logs.JsonFormatter().format(record)
