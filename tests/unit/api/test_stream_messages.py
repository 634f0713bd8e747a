"""What the streams put on the wire and what they accept from clients: SSE frames,
WebSocket market messages, and the validation of ids, types and client messages."""

from decimal import Decimal

import pytest

from veloz.api.stream_hub import (
    KEEPALIVE_FRAME,
    ORDER_MESSAGE_TYPES,
    SSE_TYPES,
    market_message,
    sse_frame,
)
from veloz.api.streams import decode_message, parse_last_id, parse_market_request, parse_types
from veloz.engine.bus import Journaled
from veloz.engine.views.streams import stream_events
from veloz.model.enums import OrderSide, StrategyState
from veloz.model.errors import CommandRejected
from veloz.model.events import StrategyChanged
from veloz.model.market import Bar, QuoteTick, TradeTick

TRADED = {"BTCUSDT": object(), "ETHUSDT": object()}


def test_a_journaled_frame_has_id_event_and_one_line_of_json_with_exact_numbers():
    frame = sse_frame("fill", {"price": Decimal("50001.10"), "note": "a\nb"}, 42)
    assert frame == b'id: 42\nevent: fill\ndata: {"price":50001.10,"note":"a\\nb"}\n\n'


def test_a_frame_without_id_has_no_id_line():
    assert sse_frame("market", {"bid": Decimal("1.5")}) == b'event: market\ndata: {"bid":1.5}\n\n'


def test_keep_alive_is_an_sse_comment():
    assert KEEPALIVE_FRAME.startswith(b":") and KEEPALIVE_FRAME.endswith(b"\n\n")


def test_market_messages_are_keyed_by_symbol_and_channel():
    quote = QuoteTick(
        symbol="BTCUSDT",
        bid=Decimal("1.0"),
        ask=Decimal("1.2"),
        bid_size=Decimal(3),
        ask_size=Decimal(4),
        ts_ns=9,
    )
    trade = TradeTick(
        symbol="ETHUSDT",
        trade_id="t1",
        price=Decimal("3000.5"),
        size=Decimal("0.2"),
        aggressor=OrderSide.SELL,
        ts_ns=10,
    )
    bar = Bar(
        symbol="BTCUSDT",
        interval="1m",
        ts_ns=0,
        open=Decimal(1),
        high=Decimal(2),
        low=Decimal("0.5"),
        close=Decimal("1.5"),
        volume=Decimal(7),
        closed=True,
    )
    assert market_message(quote) == (
        ("BTCUSDT", "book_top"),
        {
            "type": "book_top",
            "symbol": "BTCUSDT",
            "ts_ns": 9,
            "bid": Decimal("1.0"),
            "ask": Decimal("1.2"),
            "bid_size": Decimal(3),
            "ask_size": Decimal(4),
        },
    )
    key, message = market_message(trade)
    assert key == ("ETHUSDT", "trade") and message["side"] == "SELL"
    assert message["price"] == Decimal("3000.5") and message["trade_id"] == "t1"
    key, message = market_message(bar)
    assert key == ("BTCUSDT", "kline") and message["closed"] is True
    assert message["low"] == Decimal("0.5") and message["interval"] == "1m"


@pytest.mark.parametrize(
    ("header", "query", "expected"),
    [(None, None, None), ("", None, None), ("17", None, 17), (None, "5", 5), ("9", "5", 9)],
)
def test_the_last_event_id_header_wins_over_the_query(header, query, expected):
    assert parse_last_id(header, query) == expected


@pytest.mark.parametrize(("header", "query"), [("abc", None), (None, "1.5"), (None, "-1")])
def test_a_last_id_that_is_not_a_non_negative_integer_is_refused(header, query):
    with pytest.raises(CommandRejected) as refused:
        parse_last_id(header, query)
    assert refused.value.code == "bad_params"


def test_types_filter():
    assert parse_types(None) is None and parse_types(" ") is None
    assert parse_types("market, order_update,") == frozenset({"market", "order_update"})
    with pytest.raises(CommandRejected, match="unknown stream type"):
        parse_types("market,quotes")


@pytest.mark.parametrize("raw", [b"{", "not json", "[1, 2]", "3", None])
def test_a_client_message_must_be_one_json_object(raw):
    with pytest.raises(CommandRejected) as refused:
        decode_message(raw)
    assert refused.value.code == "bad_json"


def test_a_subscription_names_known_symbols_and_channels():
    request = {"action": "subscribe", "symbols": ["btcusdt", "BTCUSDT"], "channels": ["trade"]}
    assert parse_market_request(request, TRADED) == ("subscribe", ["BTCUSDT"], ["trade"])
    request = {"action": "unsubscribe", "symbols": ["ETHUSDT"], "channels": ["kline", "book_top"]}
    assert parse_market_request(request, TRADED) == (
        "unsubscribe",
        ["ETHUSDT"],
        ["kline", "book_top"],
    )


def subscribe(symbols: object = None, channels: object = None) -> dict[str, object]:
    return {
        "action": "subscribe",
        "symbols": ["BTCUSDT"] if symbols is None else symbols,
        "channels": ["trade"] if channels is None else channels,
    }


@pytest.mark.parametrize(
    ("request_", "code", "words"),
    [
        (subscribe() | {"action": "join"}, "bad_params", "action"),
        ({"symbols": ["BTCUSDT"], "channels": ["trade"]}, "bad_params", "action"),
        (subscribe(channels=["depth"]), "bad_params", "depth"),
        (subscribe(symbols=["DOGEUSDT"]), "unknown_symbol", "DOGEUSDT"),
        (subscribe(symbols="BTCUSDT"), "bad_params", "symbols"),
        (subscribe(symbols=[]), "bad_params", "symbols"),
        ({"action": "subscribe", "symbols": ["BTCUSDT"]}, "bad_params", "channels"),
        (subscribe(symbols=[1]), "bad_params", "symbols"),
    ],
)
def test_a_bad_subscription_says_what_is_wrong(request_, code, words):
    with pytest.raises(CommandRejected) as refused:
        parse_market_request(request_, TRADED)
    assert refused.value.code == code and words in refused.value.message


def test_a_strategy_change_is_a_strategy_event_on_the_streams() -> None:
    change = StrategyChanged(
        strategy_id="s1",
        state=StrategyState.STOPPED,
        name="ema_cross",
        symbol="BTCUSDT",
        params={"fast": 10},
        reason="ValueError in on_bar: x",
        actor="engine",
        ts_ns=5,
    )
    [event] = stream_events(Journaled(42, change, None))
    assert event["type"] == "strategy" and event["seq"] == 42
    assert (event["strategy_id"], event["state"], event["reason"]) == (
        "s1",
        StrategyState.STOPPED,
        "ValueError in on_bar: x",
    )
    assert "strategy" in SSE_TYPES and "strategy" in ORDER_MESSAGE_TYPES
