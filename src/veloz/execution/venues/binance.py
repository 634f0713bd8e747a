"""The Binance spot venue (production or the spot testnet): our orders as Binance orders,
Binance's answers and user data stream as our execution reports.

Requests go over signed REST (`veloz.binance.rest`), through the rate limiter shared with
market data. Reports come from two places that overlap: the answer to a request (a FULL
new-order answer carries the fills made at once; a cancel answer the cancel) and the
user data stream (`binance_user_stream.py`); while the stream is down, open orders are
polled. `binance_ledger.py` makes sure each fact reaches the engine once and in order,
whichever way it came, and reports are handed over on a later loop iteration, never from
inside `submit()`/`cancel()`.

An answer that never came (timeout, 5xx, dropped connection, -1006/-1007) may hide an
order that was placed: the order stays PENDING_NEW (a cancel PENDING_CANCEL) and is
settled by querying its client order id until Binance answers, never by sending it
again under a new id. An order Binance still does not know once the request's recvWindow
has passed was not placed, and cannot be any more: it is rejected.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec

from veloz.binance.endpoints import BinanceEndpoints
from veloz.binance.errors import BinanceError, RateLimited, UnknownOutcome
from veloz.binance.limits import RateLimiter
from veloz.binance.rest import BinanceRest
from veloz.binance.signing import Credentials
from veloz.clock import Clock
from veloz.execution.venue import ReportHandler, VenueOrder, VenueOrderState
from veloz.execution.venues.binance_ledger import ReportLedger
from veloz.execution.venues.binance_reports import (
    MalformedMessage,
    OrderUpdate,
    account_totals,
    execution_update,
    new_order_params,
    order_update,
    position_totals,
    rejection,
    trade_fill,
)
from veloz.execution.venues.binance_stats import VenueStats
from veloz.execution.venues.binance_user_stream import ROTATE_AFTER_S, UserDataStream
from veloz.model.account import Balance
from veloz.model.enums import OrderStatus
from veloz.model.events import OrderCancelRejected, OrderFilled, OrderRejected, OrderReport
from veloz.model.instruments import Instrument
from veloz.model.orders import Order

__all__ = ["BinanceVenue", "VenueStats"]

logger = logging.getLogger(__name__)

ORDER = "/api/v3/order"
OPEN_ORDERS = "/api/v3/openOrders"
MY_TRADES = "/api/v3/myTrades"
ACCOUNT = "/api/v3/account"
PING = "/api/v3/ping"
# Request weights (rest-api.md).
_QUERY_WEIGHT, _TRADES_WEIGHT, _OPEN_WEIGHT, _ALL_OPEN_WEIGHT, _ACCOUNT_WEIGHT = 4, 5, 6, 80, 20
# Allowance for the difference between our clock and Binance's when deciding that a
# request's recvWindow is over, beyond the offset `sync_time` measured.
_CLOCK_MARGIN_S = 1.0


class BinanceVenue:
    """A `Venue` on Binance spot. `instruments` are the symbols' filters (kept fresh by
    the runtime, read as they are when an order goes out); an order for a symbol Binance
    does not list or does not trade now is rejected without being sent.

    `rest` shares a REST client with the runtime; without one the venue makes its own on
    `endpoints.trade_rest` (and closes it). `session` is used for the WebSocket API (and
    the REST client the venue makes); without one the venue makes its own.
    """

    def __init__(
        self,
        endpoints: BinanceEndpoints,
        credentials: Credentials,
        instruments: Mapping[str, Instrument],
        *,
        clock: Clock,
        limiter: RateLimiter,
        session: aiohttp.ClientSession | None = None,
        rest: BinanceRest | None = None,
        name: str = "binance",
        timeout_s: float = 10.0,
        recv_window_ms: int = 5000,
        reconnect_delay_s: float = 1.0,
        max_reconnect_delay_s: float = 60.0,
        heartbeat_s: float = 20.0,
        rotate_after_s: float = ROTATE_AFTER_S,
        poll_interval_s: float = 1.0,
        resolve_delay_s: float = 0.5,
        max_resolve_delay_s: float = 10.0,
        stream_timeout_s: float = 10.0,
        max_rate_wait_s: float = 60.0,
        max_cancel_attempts: int = 10,
    ) -> None:
        self.name = name
        self._endpoints = endpoints
        self._instruments = instruments
        self._clock = clock
        self._limiter = limiter
        self._session = session
        self._owns_rest = rest is None
        self._rest = rest or BinanceRest(
            endpoints.trade_rest,
            credentials=credentials,
            limiter=limiter,
            session=session,
            timeout_s=timeout_s,
            recv_window_ms=recv_window_ms,
        )
        self._recv_window_s = self._rest.recv_window_ms / 1000
        self._reconnect_delay_s = reconnect_delay_s
        self._max_reconnect_delay_s = max_reconnect_delay_s
        self._heartbeat_s = heartbeat_s
        self._rotate_after_s = rotate_after_s
        self._request_timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s
        self._resolve_delay_s = resolve_delay_s
        self._max_resolve_delay_s = max_resolve_delay_s
        self._stream_timeout_s = stream_timeout_s
        self._max_rate_wait_s = max_rate_wait_s
        self._max_cancel_attempts = max_cancel_attempts
        self.stats = VenueStats()
        self._ledger = ReportLedger()
        self._handler: ReportHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: deque[OrderReport] = deque()
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Resolutions under way, by (client order id, whether of a cancel).
        self._resolving: dict[tuple[str, bool], asyncio.Task[None]] = {}
        self._stream: UserDataStream | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._stream_up = asyncio.Event()
        self._stream_changed = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._own_session: aiohttp.ClientSession | None = None
        self._reachable = False
        # Totals per asset as the account answer and outboundAccountPosition last said.
        self.account: dict[str, Decimal] = {}

    # -- lifecycle -------------------------------------------------------------------

    @property
    def rest(self) -> BinanceRest:
        """The REST client (its `stats` hold requests, errors and latency by endpoint)."""
        return self._rest

    @property
    def connected(self) -> bool:
        """Binance's REST side answers and the IP is not banned. (The user data stream
        may be down meanwhile: polling stands in for it, `stats.user_stream_connected`.)"""
        return self._loop is not None and self._reachable and not self._limiter.banned

    async def wait_stream(self, predicate: Callable[[VenueStats], bool]) -> None:
        """Until `predicate(stats)` holds, checked again each time the user data stream
        goes up or down (for health checks and tests; bound it with a timeout)."""
        while not predicate(self.stats):
            await self._stream_changed.wait()

    def set_report_handler(self, handler: ReportHandler) -> None:
        self._handler = handler

    def restore(self, open_orders: Sequence[Order], balances: Sequence[Balance]) -> None:
        """Binance keeps the account; what the journal holds only tells the ledger which
        orders are ours and what the engine already knows of them."""
        for order in open_orders:
            self._ledger.seed(order)

    async def connect(self) -> None:
        """Learn Binance's clock and the account, then subscribe the user data stream
        (waiting up to `stream_timeout_s` for it; polling stands in until it is up).
        Raises the BinanceError of a refused key or an unreachable Binance."""
        if self._handler is None:
            raise RuntimeError("set_report_handler() must be called before connect()")
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        try:
            await self._call("/api/v3/time", self._rest.sync_time())
            self.account = account_totals(
                await self._signed("GET", ACCOUNT, {"omitZeroBalances": "true"}, _ACCOUNT_WEIGHT)
            )
        except BaseException:
            await self.close()
            raise
        session = self._session
        if session is None:
            session = self._own_session = aiohttp.ClientSession()
        self._stream_up = asyncio.Event()
        self._stream = UserDataStream(
            self._endpoints.ws_api,
            lambda: self._rest.sign_params({}),
            on_event=self._on_stream_event,
            on_up=self._on_stream_up,
            on_down=self._on_stream_down,
            resync=self._rest.sync_time,
            session=session,
            stats=self.stats,
            reconnect_delay_s=self._reconnect_delay_s,
            max_reconnect_delay_s=self._max_reconnect_delay_s,
            heartbeat_s=self._heartbeat_s,
            request_timeout_s=self._request_timeout_s,
            rotate_after_s=self._rotate_after_s,
        )
        self._start_polling()
        self._stream_task = self._loop.create_task(self._stream.run(), name="binance-user-data")
        try:
            async with asyncio.timeout(self._stream_timeout_s):
                await self._stream_up.wait()
        except TimeoutError:
            logger.warning(
                "Binance user data stream not up after %.0f s; polling open orders meanwhile",
                self._stream_timeout_s,
            )

    async def close(self) -> None:
        """Stop the stream, polling and pending resolutions; reports already made are
        delivered before this returns."""
        tasks = [t for t in (self._stream_task, self._poller) if t is not None]
        tasks += list(self._tasks)
        self._stream_task = self._poller = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._tasks.clear()
        self._resolving.clear()
        self._stream = None
        self.stats.user_stream_connected = self.stats.polling = False
        self._flush()
        self._loop = None
        if self._owns_rest:
            await self._rest.close()
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None

    # -- orders ----------------------------------------------------------------------------

    async def submit(self, order: VenueOrder) -> None:
        self._require_open()
        coid = order.client_order_id
        if self._ledger.knows(coid) and self._ledger.is_final(coid):
            # Binance would take a finished order's id for a new order: never reuse one.
            self._emit([self._refusal(coid, f"duplicate client order id {coid}: already used")])
            return
        self._ledger.track(coid, order.symbol, order.side)
        refused = self._instrument_refusal(order)
        if refused:
            self._emit(self._ledger.reject(coid, refused, self._clock.time_ns()))
            return
        params = new_order_params(order)
        first_try = time.monotonic()
        while True:
            sent_at = time.monotonic()
            try:
                answer = await self._signed("POST", ORDER, params, 1, orders=1)
            except RateLimited as error:
                if error.banned or time.monotonic() - first_try > self._max_rate_wait_s:
                    self._refuse_rate_limited(coid, error)
                    return
                # A 429 refused the order unplaced; the limiter now waits out Retry-After.
                self.stats.rate_limited += 1
                continue
            except UnknownOutcome as error:
                self._unknown(coid, order.symbol, error, sent_at)
                return
            except BinanceError as error:
                self._refused(order, error, sent_at)
                return
            except Exception as error:
                # Not an answer we know: whether the order left is as unknown as after a
                # timeout, and settled the same way.
                logger.exception("sending order %s failed unexpectedly", coid)
                self._unknown(coid, order.symbol, error, sent_at)
                return
            break
        self.stats.submit_latency.observe(time.monotonic() - sent_at)
        try:
            update = order_update(answer)
        except MalformedMessage as error:
            self._malformed(error)
            self._resolve(coid, order.symbol, sent_at, cancel=False)
            return
        await self._settle(update)

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        self._require_open()
        await self._cancel(client_order_id, symbol)

    async def _cancel(self, coid: str, symbol: str, *, attempt: int = 1) -> None:
        params = {"symbol": symbol, "origClientOrderId": coid}
        first_try = time.monotonic()
        while True:
            sent_at = time.monotonic()
            try:
                answer = await self._signed("DELETE", ORDER, params, 1)
            except RateLimited as error:
                if error.banned or time.monotonic() - first_try > self._max_rate_wait_s:
                    self._emit([self._cancel_refusal(coid, _rate_limit_reason(error, "cancel"))])
                    return
                self.stats.rate_limited += 1
                continue
            except UnknownOutcome as error:
                self._unknown(coid, symbol, error, sent_at, cancel=True, attempt=attempt)
                return
            except BinanceError as error:
                await self._cancel_refused(coid, symbol, error)
                return
            break
        try:
            update = order_update(answer)
        except MalformedMessage as error:
            self._malformed(error)
            self._resolve(coid, symbol, sent_at, cancel=True)
            return
        await self._settle(update)

    async def _cancel_refused(self, coid: str, symbol: str, error: BinanceError) -> None:
        """Binance refused the cancel. "Unknown order" for an order of ours means it is no
        longer open (filled or expired: too late; or cancelled already, by an earlier
        attempt whose answer was lost, which is no refusal) or not there yet: its state
        is queried and reported, and the refusal only if the cancel did not happen."""
        reason = rejection(error.code, error.msg)
        if error.is_unknown_order and self._ledger.knows(coid):
            if not self._ledger.is_final(coid):
                try:
                    update = await self._query(coid, symbol)
                except (BinanceError, MalformedMessage) as failure:
                    logger.info("query of %s after its cancel was refused: %s", coid, failure)
                    self._resolve(coid, symbol, time.monotonic(), cancel=False)
                else:
                    if update is not None:
                        await self._settle(update)
            if self._ledger.status(coid) is OrderStatus.CANCELLED:
                return
        self._emit([self._cancel_refusal(coid, reason)])

    def _refused(self, order: VenueOrder, error: BinanceError, sent_at: float) -> None:
        coid = order.client_order_id
        if not error.is_duplicate_order:
            self._emit(self._ledger.reject(coid, rejection(error.code, error.msg), self._now_ns()))
        elif self._ledger.is_accepted(coid):
            # A second request under the id of a working order: refused, and the first
            # order stays as it is (its reports are untouched).
            reason = "duplicate client order id: " + rejection(error.code, error.msg)
            self._emit([self._refusal(coid, reason)])
        else:
            # Binance has an order under this id that we never heard acknowledged (an
            # earlier attempt whose answer was lost): it is ours; find out what it is.
            self._resolve(coid, order.symbol, sent_at, cancel=False)

    def _refuse_rate_limited(self, coid: str, error: RateLimited) -> None:
        if error.banned:
            self.stats.refused_while_banned += 1
        self._emit(self._ledger.reject(coid, _rate_limit_reason(error, "order"), self._now_ns()))

    def _instrument_refusal(self, order: VenueOrder) -> str:
        instrument = self._instruments.get(order.symbol)
        if instrument is None:
            return f"{order.symbol} is not a symbol this venue trades; order not sent"
        if not instrument.trading:
            return f"{order.symbol} is {instrument.status} at Binance; order not sent"
        return ""

    # -- unknown outcomes --------------------------------------------------------------

    def _unknown(
        self,
        coid: str,
        symbol: str,
        error: Exception,
        sent_at: float,
        *,
        cancel: bool = False,
        attempt: int = 1,
    ) -> None:
        self.stats.unknown_outcomes += 1
        logger.warning(
            "%s of %s: outcome unknown (%s); settling it by query",
            "cancel" if cancel else "order",
            coid,
            error,
        )
        self._resolve(coid, symbol, sent_at, cancel=cancel, attempt=attempt)

    def _resolve(
        self, coid: str, symbol: str, sent_at: float, *, cancel: bool, attempt: int = 1
    ) -> None:
        """Query `coid` in the background until Binance's answer settles it (`attempt`:
        how many times a cancel has been sent)."""
        key = (coid, cancel)
        running = self._resolving.get(key)
        if running is not None and not running.done():
            return
        self._resolving[key] = self._spawn(
            self._settle_by_query(coid, symbol, sent_at, cancel, attempt),
            f"binance-resolve-{coid}",
        )

    async def _settle_by_query(
        self, coid: str, symbol: str, sent_at: float, cancel: bool, attempt: int
    ) -> None:
        delay = self._resolve_delay_s
        try:
            while True:
                if (not cancel and self._ledger.is_accepted(coid)) or self._ledger.is_final(coid):
                    return  # the stream (or another query) told it meanwhile
                try:
                    update = await self._query(coid, symbol)
                except (BinanceError, MalformedMessage, aiohttp.ClientError) as error:
                    logger.info("query of %s failed (%s); trying again", coid, error)
                    await asyncio.sleep(_wait_for(error, delay))
                    delay = min(delay * 2, self._max_resolve_delay_s)
                    continue
                window_over = time.monotonic() - sent_at > self._recv_window_s + _CLOCK_MARGIN_S
                if update is None:
                    if window_over:
                        self.stats.resolved_by_query += 1
                        reason = "not placed: Binance never received the order"
                        self._emit(self._ledger.reject(coid, reason, self._now_ns()))
                        if cancel:
                            self._emit([self._cancel_refusal(coid, "order not at Binance")])
                        return
                else:
                    await self._settle(update)
                    if not cancel or update.status.is_final:
                        self.stats.resolved_by_query += 1
                        return
                    if window_over:
                        # The cancel can no longer arrive and the order still works: the
                        # cancel was lost. Cancelling by client order id is idempotent.
                        if attempt >= self._max_cancel_attempts:
                            reason = f"cancel not confirmed after {attempt} attempts"
                            self._emit([self._cancel_refusal(coid, reason)])
                            return
                        self._resolving.pop((coid, cancel), None)
                        await self._cancel(coid, symbol, attempt=attempt + 1)
                        return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_resolve_delay_s)
        finally:
            if self._resolving.get((coid, cancel)) is asyncio.current_task():
                del self._resolving[(coid, cancel)]

    # -- queries ---------------------------------------------------------------------------

    async def query(self, client_order_id: str, symbol: str) -> VenueOrderState | None:
        self._require_open()
        update = await self._query(client_order_id, symbol)
        if update is None:
            return None
        # The engine asks about it: it is ours (an order sent before a restart).
        self._ledger.track(client_order_id, update.symbol, update.side)
        return update.state()

    async def _query(self, coid: str, symbol: str) -> OrderUpdate | None:
        """The order with all its fills, or None if Binance does not know the id."""
        params = {"symbol": symbol, "origClientOrderId": coid}
        try:
            data = await self._signed("GET", ORDER, params, _QUERY_WEIGHT)
        except BinanceError as error:
            if error.is_unknown_order and not isinstance(error, UnknownOutcome):
                return None
            raise
        update = order_update(data)
        if update.executed_qty == 0:
            return update
        return msgspec.structs.replace(update, fills=tuple(await self._trades(update)))

    async def _trades(self, update: OrderUpdate) -> list[OrderFilled]:
        params = {"symbol": update.symbol, "orderId": update.venue_order_id, "limit": "1000"}
        trades = await self._signed("GET", MY_TRADES, params, _TRADES_WEIGHT)
        fills = [trade_fill(trade, update.client_order_id) for trade in trades]
        return sorted(fills, key=lambda fill: int(fill.trade_id))

    async def open_orders(self) -> list[VenueOrderState]:
        """Every open order of the account on every symbol (without their fills)."""
        self._require_open()
        listed = await self._signed("GET", OPEN_ORDERS, {}, _ALL_OPEN_WEIGHT)
        states = []
        for data in listed:
            try:
                states.append(order_update(data).state())
            except MalformedMessage as error:
                self._malformed(error)
        return states

    async def balances(self) -> dict[str, Decimal]:
        self._require_open()
        answer = await self._signed("GET", ACCOUNT, {"omitZeroBalances": "true"}, _ACCOUNT_WEIGHT)
        self.account = account_totals(answer)
        return dict(self.account)

    async def ping(self) -> float:
        self._require_open()
        started = time.perf_counter()
        await self._call(PING, self._rest.public("GET", PING))
        return time.perf_counter() - started

    # -- settling what Binance says ----------------------------------------------------------

    async def _settle(self, update: OrderUpdate) -> None:
        """Report what `update` adds; if it counts fills not seen yet, fetch the order's
        trades first, so that nothing final is reported ahead of its fills."""
        applied = self._ledger.apply(update)
        self._emit(applied.reports)
        if not applied.missing_fills:
            return
        try:
            fills = await self._trades(update)
        except (BinanceError, MalformedMessage) as error:
            # Polling (or the next query) tries again; the order stays as reported.
            logger.warning("trades of %s: %s", update.client_order_id, error)
            return
        applied = self._ledger.apply(msgspec.structs.replace(update, fills=tuple(fills)))
        self._emit(applied.reports)

    def _on_stream_event(self, event: dict[str, Any]) -> None:
        kind = event.get("e")
        try:
            if kind == "executionReport":
                update = execution_update(event)
                applied = self._ledger.apply(update)
                self._emit(applied.reports)
                if applied.missing_fills:
                    self._spawn(self._settle(update), "binance-missing-fills")
            elif kind == "outboundAccountPosition":
                self.account.update(position_totals(event))
        except MalformedMessage as error:
            self._malformed(error)

    # -- the stream down: polling ---------------------------------------------------------

    def _on_stream_up(self, after_gap: bool) -> None:
        self._stream_up.set()
        self._stop_polling()
        self._stream_moved()
        if after_gap and self._ledger.working():
            # What happened while nobody listened: one more pass, now that the stream
            # will carry everything after it.
            self._spawn(self._poll_once_logged(), "binance-gap-fill")

    def _on_stream_down(self, reason: str) -> None:
        logger.warning("Binance user data stream down (%s); polling open orders", reason)
        self._stream_up.clear()
        self._start_polling()
        self._stream_moved()

    def _stream_moved(self) -> None:
        changed, self._stream_changed = self._stream_changed, asyncio.Event()
        changed.set()

    def _start_polling(self) -> None:
        if self._loop is None or (self._poller is not None and not self._poller.done()):
            return
        self.stats.polling = True
        self._poller = self._loop.create_task(self._poll(), name="binance-poll")

    def _stop_polling(self) -> None:
        self.stats.polling = False
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            await self._poll_once_logged()

    async def _poll_once_logged(self) -> None:
        try:
            await self._poll_once()
        except (BinanceError, MalformedMessage, aiohttp.ClientError) as error:
            logger.info("polling Binance's open orders failed: %s", error)

    async def _poll_once(self) -> None:
        """Bring every working order up to date: the open ones from `openOrders` per
        symbol, the ones no longer open by querying each."""
        working = self._ledger.working()
        still_open: set[str] = set()
        for symbol in sorted({symbol for _, symbol, _ in working}):
            listed = await self._signed("GET", OPEN_ORDERS, {"symbol": symbol}, _OPEN_WEIGHT)
            for data in listed:
                try:
                    update = order_update(data)
                except MalformedMessage as error:
                    self._malformed(error)
                    continue
                still_open.add(update.client_order_id)
                await self._settle(update)
        for coid, symbol, _ in working:
            if coid not in still_open and not self._ledger.is_final(coid):
                found = await self._query(coid, symbol)
                if found is not None:
                    await self._settle(found)

    # -- plumbing --------------------------------------------------------------------------

    async def _signed(
        self, method: str, path: str, params: Mapping[str, object], weight: int, orders: int = 0
    ) -> Any:
        return await self._call(
            path, self._rest.signed(method, path, params, weight=weight, orders=orders)
        )

    async def _call(self, endpoint: str, request: Awaitable[Any]) -> Any:
        """`request`, noting whether Binance answered at all (`connected`) and its newest
        failure per endpoint."""
        try:
            answer = await request
        except RateLimited as error:
            self._reachable = True
            self.stats.last_error[endpoint] = str(error)
            raise
        except UnknownOutcome as error:
            # No answer at all (status 0): unreachable until the next answer.
            self._reachable = error.status != 0
            self.stats.last_error[endpoint] = str(error)
            raise
        except BinanceError as error:
            self._reachable = True
            self.stats.last_error[endpoint] = str(error)
            raise
        self._reachable = True
        return answer

    def _emit(self, reports: Sequence[OrderReport]) -> None:
        if not reports:
            return
        self._outbox.extend(reports)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Hand the reports to the engine, in the order they were made."""
        self._flush_scheduled = False
        handler = self._handler
        while self._outbox and handler is not None:
            report = self._outbox.popleft()
            try:
                handler(report)
            except Exception as error:
                # The handler is the engine's; its failure must not stop the venue.
                loop = self._loop or asyncio.get_running_loop()
                loop.call_exception_handler(
                    {"message": "Binance venue report handler raised", "exception": error}
                )

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._loop is not None
        task = self._loop.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._loop is None:
            return
        error = task.exception()
        if error is not None:
            self._loop.call_exception_handler(
                {"message": f"Binance venue task {task.get_name()} failed", "exception": error}
            )

    def _malformed(self, error: Exception) -> None:
        self.stats.malformed += 1
        if self.stats.malformed == 1:
            logger.warning("Binance sent a message we cannot read (%s); counting such", error)

    def _refusal(self, coid: str, reason: str) -> OrderReport:
        """A refused request under an id whose order the ledger must not touch."""
        return OrderRejected(client_order_id=coid, reason=reason, ts_ns=self._clock.time_ns())

    def _cancel_refusal(self, coid: str, reason: str) -> OrderReport:
        return OrderCancelRejected(client_order_id=coid, reason=reason, ts_ns=self._clock.time_ns())

    def _now_ns(self) -> int:
        return self._clock.time_ns()

    def _require_open(self) -> None:
        if self._loop is None:
            raise ConnectionError(f"{self.name} venue is not connected")


def _rate_limit_reason(error: RateLimited, what: str) -> str:
    if error.banned:
        return (
            f"rate limited: Binance has banned this IP for {error.retry_after_s:.0f} s more "
            f"(HTTP 418); {what} not sent"
        )
    return f"rate limited: Binance kept refusing (HTTP 429: {error.msg}); {what} not sent"


def _wait_for(error: Exception, delay: float) -> float:
    """How long to wait before asking again after `error`."""
    if isinstance(error, RateLimited):
        return max(delay, error.retry_after_s)
    return delay
