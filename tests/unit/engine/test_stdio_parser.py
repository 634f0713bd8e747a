"""`_parse_line`: the stdio text forms and JSON lines, turned into command fields, and the
lines it refuses (unknown verbs, wrong argument counts, invalid JSON)."""

import pytest

from veloz.model.errors import CommandRejected
from veloz.runtime.stdio import _parse_line


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (
            "ORDER BUY BTCUSDT 0.01 50000 c-1",
            {
                "cmd": "order",
                "side": "BUY",
                "symbol": "BTCUSDT",
                "qty": "0.01",
                "price": "50000",
                "client_order_id": "c-1",
            },
        ),
        (
            "ORDER SELL ETHUSDT 1 3000",
            {"cmd": "order", "side": "SELL", "symbol": "ETHUSDT", "qty": "1", "price": "3000"},
        ),
        (
            "order  buy   btcusdt\t0.5 49000.5  x",
            {
                "cmd": "order",
                "side": "buy",
                "symbol": "btcusdt",
                "qty": "0.5",
                "price": "49000.5",
                "client_order_id": "x",
            },
        ),
        ("CANCEL c-1", {"cmd": "cancel", "client_order_id": "c-1"}),
        ("cancel c-1", {"cmd": "cancel", "client_order_id": "c-1"}),
        ("QUERY c-1", {"cmd": "query", "client_order_id": "c-1"}),
        ("Query c-1", {"cmd": "query", "client_order_id": "c-1"}),
        ("STATUS", {"cmd": "status"}),
        ("status", {"cmd": "status"}),
    ],
)
def test_text_forms(line, fields):
    assert _parse_line(line) == fields


@pytest.mark.parametrize(
    ("line", "count"),
    [
        ("ORDER", 0),
        ("ORDER BUY BTCUSDT 0.01", 3),
        ("ORDER BUY BTCUSDT 0.01 50000 c-1 extra", 6),
        ("CANCEL", 0),
        ("CANCEL a b", 2),
        ("QUERY", 0),
        ("QUERY a b", 2),
        ("STATUS now", 1),
    ],
)
def test_wrong_argument_counts(line, count):
    with pytest.raises(CommandRejected) as refused:
        _parse_line(line)
    assert refused.value.code == "bad_params"
    assert line.split()[0] in refused.value.message
    assert f"got {count}" in refused.value.message


@pytest.mark.parametrize("line", ["BUY BTCUSDT 1 2", "HELLO", "ORDERS x", "[1, 2]", "\ufffd\ufffd"])
def test_unknown_verbs(line):
    with pytest.raises(CommandRejected) as refused:
        _parse_line(line)
    assert refused.value.code == "bad_command"
    assert "ORDER, CANCEL, QUERY or STATUS" in refused.value.message


@pytest.mark.parametrize("cmd", ["order", "ORDER", "Order", "oRdEr"])
def test_json_cmd_is_case_insensitive(cmd):
    fields = _parse_line(
        f'{{"cmd": "{cmd}", "side": "buy", "symbol": "BTCUSDT", "qty": 0.01, "price": "50000"}}'
    )
    assert fields == {
        "cmd": "order",
        "side": "buy",
        "symbol": "BTCUSDT",
        "qty": 0.01,
        "price": "50000",
    }


def test_json_fields_keep_their_types():
    fields = _parse_line('{"cmd": "STATUS", "n": 1, "flag": true, "none": null, "list": [1]}')
    assert fields == {"cmd": "status", "n": 1, "flag": True, "none": None, "list": [1]}


def test_json_without_a_string_cmd_is_passed_on_unchanged():
    assert _parse_line('{"cmd": 5}') == {"cmd": 5}
    assert _parse_line("{}") == {}


@pytest.mark.parametrize(
    "line",
    [
        '{"cmd": ',
        "{cmd: order}",
        '{"cmd": "status"} trailing',
        "{'cmd': 'status'}",
        '{"cmd": "status",}',
        "{",
        '{"qty": 1e999}',
        '{"qty": 1' + "0" * 4300 + "}",
    ],
)
def test_invalid_json_is_bad_json(line):
    with pytest.raises(CommandRejected) as refused:
        _parse_line(line)
    assert refused.value.code == "bad_json"
    assert "invalid JSON" in refused.value.message
