"""Binance market data over WebSocket: one combined-streams connection carrying, for each
configured symbol, trades, the book ticker, depth diffs (@100ms) and one-minute klines.

What comes out is what the sim source publishes: `QuoteTick`s (bookTicker, stamped with
our receive time, since the event has none), `TradeTick`s and closed one-minute `Bar`s.
The depth diffs keep one `OrderBook` per symbol in sync with a REST snapshot
(`source.book(symbol)`); a gap in the diffs fetches a new snapshot.

The connection is expected to fail, so the source:
- reconnects after `reconnect_delay_ms`, then with exponential backoff and full jitter up
  to `max_reconnect_delay_ms`, counting from the start again once a connection has been
  healthy for `healthy_after_s`;
- fills the gap after every reconnect from REST: the closed bars since the last one
  published and the trades since the last trade id, each published once and in order
  (what the stream delivers meanwhile is held back until the fill is done), and a fresh
  book snapshot;
- hands over to a new connection, opened before the old one is closed, when Binance
  announces `serverShutdown` and before its 24-hour limit;
- watches every stream: one silent longer than its threshold is listed in
  `stats.stale_streams`, and when all are silent the connection is presumed dead and
  replaced;
- counts a malformed or unexpected message in `stats.malformed`, logs each kind once, and
  carries on.

Pings from Binance are answered with their payload by aiohttp (autoping), as required.
Messages are decoded with msgspec straight into typed structs: the decode is most of the
cost of a message.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from veloz.binance.endpoints import BinanceEndpoints
from veloz.binance.errors import BinanceError
from veloz.binance.rest import BinanceRest
from veloz.market.binance_rest import (
    BAR_MS,
    MS,
    MalformedAnswer,
    MarketStats,
    closed_bar,
    closed_bars_since,
    depth_snapshot,
    time_order,
    trades_since,
)
from veloz.market.order_book import DepthDiff, DiffResult, OrderBook, SnapshotResult
from veloz.model.enums import OrderSide
from veloz.model.market import Bar, QuoteTick, TradeTick

logger = logging.getLogger(__name__)

MarketItem = QuoteTick | TradeTick | Bar
Publish = Callable[[MarketItem], None]

STREAM_KINDS = ("trade", "bookTicker", "depth", "kline")
DEFAULT_STALE_AFTER_S = 30.0
# Binance closes a connection at 24 hours; hand over well before.
DEFAULT_MAX_CONNECTION_AGE_S = 23.5 * 3600
SHUTDOWN_STREAM = "!serverShutdown"
_CONNECT_TIMEOUT_S = 10.0
_GAP_FILL_ATTEMPTS = 3
_WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_close=2.0)


# -- messages (web-socket-streams.md) -------------------------------------------------------


class _Envelope(msgspec.Struct, gc=False):
    """A combined-stream frame: the stream's name and its event, decoded later by kind."""

    stream: str
    data: msgspec.Raw


class _TradeEvent(msgspec.Struct, gc=False):
    trade_id: int = msgspec.field(name="t")
    price: Decimal = msgspec.field(name="p")
    qty: Decimal = msgspec.field(name="q")
    trade_time_ms: int = msgspec.field(name="T")
    buyer_is_maker: bool = msgspec.field(name="m")


class _BookTickerEvent(msgspec.Struct, gc=False):
    update_id: int = msgspec.field(name="u")
    bid: Decimal = msgspec.field(name="b")
    bid_qty: Decimal = msgspec.field(name="B")
    ask: Decimal = msgspec.field(name="a")
    ask_qty: Decimal = msgspec.field(name="A")


class _Kline(msgspec.Struct, gc=False):
    open_time_ms: int = msgspec.field(name="t")
    open: Decimal = msgspec.field(name="o")
    high: Decimal = msgspec.field(name="h")
    low: Decimal = msgspec.field(name="l")
    close: Decimal = msgspec.field(name="c")
    volume: Decimal = msgspec.field(name="v")
    closed: bool = msgspec.field(name="x")


