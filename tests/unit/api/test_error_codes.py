"""Error codes are an enum with an HTTP status each, and no module spells a code the
enum does not have (the modules still passing strings are checked here, the rest by
mypy)."""

import ast
from pathlib import Path

import pytest

import veloz
from veloz.api.errors import http_status
from veloz.model.errors import CommandRejected, ErrorCode, VelozError

SOURCES = sorted(Path(veloz.__file__).parent.rglob("*.py"))


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_an_http_status(code):
    assert 400 <= http_status(code) <= 599


def test_refusals_answer_their_documented_statuses():
    # The statuses docs/api.md promises for the order routes.
    expected = {
        ErrorCode.BAD_JSON: 400,
        ErrorCode.BAD_PARAMS: 400,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.DUPLICATE_CLIENT_ORDER_ID: 409,
        ErrorCode.ORDER_FINAL: 409,
        ErrorCode.RISK_REJECTED: 422,
        ErrorCode.TRADING_DISABLED: 423,
        ErrorCode.RATE_LIMIT_EXCEEDED: 429,
        ErrorCode.NOT_READY: 503,
        ErrorCode.JOURNAL_UNAVAILABLE: 503,
    }
    assert {code: http_status(code) for code in expected} == expected


def test_a_mistyped_code_fails_where_it_is_raised():
    with pytest.raises(ValueError, match="not_fuond"):
        CommandRejected("no order x", code="not_fuond")
    assert CommandRejected("x", code="not_found").code is ErrorCode.NOT_FOUND


def _spelled_codes(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals used as an error code: `code="..."` and `x.code == "..."`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "code":
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                found.append((node.value.lineno, node.value.value))
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Attribute)
            and node.left.attr == "code"
        ):
            found += [
                (c.lineno, c.value)
                for c in node.comparators
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
    return found


def test_every_code_spelled_as_a_string_is_an_error_code():
    known = {code.value for code in ErrorCode}
    unknown = [
        f"{path.relative_to(path.parents[2])}:{line}: {code!r}"
        for path in SOURCES
        for line, code in _spelled_codes(ast.parse(path.read_text()))
        if code not in known
    ]
    assert unknown == []


def test_the_base_error_defaults_to_a_known_code():
    assert VelozError("x").code in set(ErrorCode)
