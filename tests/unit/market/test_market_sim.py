"""The simulated market source: reproducible paths, venue-shaped quotes and trades, and a
drift-free run loop."""

import asyncio
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veloz.clock import LiveClock, SimulatedClock
from veloz.market.sim import SimMarketConfig, SimMarketSource
from veloz.model.enums import OrderSide
from veloz.model.market import QuoteTick, TradeTick

TICK_NS = 200_000_000


def make_source(**overrides: object) -> SimMarketSource:
    config = SimMarketConfig(**{"seed": 7, **overrides})  # type: ignore[arg-type]
    return SimMarketSource(config, SimulatedClock())


def run_steps(source: SimMarketSource, steps: int) -> list[QuoteTick | TradeTick]:
    emitted: list[QuoteTick | TradeTick] = []
    for n in range(steps):
        emitted.extend(source.step(n * TICK_NS))
    return emitted


def of_symbol(items: list[QuoteTick | TradeTick], symbol: str) -> list[QuoteTick | TradeTick]:
    return [item for item in items if item.symbol == symbol]


def test_same_seed_gives_identical_ticks() -> None:
    first = run_steps(make_source(symbols=("BTCUSDT", "ETHUSDT")), 300)
    second = run_steps(make_source(symbols=("BTCUSDT", "ETHUSDT")), 300)
    assert first == second


def test_different_seeds_give_different_paths() -> None:
    first = run_steps(make_source(seed=1), 50)
    second = run_steps(make_source(seed=2), 50)
    assert [q for q in first if isinstance(q, QuoteTick)] != [
        q for q in second if isinstance(q, QuoteTick)
    ]


def test_adding_a_symbol_leaves_another_symbols_path_unchanged() -> None:
    alone = run_steps(make_source(symbols=("BTCUSDT",)), 200)
    with_others = run_steps(make_source(symbols=("SOLUSDT", "BTCUSDT", "ETHUSDT")), 200)
    assert of_symbol(with_others, "BTCUSDT") == alone


def test_without_a_seed_the_clock_seeds_and_the_seed_replays() -> None:
    unseeded = SimMarketSource(SimMarketConfig(), SimulatedClock(start_ns=123_456))
    assert unseeded.seed == 123_456
    replay = make_source(seed=unseeded.seed)
    assert run_steps(unseeded, 20) == run_steps(replay, 20)


def test_quotes_are_on_grid_with_positive_spread_and_sizes() -> None:
    source = make_source(symbols=("BTCUSDT", "ETHUSDT", "DOGEUSDT"))
    instruments = source.instruments()
    quotes = [item for item in run_steps(source, 500) if isinstance(item, QuoteTick)]
    assert len(quotes) == 1500
    for quote in quotes:
        instrument = instruments[quote.symbol]
        assert quote.bid < quote.ask
        assert instrument.is_price_on_grid(quote.bid)
        assert instrument.is_price_on_grid(quote.ask)
        assert quote.bid_size > 0 and instrument.is_size_on_grid(quote.bid_size)
        assert quote.ask_size > 0 and instrument.is_size_on_grid(quote.ask_size)


def test_prices_carry_the_instruments_scale() -> None:
    source = make_source()
    quote = source.step(0)[0]
    assert isinstance(quote, QuoteTick)
    assert source.instruments()["BTCUSDT"].price_increment == Decimal("0.01")
    assert quote.bid.as_tuple().exponent == -2
    assert quote.ask.as_tuple().exponent == -2


def test_quotes_start_near_the_configured_price_and_use_defaults() -> None:
    source = make_source(
        symbols=("BTCUSDT", "XRPUSDT", "ETHUSDT"),
        start_prices={"ETHUSDT": Decimal("2000")},
    )
    quotes = {q.symbol: q for q in source.step(0) if isinstance(q, QuoteTick)}
    assert abs(quotes["BTCUSDT"].mid - 50_000) < 50
    assert abs(quotes["XRPUSDT"].mid - 100) < Decimal("0.1")
    assert abs(quotes["ETHUSDT"].mid - 2_000) < 2


def test_spread_follows_spread_bps() -> None:
    source = make_source(spread_bps=Decimal("10"))
    quote = source.step(0)[0]
    assert isinstance(quote, QuoteTick)
    spread_bps = (quote.ask - quote.bid) / quote.mid * 10_000
    # Rounding the bid down and the ask up can only widen it, by at most two increments.
    assert Decimal("10") <= spread_bps < Decimal("10.01")


def test_zero_spread_still_keeps_ask_above_bid() -> None:
    source = make_source(spread_bps=Decimal("0"))
    increment = source.instruments()["BTCUSDT"].price_increment
    for item in run_steps(source, 200):
        if isinstance(item, QuoteTick):
            assert item.ask - item.bid >= increment


