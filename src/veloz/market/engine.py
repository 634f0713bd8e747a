"""The MarketDataEngine: the latest quote per symbol, one-minute bars, feed health
(ok / stale / disconnected) and the fan-out of market data to subscribers.

Sources publish into `on_data`; everything downstream (strategies, the sim venue, the API
streams) subscribes here. It sits on the hot path, so a tick costs a dict write, an
aggregator update for trades and one call per subscriber.
"""

import asyncio
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import msgspec

from veloz.market.bars import DEFAULT_BAR_HISTORY, BarAggregator
from veloz.model.market import Bar, QuoteTick, TradeTick

logger = logging.getLogger(__name__)

MarketData = QuoteTick | TradeTick | Bar
MarketDataHandler = Callable[[MarketData], None]


class MarketDataSource(Protocol):
    async def run(self, publish: Callable[[MarketData], None], stop: asyncio.Event) -> None: ...


class FeedStatus(StrEnum):
    OK = "ok"
    STALE = "stale"
    DISCONNECTED = "disconnected"


class MarketDataConfig(msgspec.Struct, frozen=True, kw_only=True):
    stale_after_ms: int = 5000
    """A symbol without a quote for longer than this is stale."""
    bar_history: int = DEFAULT_BAR_HISTORY
    """Closed one-minute bars kept per symbol."""

    def __post_init__(self) -> None:
        if self.stale_after_ms <= 0 or self.bar_history <= 0:
            raise ValueError("stale_after_ms and bar_history must be positive")


class MarketDataEngine:
    def __init__(self, config: MarketDataConfig | None = None) -> None:
        self._config = config or MarketDataConfig()
        self._stale_after_ns = self._config.stale_after_ms * 1_000_000
        self._quotes: dict[str, QuoteTick] = {}
        self._bars = BarAggregator(self._config.bar_history)
        # Replaced, never mutated, so a handler may (un)subscribe while data is being
        # delivered without disturbing the loop that is delivering it.
        self._handlers: tuple[MarketDataHandler, ...] = ()
        self._source_task: asyncio.Task[None] | None = None
        self._source_stop: asyncio.Event | None = None
        self._source_ended = False

    def subscribe(self, handler: MarketDataHandler) -> Callable[[], None]:
        """Deliver every quote, trade and closed bar to `handler`; returns the unsubscribe."""
        self._handlers = (*self._handlers, handler)

        def unsubscribe() -> None:
            handlers = list(self._handlers)
            if handler in handlers:
                handlers.remove(handler)
                self._handlers = tuple(handlers)

        return unsubscribe

    def on_data(self, item: MarketData) -> None:
        """Take one item from a source: update the caches, then fan it out. A source that
        has bars of its own (a replay) publishes them closed; trades make bars here."""
        if isinstance(item, QuoteTick):
            self._quotes[item.symbol] = item
        elif isinstance(item, Bar):
            if not self._bars.on_bar(item):
                return  # that minute was already published
        else:
            closed_bar = self._bars.on_trade(item)
            # The closed bar belongs to the previous minute, so it goes out first.
            if closed_bar is not None:
                self._publish(closed_bar)
        self._publish(item)

    def quote(self, symbol: str) -> QuoteTick | None:
        return self._quotes.get(symbol)

    def symbols(self) -> list[str]:
        """Symbols that have quoted, sorted."""
        return sorted(self._quotes)

    def bars(self, symbol: str, limit: int | None = None) -> list[Bar]:
        """Up to `limit` most recent one-minute bars, oldest first, the open bar last."""
        return self._bars.bars(symbol, limit)

    def age_ns(self, symbol: str, now_ns: int) -> int | None:
        """Nanoseconds since the latest quote's timestamp; None if there never was one."""
        quote = self._quotes.get(symbol)
        if quote is None:
            return None
        # A venue clock slightly ahead of ours must not show up as a negative age.
        return max(0, now_ns - quote.ts_ns)

    def status(self, symbol: str, now_ns: int) -> FeedStatus:
        age = self.age_ns(symbol, now_ns)
        if age is None or self._source_ended:
            return FeedStatus.DISCONNECTED
        return FeedStatus.STALE if age > self._stale_after_ns else FeedStatus.OK

    @property
    def running(self) -> bool:
        return self._source_task is not None and not self._source_task.done()

    async def start(self, source: MarketDataSource) -> None:
        """Run `source` in a task that publishes into `on_data`."""
        if self._source_task is not None:
            raise RuntimeError("a market data source is already attached; stop it first")
        self._source_stop = asyncio.Event()
        self._source_ended = False
        self._source_task = asyncio.create_task(
            source.run(self.on_data, self._source_stop), name="market-data-source"
        )
        self._source_task.add_done_callback(self._on_source_ended)

    async def source_finished(self) -> None:
        """Wait until the attached source has run out (a replay at its last bar)."""
        task = self._source_task
        if task is not None:
            await asyncio.wait([task])

    async def stop(self) -> None:
        """Ask the source to stop and wait for it; every symbol then reads disconnected."""
        task, stop = self._source_task, self._source_stop
        if task is None or stop is None:
            return
        stop.set()
        # A source that crashed was already reported by _on_source_ended.
        await asyncio.gather(task, return_exceptions=True)
        self._source_task = None
        self._source_stop = None

    def _on_source_ended(self, task: asyncio.Task[None]) -> None:
        self._source_ended = True
        if task.cancelled():
            logger.warning("market data source was cancelled")
        elif (error := task.exception()) is not None:
            logger.error("market data source failed", exc_info=error)

    def _publish(self, item: MarketData) -> None:
        for handler in self._handlers:
            try:
                handler(item)
            except Exception:
                logger.exception(
                    "market data handler %r failed on %s", handler, type(item).__name__
                )
