"""Binance market data over REST: the requests both Binance sources make (depth snapshot,
closed klines since a bar, trades since an id, book tickers), their documented weights,
the feed counters, and `BinanceRestSource`, which polls them on an interval.

Every call goes through `BinanceRest.public`, so through the rate limiter shared with the
venue; the polling source also stretches its interval while the weight budget runs low,
so market data never starves order placement.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from veloz.binance.errors import BinanceError
from veloz.binance.rest import BinanceRest
from veloz.market.order_book import Level
from veloz.model.enums import OrderSide
from veloz.model.market import Bar, QuoteTick, TradeTick

logger = logging.getLogger(__name__)

MS = 1_000_000  # nanoseconds in a millisecond
BAR_MS = 60_000
BAR_INTERVAL = "1m"

# Weights from rest-api.md.
KLINES_WEIGHT = 2
TRADES_WEIGHT = 25  # /api/v3/trades and /api/v3/historicalTrades alike
BOOK_TICKER_WEIGHT_ONE = 2
BOOK_TICKER_WEIGHT_MANY = 4
PAGE_LIMIT = 1000  # the most klines or trades one call returns
# A kline is final once a later one exists or its close time is this far behind our clock
# (a margin for our clock running ahead of Binance's).
KLINE_CLOSE_MARGIN_MS = 1000


def depth_weight(limit: int) -> int:
    """GET /api/v3/depth weighs by the number of levels asked for."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


@dataclass(slots=True)
class MarketStats:
    """Plain counters of one Binance market source (the lead exports them as metrics)."""

    connected: bool = False
    reconnects: int = 0
    gap_fills: int = 0
    gap_fill_failures: int = 0
    book_resyncs: int = 0
    malformed: int = 0
    messages: int = 0
    stale_streams: set[str] = field(default_factory=set)
    last_message_ns: int = 0


class MalformedAnswer(Exception):
    """A REST answer that does not have the documented shape."""


# -- answers ------------------------------------------------------------------------------


class _Snapshot(msgspec.Struct):
    lastUpdateId: int  # noqa: N815 (Binance's name)
    bids: list[Level]
    asks: list[Level]


class _Kline(msgspec.Struct, array_like=True):
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time: int


class _Trade(msgspec.Struct):
    id: int
    price: Decimal
    qty: Decimal
    time: int
    isBuyerMaker: bool  # noqa: N815 (Binance's name)


class _BookTicker(msgspec.Struct):
    symbol: str
    bidPrice: Decimal  # noqa: N815 (Binance's names)
    bidQty: Decimal  # noqa: N815
    askPrice: Decimal  # noqa: N815
    askQty: Decimal  # noqa: N815


def _convert(answer: Any, kind: Any, path: str) -> Any:
    try:
        return msgspec.convert(answer, kind)
    except msgspec.ValidationError as exc:
        raise MalformedAnswer(f"{path}: {exc}") from None


def trade_tick(
    symbol: str, *, trade_id: int, price: Decimal, qty: Decimal, time_ms: int, buyer_is_maker: bool
) -> TradeTick:
    """A Binance trade as ours: the aggressor sold if the buyer was the resting maker."""
    return TradeTick(
        symbol=symbol,
        trade_id=str(trade_id),
        price=price,
        size=qty,
        aggressor=OrderSide.SELL if buyer_is_maker else OrderSide.BUY,
        ts_ns=time_ms * MS,
    )


def closed_bar(
    symbol: str,
    *,
    open_ms: int,
    open_: Decimal,
    high: Decimal,
    low: Decimal,
    close: Decimal,
    volume: Decimal,
) -> Bar:
    return Bar(
        symbol=symbol,
        interval=BAR_INTERVAL,
        ts_ns=open_ms * MS,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        closed=True,
    )


# -- requests -----------------------------------------------------------------------------


async def depth_snapshot(
    rest: BinanceRest, symbol: str, limit: int
) -> tuple[int, list[Level], list[Level]]:
    """(lastUpdateId, bids, asks) from GET /api/v3/depth."""
    path = "/api/v3/depth"
    answer = await rest.public(
        "GET", path, {"symbol": symbol, "limit": limit}, weight=depth_weight(limit)
    )
    snapshot: _Snapshot = _convert(answer, _Snapshot, path)
    return snapshot.lastUpdateId, snapshot.bids, snapshot.asks


