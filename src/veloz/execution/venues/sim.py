"""The simulated venue: the asyncio `Venue` the live runtime trades with, around one
synchronous `SimExchange` (orders, balances, matching: `sim_exchange.py`).

What this module adds is what makes the exchange feel remote, as a real one is: requests
wait out `latency_ms` of the venue's clock before the exchange handles them, and reports
reach the handler on a later loop iteration, never from inside `submit()`/`cancel()`.

Requests go through one queue served by one worker task, so tens of thousands of orders a
second cost one task, not one each. A request is due at `clock.time_ns()` plus the
latency; the worker sleeps towards that time, at most `_CLOCK_POLL_S` at once before it
reads the clock again (a simulated clock moves only when told to), and hands the due
requests to the exchange in slices. Reports are drained from the exchange by one callback
scheduled with `call_soon`, which keeps every order's reports in the order they happened.
"""

import asyncio
import secrets
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

import msgspec

from veloz.clock import Clock
from veloz.execution.venue import ReportHandler, VenueOrder, VenueOrderState
from veloz.execution.venues.sim_config import SimVenueConfig
from veloz.execution.venues.sim_exchange import SimExchange
from veloz.model.account import Balance
from veloz.model.instruments import Instrument
from veloz.model.market import QuoteTick
from veloz.model.orders import Order

__all__ = ["SimVenue", "SimVenueConfig"]

# Requests handled per worker slice before yielding to the rest of the event loop.
_SLICE = 2048
# The longest the worker sleeps before it reads the clock again while a request waits.
_CLOCK_POLL_S = 0.01


class _CancelRequest(msgspec.Struct, gc=False, frozen=True):
    client_order_id: str
    symbol: str


_Request = VenueOrder | _CancelRequest