def test_trades_print_at_the_touch_with_unique_ids() -> None:
    source = make_source(symbols=("BTCUSDT", "ETHUSDT"), mean_trades_per_tick=2.0)
    instruments = source.instruments()
    latest: dict[str, QuoteTick] = {}
    trades: list[TradeTick] = []
    for item in run_steps(source, 200):
        if isinstance(item, QuoteTick):
            latest[item.symbol] = item
            continue
        trades.append(item)
        quote = latest[item.symbol]
        assert item.ts_ns == quote.ts_ns
        if item.aggressor is OrderSide.BUY:
            assert item.price == quote.ask and item.size <= quote.ask_size
        else:
            assert item.price == quote.bid and item.size <= quote.bid_size
        assert item.size > 0 and instruments[item.symbol].is_size_on_grid(item.size)
    assert len(trades) > 500
    assert len({trade.trade_id for trade in trades}) == len(trades)
    assert {trade.aggressor for trade in trades} == {OrderSide.BUY, OrderSide.SELL}


def test_no_trades_when_the_trade_rate_is_zero() -> None:
    items = run_steps(make_source(mean_trades_per_tick=0.0), 100)
    assert all(isinstance(item, QuoteTick) for item in items)


def test_the_walk_moves_with_volatility_and_stays_put_without() -> None:
    moving = make_source(volatility=0.6)
    flat = make_source(volatility=0.0)
    moving_mids = {q.mid for q in run_steps(moving, 100) if isinstance(q, QuoteTick)}
    flat_mids = {q.mid for q in run_steps(flat, 100) if isinstance(q, QuoteTick)}
    assert len(moving_mids) > 10
    assert flat_mids == {Decimal("50000")}


def test_last_quote_is_the_latest_emitted() -> None:
    source = make_source()
    assert source.last_quote("BTCUSDT") is None
    source.step(0)
    latest = source.step(TICK_NS)[0]
    assert source.last_quote("BTCUSDT") == latest
    with pytest.raises(KeyError):
        source.last_quote("ETHUSDT")


@pytest.mark.parametrize(
    "overrides",
    [
        {"symbols": ()},
        {"symbols": ("BTCUSDT", "BTCUSDT")},
        {"tick_interval_ms": 0},
        {"volatility": -0.1},
        {"spread_bps": Decimal("-1")},
        {"displayed_notional": Decimal("0")},
        {"start_prices": {"BTCUSDT": Decimal("0")}},
    ],
)
def test_invalid_config_is_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimMarketConfig(**overrides)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**64),
    steps=st.integers(min_value=1, max_value=200),
    spread_bps=st.decimals(min_value=0, max_value=50, places=2),
)
def test_every_quote_is_on_grid_with_bid_below_ask(
    seed: int, steps: int, spread_bps: Decimal
) -> None:
    source = SimMarketSource(
        SimMarketConfig(
            symbols=("BTCUSDT", "SOLUSDT", "PEPEUSDT"),
            seed=seed,
            spread_bps=spread_bps,
            start_prices={"PEPEUSDT": Decimal("0.00001")},
        ),
        SimulatedClock(),
    )
    instruments = source.instruments()
    for item in run_steps(source, steps):
        instrument = instruments[item.symbol]
        if isinstance(item, QuoteTick):
            assert 0 < item.bid < item.ask
            assert instrument.is_price_on_grid(item.bid)
            assert instrument.is_price_on_grid(item.ask)
            assert instrument.is_size_on_grid(item.bid_size) and item.bid_size > 0
            assert instrument.is_size_on_grid(item.ask_size) and item.ask_size > 0
        else:
            assert instrument.is_price_on_grid(item.price)


async def test_run_ticks_at_the_interval_until_stopped() -> None:
    source = SimMarketSource(SimMarketConfig(seed=3, tick_interval_ms=10), LiveClock())
    stop = asyncio.Event()
    received: list[QuoteTick | TradeTick] = []
    task = asyncio.create_task(source.run(received.append, stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, timeout=1)
    quotes = [item for item in received if isinstance(item, QuoteTick)]
    assert 10 <= len(quotes) <= 30
    timestamps = [quote.ts_ns for quote in quotes]
    assert timestamps == sorted(timestamps)


async def test_run_stops_promptly_mid_interval() -> None:
    source = SimMarketSource(SimMarketConfig(seed=3, tick_interval_ms=60_000), LiveClock())
    stop = asyncio.Event()
    received: list[QuoteTick | TradeTick] = []
    task = asyncio.create_task(source.run(received.append, stop))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=1)
    assert len([item for item in received if isinstance(item, QuoteTick)]) == 1
