"""BinanceRestSource against the fake Binance: quotes, new trades once, closed bars once,
the documented weights, and a longer interval while the weight budget runs low."""

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from tests.integration.binance.test_market_ws import Collector, eventually, past_minute
from tests.support.fake_binance import FakeBinance
from veloz.binance.limits import RateBudget, RateLimiter
from veloz.binance.rest import BinanceRest
from veloz.market.binance_rest import BinanceRestSource
from veloz.market.engine import MarketDataEngine
from veloz.model.market import Bar, QuoteTick, TradeTick

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(secret="s", symbols=SYMBOLS) as running:
        running.set_book("BTCUSDT", bids=[("100.00", "1")], asks=[("101.00", "2")])
        running.set_book("ETHUSDT", bids=[("10.00", "3")], asks=[("10.10", "4")])
        yield running


async def test_polls_quotes_new_trades_and_closed_bars_once(fake: FakeBinance) -> None:
    fake.clock_offset_ms = -1000  # a trade from before we start: history, not news
    old = await fake.publish_trade("BTCUSDT", "99", "1")
    fake.clock_offset_ms = 0
    rest = BinanceRest(fake.rest_url, limiter=RateLimiter())
    source = BinanceRestSource(rest, SYMBOLS, poll_interval_s=0.02)
    engine, seen = MarketDataEngine(), Collector()
    engine.subscribe(seen)
    await engine.start(source)
    try:
        await seen.until(lambda: {q.symbol for q in seen.of(QuoteTick)} == set(SYMBOLS))
        btc = next(q for q in seen.of(QuoteTick) if q.symbol == "BTCUSDT")
        assert (btc.bid, btc.ask, btc.bid_size, btc.ask_size) == (
            Decimal("100.00"),
            Decimal("101.00"),
            Decimal(1),
            Decimal(2),
        )
        new = [await fake.publish_trade("BTCUSDT", str(100 + i), "1") for i in range(3)]
        eth = await fake.publish_trade("ETHUSDT", "10.05", "2", buyer_is_maker=True)
        opened = past_minute(1)
        await fake.close_kline("ETHUSDT", close="10", volume="5", open_time_ms=opened)
        expected = {str(t.trade_id) for t in [*new, eth]}
        await seen.until(lambda: set(seen.trade_ids()) == expected and bool(seen.of(Bar)))
        polls = source.stats.messages
        await eventually(lambda: source.stats.messages > polls + 4)  # a few more rounds
        assert sorted(seen.trade_ids()) == sorted(expected)  # each once, the old one never
        assert str(old.trade_id) not in seen.trade_ids()
        assert [(b.symbol, b.ts_ns, b.close) for b in seen.of(Bar)] == [
            ("ETHUSDT", opened * 1_000_000, Decimal(10))
        ]
        assert next(t for t in seen.of(TradeTick) if t.symbol == "ETHUSDT").aggressor == "SELL"
        assert source.stats.connected
    finally:
        await engine.stop()
        await rest.close()
    weights = {"/api/v3/ticker/bookTicker": 4, "/api/v3/klines": 2}
    counted = sum(weights.get(r.path, 25) for r in fake.requests)
    assert sum(fake.used_weight.values()) == counted


async def test_low_headroom_stretches_the_interval(fake: FakeBinance) -> None:
    budget = RateBudget(kind="REQUEST_WEIGHT", interval="MINUTE", interval_num=1, limit=1000)
    rest = BinanceRest(fake.rest_url, limiter=RateLimiter([budget], share=1.0))
    source = BinanceRestSource(rest, SYMBOLS, poll_interval_s=0.01, max_poll_interval_s=0.08)
    engine = MarketDataEngine()
    await engine.start(source)
    try:
        # Each round weighs 4 + 2 x (25 + 2) = 58: from the 13th on, under a quarter is
        # left and the interval doubles each round, while there is room for three more.
        await eventually(lambda: source.current_interval_s == 0.08)
        assert rest.limiter.headroom()["REQUEST_WEIGHT_1m"] < 0.25
    finally:
        await engine.stop()
        await rest.close()


async def test_a_failed_poll_marks_the_source_disconnected(fake: FakeBinance) -> None:
    rest = BinanceRest(fake.rest_url, limiter=RateLimiter())
    source = BinanceRestSource(rest, SYMBOLS, poll_interval_s=0.01)
    seen = Collector()
    await source.poll(seen)
    assert source.stats.connected
    await fake.stop()
    await source.poll(seen)
    assert not source.stats.connected
    await rest.close()