class SimVenue:
    """A `Venue` that matches orders against the quotes the engine sees.

    `id_seed` makes the venue's ids repeatable for a given clock; without one a random
    seed keeps two venues made in the same instant (two engines in one process) apart.
    """

    name = "sim"

    def __init__(
        self,
        config: SimVenueConfig,
        clock: Clock,
        instruments: Mapping[str, Instrument],
        quote_of: Callable[[str], QuoteTick | None],
        *,
        id_seed: int | None = None,
    ) -> None:
        seed = secrets.randbits(64) if id_seed is None else id_seed
        self._exchange = SimExchange(config, clock, instruments, quote_of, seed)
        self._now_ns = clock.time_ns
        self._latency_ns = round(config.latency_ms * 1_000_000)
        self._latency_s = config.latency_ms / 1000
        self._pending: deque[tuple[int, _Request]] = deque()
        self._flush_scheduled = False
        self._handler: ReportHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------

    def set_report_handler(self, handler: ReportHandler) -> None:
        self._handler = handler

    async def connect(self) -> None:
        """Start serving requests. The account is `starting_balances` unless `restore()`
        set it; reconnecting keeps orders and balances."""
        if self._handler is None:
            raise RuntimeError("set_report_handler() must be called before connect()")
        if self._worker is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._worker = self._loop.create_task(self._run(), name="sim-venue-worker")
        self._worker.add_done_callback(self._on_worker_done)

    async def close(self) -> None:
        """Stop the worker. Requests not yet processed are dropped; reports of what
        already happened are delivered before this returns."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker.cancel()
        await asyncio.wait([worker])
        self._pending.clear()
        self._flush()
        self._loop = None

    def restore(self, open_orders: Sequence[Order], balances: Sequence[Balance]) -> None:
        """Seed the venue after an engine restart with what the journal says it held
        (see `SimExchange.restore`); only before `connect()`."""
        if self._worker is not None:
            raise RuntimeError("restore() must be called before connect()")
        self._exchange.restore(open_orders, balances)

    # -- the Venue protocol ------------------------------------------------------------

    async def submit(self, order: VenueOrder) -> None:
        self._enqueue(order)

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        self._enqueue(_CancelRequest(client_order_id, symbol))

    # QueueingVenue: the ExecutionEngine hands requests over without a task each.

    def submit_nowait(self, order: VenueOrder) -> None:
        self._enqueue(order)

    def cancel_nowait(self, client_order_id: str, symbol: str) -> None:
        self._enqueue(_CancelRequest(client_order_id, symbol))

    async def query(self, client_order_id: str, symbol: str) -> VenueOrderState | None:
        self._require_connected()
        return self._exchange.query(client_order_id, symbol)

    async def open_orders(self) -> list[VenueOrderState]:
        self._require_connected()
        return self._exchange.open_orders()

    async def balances(self) -> dict[str, Decimal]:
        self._require_connected()
        return self._exchange.balances()

    @property
    def connected(self) -> bool:
        return self._loop is not None and self._worker is not None and not self._worker.done()

    async def ping(self) -> float:
        self._require_connected()
        return self._latency_s

    def credit(self, asset: str, amount: Decimal) -> None:
        """A deposit or withdrawal outside the engine (see `SimExchange.credit`)."""
        self._exchange.credit(asset, amount)

    def balance_snapshot(self) -> list[Balance]:
        """Free and locked per asset: what the venue holds back for open orders."""
        return self._exchange.balance_snapshot()

    def on_quote(self, quote: QuoteTick) -> None:
        """Trade resting orders the quote reaches. The engine calls this for every quote;
        a venue that is not connected does not trade."""
        if self._loop is None:
            return
        self._exchange.on_quote(quote)
        self._schedule_flush()

    # -- request queue and worker ------------------------------------------------------

    def _require_connected(self) -> None:
        if self._worker is None or self._loop is None:
            raise ConnectionError("sim venue is not connected")
        if self._worker.done():
            raise ConnectionError("sim venue worker has stopped; see the logged error")

    def _enqueue(self, request: _Request) -> None:
        self._require_connected()
        self._pending.append((self._now_ns() + self._latency_ns, request))
        self._wakeup.set()

    async def _run(self) -> None:
        pending, now_ns = self._pending, self._now_ns
        while True:
            if not pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = now_ns()
            wait_ns = pending[0][0] - now
            if wait_ns > 0:
                await asyncio.sleep(min(wait_ns / 1e9, _CLOCK_POLL_S))
                continue
            self._process_due(now)
            # Yield between slices so a flood of requests cannot starve the rest of the loop.
            await asyncio.sleep(0)

    def _process_due(self, now: int) -> None:
        pending, exchange = self._pending, self._exchange
        try:
            for _ in range(_SLICE):
                if not pending or pending[0][0] > now:
                    return
                request = pending.popleft()[1]
                if isinstance(request, VenueOrder):
                    exchange.submit(request)
                else:
                    exchange.cancel(request.client_order_id, request.symbol)
        finally:
            # Also when the exchange raised: what it reported before that is delivered.
            self._schedule_flush()

    def _on_worker_done(self, worker: asyncio.Task[None]) -> None:
        if worker.cancelled() or self._loop is None:
            return
        error = worker.exception()
        if error is not None:
            # Loud, not silent: every later request raises ConnectionError too.
            self._loop.call_exception_handler(
                {"message": "sim venue worker died", "exception": error, "task": worker}
            )

    # -- reports -----------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None and self._exchange.pending_reports:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        handler = self._handler
        if handler is None:
            return
        # Reports made while the handler runs are drained by the next pass, after the
        # ones already in hand.
        while reports := self._exchange.drain():
            for report in reports:
                try:
                    handler(report)
                except Exception as error:
                    # The handler is the engine's; its failure must not stop the venue,
                    # and is reported the way asyncio reports a failing callback.
                    if self._loop is not None:
                        self._loop.call_exception_handler(
                            {"message": "sim venue report handler raised", "exception": error}
                        )