async def closed_bars_since(
    rest: BinanceRest, symbol: str, start_ms: int, now_ms: int
) -> list[Bar]:
    """The closed one-minute bars opening at or after `start_ms`, oldest first, page by
    page. The bar still open is left out: the stream (or the next poll) publishes it once
    it closes."""
    path = "/api/v3/klines"
    bars: list[Bar] = []
    while True:
        params = {
            "symbol": symbol,
            "interval": BAR_INTERVAL,
            "startTime": start_ms,
            "limit": PAGE_LIMIT,
        }
        answer = await rest.public("GET", path, params, weight=KLINES_WEIGHT)
        klines: list[_Kline] = _convert(answer, list[_Kline], path)
        klines = [k for k in klines if k.open_time >= start_ms]
        for index, k in enumerate(klines):
            followed = index + 1 < len(klines)
            if not followed and k.close_time + KLINE_CLOSE_MARGIN_MS > now_ms:
                return bars
            bars.append(
                closed_bar(
                    symbol,
                    open_ms=k.open_time,
                    open_=k.open,
                    high=k.high,
                    low=k.low,
                    close=k.close,
                    volume=k.volume,
                )
            )
        if len(klines) < PAGE_LIMIT:
            return bars
        start_ms = klines[-1].open_time + BAR_MS


async def trades_since(
    rest: BinanceRest, symbol: str, last_id: int | None, since_ms: int
) -> tuple[int | None, list[TradeTick]]:
    """Every trade after `last_id`, oldest first, and the newest id Binance showed:
    historicalTrades from the next id on, page by page (its security type is NONE since
    2023: no API key). Without an id yet, the recent trades at or after `since_ms`."""
    if last_id is None:
        path = "/api/v3/trades"
        answer = await rest.public(
            "GET", path, {"symbol": symbol, "limit": PAGE_LIMIT}, weight=TRADES_WEIGHT
        )
        recent: list[_Trade] = _convert(answer, list[_Trade], path)
        newest = max((t.id for t in recent), default=None)
        return newest, [_as_tick(symbol, t) for t in recent if t.time >= since_ms]
    path = "/api/v3/historicalTrades"
    found: list[TradeTick] = []
    while True:
        params = {"symbol": symbol, "fromId": last_id + 1, "limit": PAGE_LIMIT}
        answer = await rest.public("GET", path, params, weight=TRADES_WEIGHT)
        page: list[_Trade] = _convert(answer, list[_Trade], path)
        page = [t for t in page if t.id > last_id]
        found.extend(_as_tick(symbol, t) for t in page)
        if page:
            last_id = page[-1].id
        if len(page) < PAGE_LIMIT:
            return last_id, found


def _as_tick(symbol: str, trade: _Trade) -> TradeTick:
    return trade_tick(
        symbol,
        trade_id=trade.id,
        price=trade.price,
        qty=trade.qty,
        time_ms=trade.time,
        buyer_is_maker=trade.isBuyerMaker,
    )


async def book_tickers(rest: BinanceRest, symbols: Sequence[str], ts_ns: int) -> list[QuoteTick]:
    """The touch of each symbol from GET /api/v3/ticker/bookTicker (one call for all)."""
    path = "/api/v3/ticker/bookTicker"
    if len(symbols) == 1:
        answer = await rest.public(
            "GET", path, {"symbol": symbols[0]}, weight=BOOK_TICKER_WEIGHT_ONE
        )
        answer = [answer]
    else:
        listed = "[" + ",".join(f'"{symbol}"' for symbol in symbols) + "]"
        answer = await rest.public("GET", path, {"symbols": listed}, weight=BOOK_TICKER_WEIGHT_MANY)
    tickers: list[_BookTicker] = _convert(answer, list[_BookTicker], path)
    # An empty side reads as price 0: no touch to show.
    return [
        QuoteTick(
            symbol=t.symbol,
            bid=t.bidPrice,
            ask=t.askPrice,
            bid_size=t.bidQty,
            ask_size=t.askQty,
            ts_ns=ts_ns,
        )
        for t in tickers
        if t.bidPrice > 0 and t.askPrice > 0
    ]


def time_order(item: TradeTick | Bar) -> tuple[int, int, int]:
    """Sort key: a bar goes out when it closes, before the trades of the next minute;
    trades of one millisecond by id."""
    if isinstance(item, Bar):
        return item.ts_ns + BAR_MS * MS, 0, 0
    return item.ts_ns, 1, int(item.trade_id)


# -- the polling source -------------------------------------------------------------------