class _KlineEvent(msgspec.Struct, gc=False):
    kline: _Kline = msgspec.field(name="k")


class _ShutdownEvent(msgspec.Struct, gc=False):
    event: str = msgspec.field(name="e")


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_trade = msgspec.json.Decoder(_TradeEvent).decode
_decode_book_ticker = msgspec.json.Decoder(_BookTickerEvent).decode
_decode_depth = msgspec.json.Decoder(DepthDiff).decode
_decode_kline = msgspec.json.Decoder(_KlineEvent).decode
_decode_shutdown = msgspec.json.Decoder(_ShutdownEvent).decode


def stream_names(symbol: str) -> dict[str, str]:
    """The stream of each kind for `symbol`, as subscribed and as frames name them."""
    lower = symbol.lower()
    return {
        "trade": f"{lower}@trade",
        "bookTicker": f"{lower}@bookTicker",
        "depth": f"{lower}@depth@100ms",
        "kline": f"{lower}@kline_1m",
    }


class _Feed:
    """One symbol's state: its book, what was published last, and what the stream
    delivered while a gap fill was running (`held`, None when no fill is)."""

    __slots__ = ("book", "held", "last_book_update", "last_trade_id", "next_bar_ms", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.book = OrderBook(symbol)
        self.last_trade_id = -1
        self.next_bar_ms = 0  # open time of the next closed bar to publish
        self.last_book_update = -1
        self.held: list[TradeTick | Bar] | None = None


class BinanceWsSource:
    def __init__(
        self,
        endpoints: BinanceEndpoints,
        symbols: Sequence[str],
        rest: BinanceRest,
        *,
        reconnect_delay_ms: int = 5000,
        max_reconnect_delay_ms: int = 60_000,
        stale_after_s: float | Mapping[str, float] = DEFAULT_STALE_AFTER_S,
        healthy_after_s: float = 60.0,
        max_connection_age_s: float = DEFAULT_MAX_CONNECTION_AGE_S,
        depth_limit: int = 1000,
        snapshot_retry_s: float = 1.0,
        session: aiohttp.ClientSession | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        """`stale_after_s` is one threshold for every stream or one per kind ("trade",
        "bookTicker", "depth", "kline"; kinds left out get the default)."""
        if not symbols or len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be non-empty and without duplicates")
        if reconnect_delay_ms <= 0:
            raise ValueError("reconnect_delay_ms must be positive")
        self._endpoints = endpoints
        self._rest = rest
        self._initial_delay_s = reconnect_delay_ms / 1000
        # An initial delay above the cap (VELOZ_WS_RECONNECT_DELAY set high) raises the cap.
        self._max_delay_s = max(max_reconnect_delay_ms, reconnect_delay_ms) / 1000
        self._healthy_after_s = healthy_after_s
        self._max_age_s = max_connection_age_s
        self._depth_limit = depth_limit
        self._snapshot_retry_s = snapshot_retry_s
        self._session = session
        self._now_ns = now_ns
        self._rng = rng or random.Random()
        self._feeds = {symbol: _Feed(symbol) for symbol in symbols}
        self._stale_after_ns = self._thresholds(stale_after_s)
        self._streams = [name for s in symbols for name in stream_names(s).values()]
        self.stats = MarketStats()
        self._publish: Publish = _nowhere
        self._routes: dict[str, Callable[[msgspec.Raw, int], None]] = {}
        self._last_seen: dict[str, int] = {}
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._opened_at = 0.0
        self._handover: asyncio.Task[aiohttp.ClientWebSocketResponse[bool] | None] | None = None
        self._gap_fill: asyncio.Task[None] | None = None
        self._snapshots: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logged: set[str] = set()
        self._run_session: aiohttp.ClientSession | None = None
        self._since_ms = 0  # our clock when first connected: trades before it are not ours

    @property
    def url(self) -> str:
        return self._endpoints.combined_streams_url(self._streams)

    def book(self, symbol: str) -> OrderBook:
        """The symbol's local order book (check `.synced` before trusting it)."""
        return self._feeds[symbol].book

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, publish: Publish, stop: asyncio.Event) -> None:
        self._publish = publish
        self._routes = self._make_routes()
        session = self._session or aiohttp.ClientSession()
        self._run_session = session
        logger.info("Binance WebSocket market source started: %s", ",".join(self._feeds))
        try:
            connections = asyncio.create_task(self._connections(session), name="binance-ws")
            stopped = asyncio.create_task(stop.wait())
            watchdog = self._spawn(self._watch(), "binance-ws-watchdog")
            await asyncio.wait({connections, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (connections, stopped, watchdog):
                task.cancel()
            await asyncio.gather(connections, stopped, watchdog, return_exceptions=True)
            if not connections.cancelled() and (error := connections.exception()) is not None:
                raise error
        finally:
            await self._shut_down(session)
            logger.info("Binance WebSocket market source stopped")

    async def _shut_down(self, session: aiohttp.ClientSession) -> None:
        for task in list(self._tasks):
            task.cancel()
        handover = self._handover
        await asyncio.gather(*self._tasks, return_exceptions=True)
        spare = _result_of(handover)
        if spare is not None:
            await spare.close()
        if self._ws is not None:
            await self._ws.close()
        self.stats.connected = False
        if self._session is None:
            await session.close()

    async def _connections(self, session: aiohttp.ClientSession) -> None:
        """Connect, read until the connection ends, and again, for as long as we run."""
        loop = asyncio.get_running_loop()
        attempt = 0
        ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        first = True
        while True:
            if ws is None:
                try:
                    ws = await self._open(session)
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    self._log_once(f"connect:{type(exc).__name__}", "connecting failed: %s", exc)
                    await asyncio.sleep(self._delay(attempt))
                    attempt += 1
                    continue
                self._connected(ws, reconnect=not first, handover=False)
            first = False
            await self._consume(ws)
            replacement = await self._handed_over()
            if replacement is not None:
                logger.info("Binance market streams handed over to a new connection")
                ws = replacement
                self._connected(ws, reconnect=True, handover=True)
                continue
            self.stats.connected = False
            if loop.time() - self._opened_at >= self._healthy_after_s:
                attempt = 0
            delay = self._delay(attempt)
            attempt += 1
            logger.warning("Binance market streams disconnected; reconnecting in %.3f s", delay)
            ws = None
            await asyncio.sleep(delay)

    async def _open(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse[bool]:
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            ws: aiohttp.ClientWebSocketResponse[bool] = await session.ws_connect(
                self.url, autoping=True, decode_text=False, timeout=_WS_TIMEOUT
            )
            return ws

    def _connected(
        self, ws: aiohttp.ClientWebSocketResponse[bool], *, reconnect: bool, handover: bool
    ) -> None:
        self._ws = ws
        self._opened_at = asyncio.get_running_loop().time()
        now = self._now_ns()
        self._last_seen = dict.fromkeys(self._routes, now)
        self.stats.stale_streams.clear()
        self.stats.connected = True
        if not reconnect:
            # The bar before the current minute may still close on the stream.
            first_bar = (now // MS // BAR_MS - 1) * BAR_MS
            for feed in self._feeds.values():
                feed.next_bar_ms = first_bar
            self._since_ms = now // MS
            logger.info("Binance market streams connected: %d streams", len(self._streams))
        else:
            self.stats.reconnects += 1
            self._start_gap_fill()
        for feed in self._feeds.values():
            if not handover:
                # Diffs of the old connection say nothing about what was missed.
                feed.book.reset()
                self._start_snapshot(feed)

    def _delay(self, attempt: int) -> float:
        """The initial delay first, then "full jitter": uniformly up to the doubled delay,
        capped, so many clients cut off at once do not come back at once."""
        if attempt == 0:
            return self._initial_delay_s
        ceiling = min(self._max_delay_s, self._initial_delay_s * 2.0 ** min(attempt, 30))
        return self._rng.uniform(0.0, ceiling)

    # -- reading ----------------------------------------------------------------------------

    async def _consume(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        on_frame = self._on_frame
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        while True:
            message = await ws.receive()
            kind = message.type
            if kind is text or kind is binary:
                on_frame(message.data)
            elif kind is aiohttp.WSMsgType.ERROR:
                self._log_once("ws-error", "Binance market stream error: %s", message.data)
                return
            else:  # closing or closed (pings and pongs are answered inside receive)
                return

    def _on_frame(self, frame: bytes | str) -> None:
        now = self._now_ns()
        stats = self.stats
        stats.messages += 1
        stats.last_message_ns = now
        try:
            envelope = _decode_envelope(frame)
        except msgspec.DecodeError as exc:
            self._malformed("envelope", exc)
            return
        stream = envelope.stream
        route = self._routes.get(stream)
        if route is None:
            self._malformed(f"stream {stream}", "not subscribed")
            return
        self._last_seen[stream] = now
        try:
            route(envelope.data, now)
        except msgspec.DecodeError as exc:
            self._malformed(stream.partition("@")[2] or stream, exc)
        except Exception as exc:
            self._malformed(f"{stream}:{type(exc).__name__}", exc)

    def _malformed(self, kind: str, detail: object) -> None:
        self.stats.malformed += 1
        self._log_once(f"malformed:{kind}", "malformed Binance message (%s): %s", kind, detail)

    def _log_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.warning(message + " (logged once)", *args)

    def _make_routes(self) -> dict[str, Callable[[msgspec.Raw, int], None]]:
        routes: dict[str, Callable[[msgspec.Raw, int], None]] = {}
        for feed in self._feeds.values():
            names = stream_names(feed.symbol)
            routes[names["trade"]] = self._on_trade(feed)
            routes[names["bookTicker"]] = self._on_book_ticker(feed)
            routes[names["depth"]] = self._on_depth(feed)
            routes[names["kline"]] = self._on_kline(feed)
        routes[SHUTDOWN_STREAM] = self._on_shutdown
        return routes

    def _on_trade(self, feed: _Feed) -> Callable[[msgspec.Raw, int], None]:
        publish, symbol = self._publish, feed.symbol
        sell, buy = OrderSide.SELL, OrderSide.BUY

        def on_trade(data: msgspec.Raw, now: int) -> None:
            event = _decode_trade(data)
            if event.trade_id <= feed.last_trade_id:
                return  # seen already (a repeat across connections)
            tick = TradeTick(
                symbol=symbol,
                trade_id=str(event.trade_id),
                price=event.price,
                size=event.qty,
                aggressor=sell if event.buyer_is_maker else buy,
                ts_ns=event.trade_time_ms * MS,
            )
            if feed.held is not None:
                feed.held.append(tick)
                return
            feed.last_trade_id = event.trade_id
            publish(tick)

        return on_trade

    def _on_book_ticker(self, feed: _Feed) -> Callable[[msgspec.Raw, int], None]:
        publish, symbol = self._publish, feed.symbol

        def on_book_ticker(data: msgspec.Raw, now: int) -> None:
            event = _decode_book_ticker(data)
            if event.update_id <= feed.last_book_update:
                return  # older than the touch already published
            feed.last_book_update = event.update_id
            publish(
                QuoteTick(
                    symbol=symbol,
                    bid=event.bid,
                    ask=event.ask,
                    bid_size=event.bid_qty,
                    ask_size=event.ask_qty,
                    ts_ns=now,
                )
            )

        return on_book_ticker

    def _on_depth(self, feed: _Feed) -> Callable[[msgspec.Raw, int], None]:
        book, gap = feed.book, DiffResult.GAP

        def on_depth(data: msgspec.Raw, now: int) -> None:
            if book.on_diff(_decode_depth(data)) is gap:
                self.stats.book_resyncs += 1
                logger.info("gap in %s depth updates: fetching a new snapshot", feed.symbol)
                self._start_snapshot(feed)

        return on_depth

    def _on_kline(self, feed: _Feed) -> Callable[[msgspec.Raw, int], None]:
        publish, symbol = self._publish, feed.symbol

        def on_kline(data: msgspec.Raw, now: int) -> None:
            kline = _decode_kline(data).kline
            if not kline.closed or kline.open_time_ms < feed.next_bar_ms:
                return  # still open, or published already
            bar = closed_bar(
                symbol,
                open_ms=kline.open_time_ms,
                open_=kline.open,
                high=kline.high,
                low=kline.low,
                close=kline.close,
                volume=kline.volume,
            )
            if feed.held is not None:
                feed.held.append(bar)
                return
            feed.next_bar_ms = kline.open_time_ms + BAR_MS
            publish(bar)

        return on_kline

    def _on_shutdown(self, data: msgspec.Raw, now: int) -> None:
        event = _decode_shutdown(data)
        if event.event != "serverShutdown":
            raise msgspec.ValidationError(f"unexpected event {event.event!r} on {SHUTDOWN_STREAM}")
        logger.info("Binance announced a server shutdown: opening a new connection")
        self._begin_handover()

    # -- handover, staleness ------------------------------------------------------------------

    def _begin_handover(self) -> None:
        if self._handover is None or self._handover.done():
            assert self._ws is not None
            self._handover = self._spawn(self._hand_over(self._ws), "binance-ws-handover")

    async def _hand_over(
        self, old: aiohttp.ClientWebSocketResponse[bool]
    ) -> aiohttp.ClientWebSocketResponse[bool] | None:
        """Open the new connection, then close the old one (which ends its reader)."""
        assert self._run_session is not None
        try:
            new = await self._open(self._run_session)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning("opening the new Binance connection failed: %s", exc)
            new = None
        await old.close()
        return new

    async def _handed_over(self) -> aiohttp.ClientWebSocketResponse[bool] | None:
        handover, self._handover = self._handover, None
        return None if handover is None else await handover

    async def _watch(self) -> None:
        """Every so often: which streams are silent, whether all are (a dead connection),
        and whether the connection is old enough to hand over."""
        loop = asyncio.get_running_loop()
        interval = min(1.0, max(0.005, min(self._stale_after_ns.values()) / 4e9))
        while True:
            await asyncio.sleep(interval)
            ws = self._ws
            if ws is None or ws.closed or not self.stats.connected:
                continue
            now = self._now_ns()
            stale = {
                stream
                for stream, seen in self._last_seen.items()
                if stream in self._stale_after_ns and now - seen > self._stale_after_ns[stream]
            }
            if stale != self.stats.stale_streams:
                if stale - self.stats.stale_streams:
                    logger.warning("Binance streams silent: %s", ", ".join(sorted(stale)))
                self.stats.stale_streams = stale
            if len(stale) == len(self._stale_after_ns):
                logger.warning("every Binance stream is silent: reconnecting")
                self.stats.stale_streams = stale
                await ws.close()
            elif loop.time() - self._opened_at > self._max_age_s:
                self._begin_handover()

    def _thresholds(self, stale_after_s: float | Mapping[str, float]) -> dict[str, int]:
        if isinstance(stale_after_s, Mapping):
            unknown = set(stale_after_s) - set(STREAM_KINDS)
            if unknown:
                raise ValueError(f"unknown stream kinds in stale_after_s: {sorted(unknown)}")
            per_kind = {
                kind: stale_after_s.get(kind, DEFAULT_STALE_AFTER_S) for kind in STREAM_KINDS
            }
        else:
            per_kind = dict.fromkeys(STREAM_KINDS, float(stale_after_s))
        if any(seconds <= 0 for seconds in per_kind.values()):
            raise ValueError("stale_after_s must be positive")
        return {
            name: int(per_kind[kind] * 1e9)
            for symbol in self._feeds
            for kind, name in stream_names(symbol).items()
        }

    # -- the book -------------------------------------------------------------------------------

    def _start_snapshot(self, feed: _Feed) -> None:
        """Fetch a snapshot for `feed`'s book; one asked for before now is dropped, since it
        may predate the diffs buffered from now on."""
        running = self._snapshots.get(feed.symbol)
        if running is not None:
            running.cancel()
        self._snapshots[feed.symbol] = self._spawn(self._sync_book(feed), f"snapshot-{feed.symbol}")

    async def _sync_book(self, feed: _Feed) -> None:
        """Fetch snapshots until one fits the buffered diffs (Binance's steps 3 to 7)."""
        while True:
            try:
                last_id, bids, asks = await depth_snapshot(
                    self._rest, feed.symbol, self._depth_limit
                )
            except (BinanceError, MalformedAnswer) as exc:
                if isinstance(exc, MalformedAnswer):
                    self.stats.malformed += 1
                self._log_once(f"snapshot:{type(exc).__name__}", "depth snapshot failed: %s", exc)
                await asyncio.sleep(self._snapshot_retry_s)
                continue
            result = feed.book.apply_snapshot(last_id, bids, asks)
            if result is SnapshotResult.SYNCED:
                logger.debug("%s book synced at %d", feed.symbol, feed.book.update_id)
                return
            await asyncio.sleep(self._snapshot_retry_s)

    # -- gap fill ---------------------------------------------------------------------------------

    def _start_gap_fill(self) -> None:
        if self._gap_fill is not None:
            self._gap_fill.cancel()  # its held items stay held for this one
        for feed in self._feeds.values():
            if feed.held is None:
                feed.held = []
        self._gap_fill = self._spawn(self._fill_gaps(), "binance-gap-fill")

    async def _fill_gaps(self) -> None:
        """Publish, per symbol, the closed bars and trades missed while disconnected, then
        what the stream delivered meanwhile, each once and in time order."""
        self.stats.gap_fills += 1
        for feed in self._feeds.values():
            bars: list[Bar] = []
            trades: list[TradeTick] = []
            for attempt in range(_GAP_FILL_ATTEMPTS):
                try:
                    now_ms = self._now_ns() // MS
                    bars = await closed_bars_since(
                        self._rest, feed.symbol, feed.next_bar_ms, now_ms
                    )
                    last_id = feed.last_trade_id if feed.last_trade_id >= 0 else None
                    _, trades = await trades_since(self._rest, feed.symbol, last_id, self._since_ms)
                    break
                except (BinanceError, MalformedAnswer) as exc:
                    logger.warning("gap fill for %s failed: %s", feed.symbol, exc)
                    if attempt + 1 == _GAP_FILL_ATTEMPTS:
                        self.stats.gap_fill_failures += 1
                        bars, trades = [], []
                    else:
                        await asyncio.sleep(self._initial_delay_s)
            self._release(feed, [*bars, *trades])

    def _release(self, feed: _Feed, filled: list[TradeTick | Bar]) -> None:
        held, feed.held = feed.held or [], None
        for item in sorted([*filled, *held], key=time_order):
            if isinstance(item, TradeTick):
                trade_id = int(item.trade_id)
                if trade_id <= feed.last_trade_id:
                    continue
                feed.last_trade_id = trade_id
            else:
                open_ms = item.ts_ns // MS
                if open_ms < feed.next_bar_ms:
                    continue
                feed.next_bar_ms = open_ms + BAR_MS
            self._publish(item)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _result_of(
    task: asyncio.Task[aiohttp.ClientWebSocketResponse[bool] | None] | None,
) -> aiohttp.ClientWebSocketResponse[bool] | None:
    """The connection a finished handover opened, if it opened one."""
    if task is None or not task.done() or task.cancelled() or task.exception() is not None:
        return None
    return task.result()


def _nowhere(item: MarketItem) -> None:
    raise RuntimeError("the source is not running")
