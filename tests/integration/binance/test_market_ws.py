"""BinanceWsSource against the fake Binance: data reaches MarketDataEngine subscribers, the
book follows the fake's (resync on a gap), and disconnects, handovers, silence and
malformed messages lose nothing and stop nothing."""

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.support.fake_binance import FakeBinance
from veloz.binance.limits import RateLimiter
from veloz.binance.rest import BinanceRest
from veloz.market.binance_ws import BinanceWsSource, stream_names
from veloz.market.engine import MarketData, MarketDataEngine
from veloz.model.enums import OrderSide
from veloz.model.market import Bar, QuoteTick, TradeTick

SYMBOL = "BTCUSDT"
STREAMS = tuple(stream_names(SYMBOL).values())
DELAY_MS = 50
MINUTE_MS = 60_000


class Collector:
    """A MarketDataEngine subscriber that wakes waiters on every item."""

    def __init__(self) -> None:
        self.items: list[MarketData] = []
        self._changed = asyncio.Condition()

    def __call__(self, item: MarketData) -> None:
        self.items.append(item)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def of(self, kind: type) -> list[Any]:
        return [item for item in self.items if isinstance(item, kind)]

    def trade_ids(self) -> list[str]:
        return [t.trade_id for t in self.of(TradeTick)]

    def bar_opens(self) -> list[int]:
        return [b.ts_ns // 1_000_000 for b in self.of(Bar)]

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """For state nothing is published about (the book, counters): check every few ms."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - no event to wait on for these
            await asyncio.sleep(0.005)


class Feed:
    def __init__(self, fake: FakeBinance, source: BinanceWsSource, seen: Collector) -> None:
        self.fake, self.source, self.seen = fake, source, seen

    def book_matches(self) -> bool:
        book, market = self.source.book(SYMBOL), self.fake.markets[SYMBOL]
        return (
            book.synced
            and book.update_id == market.update_id
            and book.bids() == market.sorted_bids()
            and book.asks() == market.sorted_asks()
        )

    async def connected_again(self, connects: int) -> None:
        await eventually(lambda: self.fake.streams.connects >= connects)
        await self.fake.wait_for_streams(*STREAMS)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(secret="s", symbols=(SYMBOL,)) as running:
        running.set_book(SYMBOL, bids=[("100.00", "1"), ("99.00", "2")], asks=[("101.00", "3")])
        yield running


@contextlib.asynccontextmanager
async def start(fake: FakeBinance, **options: Any) -> AsyncIterator[Feed]:
    rest = BinanceRest(fake.rest_url, limiter=RateLimiter())
    options = {"reconnect_delay_ms": DELAY_MS, "snapshot_retry_s": 0.02, **options}
    source = BinanceWsSource(fake.endpoints(), [SYMBOL], rest, **options)
    engine = MarketDataEngine()
    seen = Collector()
    engine.subscribe(seen)
    await engine.start(source)
    feed = Feed(fake, source, seen)
    try:
        await fake.wait_for_streams(*STREAMS)
        await eventually(feed.book_matches)
        yield feed
    finally:
        await engine.stop()
        await rest.close()
    assert not source.stats.connected


@pytest.fixture
async def feed(fake: FakeBinance) -> AsyncIterator[Feed]:
    async with start(fake) as running:
        yield running


def past_minute(minutes_ago: int) -> int:
    return (time.time_ns() // 1_000_000 // MINUTE_MS - minutes_ago) * MINUTE_MS


# -- what comes out -----------------------------------------------------------------------


async def test_quotes_trades_and_closed_bars_reach_subscribers(feed: Feed) -> None:
    fake, seen = feed.fake, feed.seen
    fake.set_book(SYMBOL, bids=[("100.50", "4")], asks=[("101.00", "3")])
    await seen.until(lambda: any(q.bid == Decimal("100.50") for q in seen.of(QuoteTick)))
    quote = seen.of(QuoteTick)[-1]
    assert (quote.symbol, quote.ask, quote.bid_size, quote.ask_size) == (
        SYMBOL,
        Decimal("101.00"),
        Decimal(4),
        Decimal(3),
    )
    assert abs(quote.ts_ns - time.time_ns()) < 5_000_000_000  # our receive time

    trade = await fake.publish_trade(SYMBOL, "100.75", "0.5", buyer_is_maker=True)
    await fake.publish_trade(SYMBOL, "101.00", "0.1", buyer_is_maker=False)
    await seen.until(lambda: len(seen.of(TradeTick)) == 2)
    first, second = seen.of(TradeTick)
    assert first == TradeTick(
        symbol=SYMBOL,
        trade_id=str(trade.trade_id),
        price=Decimal("100.75"),
        size=Decimal("0.5"),
        aggressor=OrderSide.SELL,
        ts_ns=trade.time_ms * 1_000_000,
    )
    assert second.aggressor is OrderSide.BUY

    opened = past_minute(1)
    await fake.close_kline(SYMBOL, close="100", open_time_ms=opened, closed=False)
    await fake.close_kline(
        SYMBOL, open="99", high="102", low="98", close="101", volume="7", open_time_ms=opened
    )
    await seen.until(lambda: bool(seen.of(Bar)))
    assert seen.of(Bar) == [
        Bar(
            symbol=SYMBOL,
            interval="1m",
            ts_ns=opened * 1_000_000,
            open=Decimal(99),
            high=Decimal(102),
            low=Decimal(98),
            close=Decimal(101),
            volume=Decimal(7),
            closed=True,
        )
    ]
    assert feed.source.stats.connected and feed.source.stats.malformed == 0


async def test_the_book_follows_the_fake(feed: Feed) -> None:
    fake = feed.fake
    await fake.publish_depth(SYMBOL, bids=[("99.50", "5"), ("99.00", "0")], asks=[("102", "1")])
    fake.set_book(SYMBOL, bids=[("100.25", "1")], asks=[("100.75", "2"), ("103", "1")])
    await eventually(feed.book_matches)
    book = feed.source.book(SYMBOL)
    assert book.best_bid() == (Decimal("100.25"), Decimal(1))
    assert book.asks(1) == [(Decimal("100.75"), Decimal(2))]
    assert feed.source.stats.book_resyncs == 0


async def test_a_depth_gap_resyncs_once_and_the_book_equals_the_fakes(feed: Feed) -> None:
    fake, stats = feed.fake, feed.source.stats
    snapshots = sum(1 for r in fake.requests if r.path == "/api/v3/depth")
    fake.skip_depth_ids(SYMBOL, 3)
    await fake.publish_depth(SYMBOL, bids=[("98.00", "1")])
    await fake.publish_depth(SYMBOL, asks=[("101.00", "0"), ("101.50", "2")])
    await eventually(lambda: stats.book_resyncs == 1 and feed.book_matches())
    await fake.publish_depth(SYMBOL, bids=[("100.00", "0")])
    await eventually(feed.book_matches)
    assert stats.book_resyncs == 1
    assert sum(1 for r in fake.requests if r.path == "/api/v3/depth") == snapshots + 1


# -- disconnects --------------------------------------------------------------------------


async def test_a_drop_reconnects_after_the_delay_and_fills_the_gap_once_in_order(
    fake: FakeBinance,
) -> None:
    # Our clock starts ten minutes back, so that the bars below (in the fake's past) are
    # new to us; it is put right while we are away, so the gap fill sees them closed.
    offset_ns = [-10 * MINUTE_MS * 1_000_000]
    clock = lambda: time.time_ns() + offset_ns[0]  # noqa: E731
    async with start(fake, reconnect_delay_ms=300, now_ns=clock) as feed:
        seen, stats = feed.seen, feed.source.stats
        base = past_minute(10)
        before = [await fake.publish_trade(SYMBOL, "100", "1")]
        await fake.close_kline(SYMBOL, close="100", open_time_ms=base)
        await seen.until(lambda: len(seen.items) >= 2 and bool(seen.of(Bar)))

        await fake.drop_streams()
        dropped = time.monotonic()
        await eventually(lambda: not stats.connected)
        offset_ns[0] = 0
        # Published while nobody listens: only REST knows.
        away = [await fake.publish_trade(SYMBOL, str(100 + i), "1") for i in range(3)]
        for minute in (1, 2):
            await fake.close_kline(SYMBOL, close="101", open_time_ms=base + minute * MINUTE_MS)

        await feed.connected_again(2)
        assert time.monotonic() - dropped >= 0.3
        after = await fake.publish_trade(SYMBOL, "105", "1")
        await fake.close_kline(SYMBOL, close="102", open_time_ms=base + 3 * MINUTE_MS)
        expected = [str(t.trade_id) for t in [*before, *away, after]]
        await seen.until(lambda: seen.trade_ids() == expected and len(seen.of(Bar)) == 4)
        await eventually(feed.book_matches)
        assert seen.bar_opens() == [base + m * MINUTE_MS for m in range(4)]
        assert (stats.reconnects, stats.gap_fills, stats.gap_fill_failures) == (1, 1, 0)
        assert stats.connected


async def test_a_forced_disconnect_loses_nothing(fake: FakeBinance) -> None:
    fake.streams_disconnect_after = 5  # Binance's 24-hour cut, every five messages
    async with start(fake) as feed:
        seen = feed.seen
        published = []
        for i in range(12):
            published.append(await fake.publish_trade(SYMBOL, str(100 + i), "1"))
            await asyncio.sleep(0)
        expected = [str(t.trade_id) for t in published]
        await seen.until(lambda: seen.trade_ids() == expected)
        assert feed.source.stats.reconnects >= 1
        fake.streams_disconnect_after = None


async def test_server_shutdown_hands_over_without_a_gap(feed: Feed) -> None:
    fake, seen, stats = feed.fake, feed.seen, feed.source.stats
    first = await fake.publish_trade(SYMBOL, "100", "1")
    await seen.until(lambda: len(seen.of(TradeTick)) == 1)
    connects = fake.streams.connects
    await fake.server_shutdown()
    # The new connection is opened at once, not after the reconnect delay.
    await feed.connected_again(connects + 1)
    second = await fake.publish_trade(SYMBOL, "101", "1")
    await seen.until(lambda: seen.trade_ids() == [str(first.trade_id), str(second.trade_id)])
    await eventually(lambda: stats.reconnects == 1 and stats.connected)
    fake.set_book(SYMBOL, bids=[("100.10", "1")], asks=[("100.20", "1")])
    await eventually(feed.book_matches)


# -- bad input, silence ---------------------------------------------------------------------


async def test_a_malformed_message_is_counted_and_the_stream_carries_on(feed: Feed) -> None:
    fake, seen, stats = feed.fake, feed.seen, feed.source.stats
    fake.publish([("btcusdt@trade", {"e": "trade", "t": "not a number"})])
    fake.publish([("btcusdt@kline_1m", {"e": "kline"})])
    fake.publish([("btcusdt@trade", {"e": "trade", "t": 1, "p": "x", "q": "1", "T": 1, "m": 1})])
    trade = await fake.publish_trade(SYMBOL, "100", "1")
    await seen.until(lambda: seen.trade_ids() == [str(trade.trade_id)])
    assert stats.malformed == 3 and stats.connected and stats.reconnects == 0


async def test_silent_streams_are_stale_and_all_silent_reconnects(fake: FakeBinance) -> None:
    async with start(fake, stale_after_s={"trade": 0.1}) as feed:
        stats = feed.source.stats
        await eventually(lambda: stats.stale_streams == {"btcusdt@trade"})
        await fake.publish_trade(SYMBOL, "100", "1")
        await eventually(lambda: "btcusdt@trade" not in stats.stale_streams)
    async with start(fake, stale_after_s=0.2) as feed:
        stats = feed.source.stats
        await eventually(lambda: stats.reconnects >= 1, timeout_s=5)
        await feed.connected_again(fake.streams.connects)


def test_backoff_starts_at_the_delay_then_full_jitter_under_the_cap() -> None:
    rest = BinanceRest("http://127.0.0.1:1", limiter=RateLimiter())
    source = BinanceWsSource(
        FakeBinance(secret="s").endpoints(),
        [SYMBOL],
        rest,
        reconnect_delay_ms=100,
        max_reconnect_delay_ms=1000,
        rng=random.Random(7),
    )
    assert source._delay(0) == 0.1
    delays = [source._delay(attempt) for attempt in range(1, 200)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert max(delays[:1]) <= 0.2 and max(delays[10:]) > 0.5