class BinanceRestSource:
    """Polls the touch, new trades and closed bars of `symbols` every `poll_interval_s`.

    While any weight budget has less than `low_headroom` left, the interval doubles (up to
    `max_poll_interval_s`); it comes back once there is room again. A failed poll marks the
    source disconnected and is retried on the next interval.
    """

    def __init__(
        self,
        rest: BinanceRest,
        symbols: Sequence[str],
        *,
        poll_interval_s: float = 1.0,
        max_poll_interval_s: float = 30.0,
        low_headroom: float = 0.25,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if poll_interval_s <= 0 or max_poll_interval_s < poll_interval_s:
            raise ValueError("poll intervals must be positive, the maximum not below the first")
        self._rest = rest
        self._symbols = tuple(symbols)
        self._interval_s = poll_interval_s
        self._max_interval_s = max_poll_interval_s
        self._low_headroom = low_headroom
        self._now_ns = now_ns
        self.stats = MarketStats()
        self.current_interval_s = poll_interval_s
        self._last_trade_id: dict[str, int | None] = dict.fromkeys(self._symbols)
        self._next_bar_ms: dict[str, int] = {}
        self._since_ms = 0
        self._logged_failure: str | None = None

    async def run(
        self, publish: Callable[[QuoteTick | TradeTick | Bar], None], stop: asyncio.Event
    ) -> None:
        logger.info("Binance REST market source started: symbols=%s", ",".join(self._symbols))
        polling = asyncio.create_task(self._poll_forever(publish), name="binance-rest-poll")
        stopped = asyncio.create_task(stop.wait())
        try:
            # A poll may wait long on the rate limiter: stopping must not wait for it.
            await asyncio.wait({polling, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            polling.cancel()
            stopped.cancel()
            await asyncio.gather(polling, stopped, return_exceptions=True)
            self.stats.connected = False
            logger.info("Binance REST market source stopped")
        if not polling.cancelled() and (error := polling.exception()) is not None:
            raise error

    async def _poll_forever(self, publish: Callable[[QuoteTick | TradeTick | Bar], None]) -> None:
        while True:
            await self.poll(publish)
            self.current_interval_s = self._next_interval()
            await asyncio.sleep(self.current_interval_s)

    def _begin(self) -> None:
        self._since_ms = self._now_ns() // MS
        # The bar before the current minute may have closed just now: the first published.
        first_bar = (self._since_ms // BAR_MS - 1) * BAR_MS
        self._next_bar_ms = dict.fromkeys(self._symbols, first_bar)

    async def poll(self, publish: Callable[[QuoteTick | TradeTick | Bar], None]) -> None:
        """One round: quotes, then each symbol's new trades and newly closed bars in time
        order."""
        if not self._next_bar_ms:
            self._begin()
        try:
            items: list[QuoteTick | TradeTick | Bar] = list(
                await book_tickers(self._rest, self._symbols, self._now_ns())
            )
            for symbol in self._symbols:
                news: list[TradeTick | Bar] = [*await self._new_trades(symbol)]
                news.extend(await self._new_bars(symbol))
                news.sort(key=time_order)
                items.extend(news)
        except (BinanceError, MalformedAnswer) as exc:
            self._failed(exc)
            return
        self.stats.connected = True
        self._logged_failure = None
        self.stats.last_message_ns = self._now_ns()
        self.stats.messages += len(items)
        for item in items:
            publish(item)

    async def _new_trades(self, symbol: str) -> list[TradeTick]:
        last_id, found = await trades_since(
            self._rest, symbol, self._last_trade_id[symbol], self._since_ms
        )
        self._last_trade_id[symbol] = last_id
        return found

    async def _new_bars(self, symbol: str) -> list[Bar]:
        bars = await closed_bars_since(
            self._rest, symbol, self._next_bar_ms[symbol], self._now_ns() // MS
        )
        if bars:
            self._next_bar_ms[symbol] = bars[-1].ts_ns // MS + BAR_MS
        return bars

    def _next_interval(self) -> float:
        room = self._rest.limiter.headroom()
        weight_room = [left for name, left in room.items() if name.startswith("REQUEST_WEIGHT")]
        if weight_room and min(weight_room) < self._low_headroom:
            return min(self.current_interval_s * 2, self._max_interval_s)
        return self._interval_s

    def _failed(self, exc: Exception) -> None:
        self.stats.connected = False
        if isinstance(exc, MalformedAnswer):
            self.stats.malformed += 1
        # One line per kind of failure, not one per poll.
        kind = f"{type(exc).__name__}:{getattr(exc, 'endpoint', '')}"
        if kind != self._logged_failure:
            self._logged_failure = kind
            logger.warning("Binance REST market poll failed: %s", exc)
