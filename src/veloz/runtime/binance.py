"""Wiring for Binance: the pieces one engine shares between its market data and its venue.

Binance counts request weight per IP address, so market data and trading draw on one
`RateLimiter`; the symbols' filters come from `exchangeInfo`, loaded before the journal is
replayed (replay values orders against them) and refreshed while the engine runs, in
place, so the core, the portfolio and the venue all see the newest ones.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from veloz.binance.endpoints import BinanceEndpoints
from veloz.binance.errors import BAD_SYMBOL, BinanceError
from veloz.binance.limits import RateLimiter
from veloz.binance.rest import BinanceRest
from veloz.binance.rules import parse_exchange_info
from veloz.binance.signing import Credentials
from veloz.binance.stats import RestStats
from veloz.clock import Clock
from veloz.execution.venues.binance import BinanceVenue
from veloz.execution.venues.binance_stats import VenueStats
from veloz.market.binance_rest import BinanceRestSource, MarketStats
from veloz.market.binance_ws import BinanceWsSource
from veloz.market.engine import MarketDataSource
from veloz.market.order_book import OrderBook
from veloz.model.instruments import Instrument

logger = logging.getLogger(__name__)

# exchangeInfo for a list of symbols weighs 20; once an hour keeps filters and status fresh.
INSTRUMENT_REFRESH_S = 3600.0


class BinanceConfig(msgspec.Struct, frozen=True, kw_only=True):
    endpoints: BinanceEndpoints
    # Trading keys; None for market data alone (paper trading against the real book).
    credentials: Credentials | None = None
    # Before the first reconnect of a stream (VELOZ_WS_RECONNECT_DELAY); backoff from there.
    reconnect_delay_ms: int = 5000
    # binance_spot: real money.
    live: bool = False


class BinanceLink:
    """The REST clients and limiter of one engine's Binance connection, and the symbols'
    filters (`instruments`, filled by `load_instruments`)."""

    def __init__(self, config: BinanceConfig, symbols: Sequence[str]) -> None:
        self.config = config
        self.symbols = tuple(symbols)
        self.instruments: dict[str, Instrument] = {}
        self.limiter = RateLimiter()
        self.market_rest = BinanceRest(config.endpoints.rest, limiter=self.limiter)
        self.trade_rest = (
            BinanceRest(
                config.endpoints.trade_rest,
                credentials=config.credentials,
                limiter=self.limiter,
            )
            if config.credentials is not None
            else None
        )
        self._refresher: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.feed: BinanceWsSource | BinanceRestSource | None = None
        self.trading: BinanceVenue | None = None

    def market_source(self, name: str) -> MarketDataSource:
        """`binance_ws` (the streams, with the book kept by snapshot and diffs) or
        `binance_rest` (polling), reading `self.feed` for health and metrics."""
        if name == "binance_ws":
            self.feed = BinanceWsSource(
                self.config.endpoints,
                self.symbols,
                self.market_rest,
                reconnect_delay_ms=self.config.reconnect_delay_ms,
            )
        else:
            self.feed = BinanceRestSource(self.market_rest, self.symbols)
        return self.feed

    def venue(self, clock: Clock) -> BinanceVenue:
        if self.trade_rest is None or self.config.credentials is None:
            raise ValueError("trading at Binance needs an API key and secret")
        self.trading = BinanceVenue(
            self.config.endpoints,
            self.config.credentials,
            self.instruments,
            clock=clock,
            limiter=self.limiter,
            rest=self.trade_rest,
            name="binance_spot" if self.config.live else "binance_testnet_spot",
            reconnect_delay_s=self.config.reconnect_delay_ms / 1000,
        )
        return self.trading

    async def announce(self, venue: str) -> None:
        """The one line at start that says where and as which account this engine trades
        (Binance's account id, never a key)."""
        endpoints = self.config.endpoints
        if self.trading is None or self.trade_rest is None:
            logger.info(
                "paper trading: Binance market data from %s, orders filled by the simulated venue",
                endpoints.streams,
            )
            return
        try:
            account = await self.trade_rest.signed(
                "GET", "/api/v3/account", {"omitZeroBalances": "true"}, weight=20
            )
        except BinanceError as exc:
            account = {"uid": f"unknown ({exc})"}
        uid = account.get("uid", "?")
        money = "REAL MONEY" if self.config.live else "testnet, no real money"
        logger.warning(
            "trading on Binance %s (%s) as account %s (%s) at %s, user data from %s, symbols %s",
            venue,
            money,
            uid,
            account.get("accountType", "?"),
            endpoints.trade_rest,
            endpoints.ws_api,
            ", ".join(self.symbols),
        )
        if account.get("canTrade") is False:
            logger.error("Binance says account %s may not trade: orders will be refused", uid)

    def order_book(self, symbol: str) -> OrderBook | None:
        """The book the streams keep (binance_ws), None with polling or no such symbol."""
        if isinstance(self.feed, BinanceWsSource) and symbol in self.symbols:
            return self.feed.book(symbol)
        return None

    def feed_stats(self) -> MarketStats | None:
        return self.feed.stats if self.feed is not None else None

    def venue_stats(self) -> VenueStats | None:
        return self.trading.stats if self.trading is not None else None

    def rest_stats(self) -> list[RestStats]:
        clients = [self.market_rest] + ([self.trade_rest] if self.trade_rest else [])
        return [client.stats for client in clients]

    async def load_instruments(self) -> None:
        """The configured symbols' filters from exchangeInfo; raises ValueError for a
        symbol Binance does not list, so the engine does not start on a typo."""
        try:
            info = await self.market_rest.public(
                "GET", "/api/v3/exchangeInfo", {"symbols": list(self.symbols)}, weight=20
            )
        except BinanceError as exc:
            if exc.code != BAD_SYMBOL:
                raise
            raise ValueError(
                f"Binance at {self.config.endpoints.rest} does not list "
                f"{', '.join(await self._unlisted())} ({exc.msg})"
            ) from None
        rules = parse_exchange_info(info)
        missing = [symbol for symbol in self.symbols if symbol not in rules]
        if missing:
            raise ValueError(
                f"Binance at {self.config.endpoints.rest} does not list {', '.join(missing)}"
            )
        rate_limits = info.get("rateLimits") if isinstance(info, dict) else None
        if rate_limits:
            self.limiter.configure(rate_limits)
        for symbol in self.symbols:
            self.instruments[symbol] = rules[symbol].instrument()

    def watch_reconnects(self, on_reconnect: Callable[[], Awaitable[None]]) -> None:
        """Call `on_reconnect` each time the venue's user data stream is back after a
        drop (the engine reconciles then: what happened while it was down)."""
        if self.trading is not None:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(self.trading, on_reconnect), name="binance-reconnects"
            )

    async def _watch(
        self, venue: BinanceVenue, on_reconnect: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            await venue.wait_stream(_back_after(venue.stats.reconnects))
            try:
                await on_reconnect()
            except Exception:  # the next reconnect tries again; trading goes on
                logger.exception("reconciling after a reconnect failed")

    async def _unlisted(self) -> list[str]:
        """Which configured symbols Binance refuses, asked one by one (only after a refusal
        of the whole list, to name the culprit)."""
        unlisted = []
        for symbol in self.symbols:
            try:
                await self.market_rest.public(
                    "GET", "/api/v3/exchangeInfo", {"symbol": symbol}, weight=20
                )
            except BinanceError as exc:
                if exc.code == BAD_SYMBOL:
                    unlisted.append(symbol)
        return unlisted or list(self.symbols)

    def start_refreshing(self, interval_s: float = INSTRUMENT_REFRESH_S) -> None:
        self._refresher = asyncio.get_running_loop().create_task(
            self._refresh(interval_s), name="binance-instruments"
        )

    async def _refresh(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                before = dict(self.instruments)
                await self.load_instruments()
            except Exception as exc:  # keep the filters we have; try again next time
                logger.warning("refreshing Binance's exchangeInfo failed: %s", exc)
                continue
            for symbol, instrument in self.instruments.items():
                if before.get(symbol) != instrument:
                    logger.info("Binance changed %s: %s", symbol, instrument)

    async def close(self) -> None:
        for task in (self._refresher, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._refresher = self._watcher = None
        await self.market_rest.close()
        if self.trade_rest is not None:
            await self.trade_rest.close()


def _back_after(reconnects: int) -> Callable[[VenueStats], bool]:
    """Whether the user data stream is up again after more than `reconnects` reconnects."""
    return lambda stats: stats.reconnects > reconnects and stats.user_stream_connected
