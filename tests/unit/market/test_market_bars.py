"""One-minute bars from trades: OHLCV against hand-computed values, minute rollover,
bounded history."""

import itertools
from decimal import Decimal

import pytest

from veloz.market.bars import BarAggregator
from veloz.model.enums import OrderSide
from veloz.model.market import Bar, TradeTick

MINUTE_NS = 60_000_000_000
T0 = 1_700_000_040 * 1_000_000_000  # exactly on a minute boundary
SECOND_NS = 1_000_000_000
_trade_ids = itertools.count(1)


def trade(price: str, size: str, ts_ns: int, symbol: str = "BTCUSDT") -> TradeTick:
    return TradeTick(
        symbol=symbol,
        trade_id=f"t{next(_trade_ids)}",
        price=Decimal(price),
        size=Decimal(size),
        aggressor=OrderSide.BUY,
        ts_ns=ts_ns,
    )


def bar(open_ns: int, ohlc: tuple[str, str, str, str], volume: str, closed: bool) -> Bar:
    o, h, low, c = (Decimal(value) for value in ohlc)
    return Bar(
        symbol="BTCUSDT",
        interval="1m",
        ts_ns=open_ns,
        open=o,
        high=h,
        low=low,
        close=c,
        volume=Decimal(volume),
        closed=closed,
    )


def test_trades_in_one_minute_build_the_open_bar() -> None:
    bars = BarAggregator()
    for price, size, offset in [
        ("100.0", "1", 0),
        ("102.5", "0.5", 10),
        ("99.0", "2", 20),
        ("101.0", "0.25", 59),
    ]:
        assert bars.on_trade(trade(price, size, T0 + offset * SECOND_NS)) is None
    expected = bar(T0, ("100.0", "102.5", "99.0", "101.0"), "3.75", closed=False)
    assert bars.bars("BTCUSDT", 10) == [expected]
    assert bars.current("BTCUSDT") == expected


def test_a_trade_in_a_new_minute_closes_the_previous_bar() -> None:
    bars = BarAggregator()
    bars.on_trade(trade("100", "1", T0 + 5 * SECOND_NS))
    bars.on_trade(trade("105", "2", T0 + 30 * SECOND_NS))
    bars.on_trade(trade("98", "1", T0 + 59 * SECOND_NS + 999_999_999))
    closed = bars.on_trade(trade("97", "3", T0 + MINUTE_NS))
    assert closed == bar(T0, ("100", "105", "98", "98"), "4", closed=True)
    assert bars.bars("BTCUSDT", 10) == [
        bar(T0, ("100", "105", "98", "98"), "4", closed=True),
        bar(T0 + MINUTE_NS, ("97", "97", "97", "97"), "3", closed=False),
    ]


def test_empty_minutes_produce_no_bar() -> None:
    bars = BarAggregator()
    bars.on_trade(trade("100", "1", T0))
    closed = bars.on_trade(trade("110", "1", T0 + 5 * MINUTE_NS + SECOND_NS))
    assert closed is not None and closed.ts_ns == T0
    assert [b.ts_ns for b in bars.bars("BTCUSDT")] == [T0, T0 + 5 * MINUTE_NS]


def test_symbols_are_aggregated_separately() -> None:
    bars = BarAggregator()
    bars.on_trade(trade("100", "1", T0, symbol="BTCUSDT"))
    assert bars.on_trade(trade("5", "10", T0 + MINUTE_NS, symbol="ETHUSDT")) is None
    assert bars.bars("BTCUSDT")[0].close == Decimal("100")
    assert bars.bars("ETHUSDT")[0].volume == Decimal("10")
    assert bars.bars("SOLUSDT") == []


def test_history_is_bounded_and_limit_returns_newest_last() -> None:
    bars = BarAggregator(history=3)
    for minute in range(6):
        bars.on_trade(trade(str(100 + minute), "1", T0 + minute * MINUTE_NS))
    history = bars.bars("BTCUSDT")
    # Three closed bars kept (minutes 2..4) plus the open one (minute 5).
    assert [b.ts_ns for b in history] == [T0 + m * MINUTE_NS for m in (2, 3, 4, 5)]
    assert [b.closed for b in history] == [True, True, True, False]
    assert [b.close for b in bars.bars("BTCUSDT", 2)] == [Decimal("104"), Decimal("105")]
    assert bars.bars("BTCUSDT", 0) == []


def test_late_trade_for_a_closed_minute_is_counted_not_applied() -> None:
    bars = BarAggregator()
    bars.on_trade(trade("100", "1", T0))
    bars.on_trade(trade("101", "1", T0 + MINUTE_NS))
    assert bars.on_trade(trade("50", "9", T0 + SECOND_NS)) is None
    assert bars.late_trades == 1
    assert [b.low for b in bars.bars("BTCUSDT")] == [Decimal("100"), Decimal("101")]


def test_returned_open_bar_does_not_change_under_the_caller() -> None:
    bars = BarAggregator()
    bars.on_trade(trade("100", "1", T0))
    snapshot = bars.bars("BTCUSDT")[-1]
    bars.on_trade(trade("120", "1", T0 + SECOND_NS))
    assert snapshot.high == Decimal("100")
    assert bars.bars("BTCUSDT")[-1].high == Decimal("120")


def test_history_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BarAggregator(history=0)


def test_a_source_with_its_own_bars_is_the_authority_for_its_symbol():
    aggregator = BarAggregator()
    aggregator.on_trade(trade("100", "1", T0))
    # The source's bar for that minute (a kline: Binance saw more trades than we did).
    kline = bar(T0, ("99", "101", "98", "100.5"), "7", closed=True)
    assert aggregator.on_bar(kline)
    assert aggregator.bars("BTCUSDT") == [kline]  # the trade-built open bar is gone
    # Trades of the next minute build the open bar; when it closes the source's bar counts.
    aggregator.on_trade(trade("102", "1", T0 + MINUTE_NS))
    assert aggregator.on_trade(trade("103", "1", T0 + 2 * MINUTE_NS)) is None
    assert [b.ts_ns for b in aggregator.bars("BTCUSDT")] == [T0, T0 + 2 * MINUTE_NS]
    next_kline = bar(T0 + MINUTE_NS, ("102", "102", "101", "101"), "3", closed=True)
    assert aggregator.on_bar(next_kline)
    assert aggregator.bars("BTCUSDT")[:2] == [kline, next_kline]


def test_a_source_bar_for_a_minute_already_kept_is_refused():
    aggregator = BarAggregator()
    kline = bar(T0, ("99", "101", "98", "100.5"), "7", closed=True)
    assert aggregator.on_bar(kline)
    assert not aggregator.on_bar(kline)  # repeated after a reconnect
    assert not aggregator.on_bar(bar(T0 - MINUTE_NS, ("1", "1", "1", "1"), "1", closed=True))
    assert aggregator.bars("BTCUSDT") == [kline]
