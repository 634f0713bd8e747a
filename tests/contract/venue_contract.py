"""The contract every venue adapter passes, in the manner of hummingbot's connector test
base: the same tests for the simulated venue and for Binance.

A venue's test module provides a `VenueHarness` (how to build the venue and move the
market it sees) and subclasses `VenueContract`, implementing `make_harness()`. The tests
speak only the `Venue` protocol and the harness. Every report is recorded by a
`ReportRecorder`, which replays each order's reports through the model's `Order` state
machine (so reports out of order fail the test) and notes any report delivered from
inside `submit()`/`cancel()` instead of later, as a real exchange would.
"""

import asyncio
import itertools
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol, TypeVar

import pytest

from veloz.execution.venue import Venue, VenueOrder
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.errors import InvalidTransition
from veloz.model.events import (
    OrderAccepted,
    OrderCancelRejected,
    OrderFilled,
    OrderRejected,
    OrderReport,
    OrderSubmitted,
)
from veloz.model.orders import Order

# How long a report may take; a harness for a slower venue passes its own to the recorder.
REPORT_TIMEOUT_S = 5.0
BPS = Decimal(10_000)
# Venues quote fees to 8 places; an expected fee may differ from theirs by rounding only.
FEE_TOLERANCE = Decimal("0.00000001")

_R = TypeVar("_R", bound=OrderReport)


class ReportRecorder:
    """The report handler the suite installs on a venue."""

    def __init__(self, timeout_s: float = REPORT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.reports: list[OrderReport] = []
        self.violations: list[str] = []
        self._orders: dict[str, Order] = {}
        self._inside_call: asyncio.Task[object] | None = None
        self._arrived = asyncio.Event()

    def __call__(self, report: OrderReport) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.violations.append(f"{report!r} delivered outside the event loop")
        current = asyncio.current_task()
        if current is not None and current is self._inside_call:
            self.violations.append(f"{report!r} delivered synchronously inside submit/cancel")
        self.reports.append(report)
        self._replay(report)
        self._arrived.set()

    def _replay(self, report: OrderReport) -> None:
        order = self._orders.get(report.client_order_id)
        # A cancel rejection answers a request, not the order; it changes no order state.
        if order is None or isinstance(report, OrderCancelRejected):
            return
        try:
            order.apply(report)
        except InvalidTransition as error:
            self.violations.append(f"out-of-order report {report!r}: {error}")

    def track(self, request: VenueOrder) -> None:
        """Follow `request`'s reports with the model's state machine from now on."""
        submitted = OrderSubmitted(
            ts_ns=0,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            time_in_force=request.time_in_force,
            qty=request.qty,
            price=request.price,
        )
        self._orders[request.client_order_id] = Order.from_submitted(submitted)

    def untrack(self, client_order_id: str) -> None:
        self._orders.pop(client_order_id, None)

    def order(self, client_order_id: str) -> Order:
        """The order as its reports so far have built it."""
        return self._orders[client_order_id]

    @contextmanager
    def inside_call(self) -> Iterator[None]:
        """Mark the current task as inside a venue call; reports must not arrive in it."""
        self._inside_call = asyncio.current_task()
        try:
            yield
        finally:
            self._inside_call = None

    def for_order(self, client_order_id: str) -> list[OrderReport]:
        return [r for r in self.reports if r.client_order_id == client_order_id]

    def fills(self, client_order_id: str) -> list[OrderFilled]:
        return [r for r in self.for_order(client_order_id) if isinstance(r, OrderFilled)]

    async def wait_for(self, predicate: Callable[[OrderReport], bool]) -> OrderReport:
        """The first report (already recorded or still to come) matching `predicate`."""
        async with asyncio.timeout(self.timeout_s):
            seen = 0
            while True:
                for report in self.reports[seen:]:
                    if predicate(report):
                        return report
                seen = len(self.reports)
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_report(self, kind: type[_R], client_order_id: str) -> _R:
        report = await self.wait_for(
            lambda r: isinstance(r, kind) and r.client_order_id == client_order_id
        )
        assert isinstance(report, kind)
        return report

    async def wait_final(self, client_order_id: str) -> Order:
        """The tracked order once a report has made it final."""
        order = self._orders[client_order_id]
        async with asyncio.timeout(self.timeout_s):
            while not order.is_final:
                self._arrived.clear()
                await self._arrived.wait()
        return order

    async def wait_executed(self, client_order_id: str, qty: Decimal) -> Order:
        """The tracked order once at least `qty` of it has been filled."""
        order = self._orders[client_order_id]
        async with asyncio.timeout(self.timeout_s):
            while order.executed_qty < qty:
                self._arrived.clear()
                await self._arrived.wait()
        return order

    def assert_clean(self) -> None:
        assert self.violations == []


class VenueHarness(Protocol):
    """What the suite needs to drive one venue implementation.

    The account behind the venue must hold at least 100 `lot`s of `base_asset` and enough
    `quote_asset` to buy 100 `lot`s at `ask` plus fees; the venue must be configured with
    no slippage, so a taker trades exactly at the touch. `bid`, `ask`, `tick` and `lot`
    must respect the instrument's price and size increments, and `lot * bid` its minimum
    notional.
    """

    symbol: str
    base_asset: str
    quote_asset: str
    bid: Decimal
    ask: Decimal
    tick: Decimal
    lot: Decimal
    maker_fee_bps: Decimal
    taker_fee_bps: Decimal
    recorder: ReportRecorder

    async def make_venue(self) -> Venue:
        """A connected venue whose report handler is `recorder`."""
        ...

    async def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, bid_size: Decimal, ask_size: Decimal
    ) -> None:
        """Move the market the venue sees; returns once the venue has seen the quote."""
        ...

    async def close(self) -> None:
        """Close the venue and release whatever the harness started."""
        ...


def expected_fee(fill: OrderFilled, harness: VenueHarness) -> Decimal:
    """The fee a fill should carry at the harness's rates, in whichever asset the venue
    charged (the base asset is charged per unit, the quote asset per notional)."""
    bps = harness.maker_fee_bps if fill.liquidity is LiquiditySide.MAKER else harness.taker_fee_bps
    assert fill.fee_asset in (harness.base_asset, harness.quote_asset), fill.fee_asset
    amount = fill.qty if fill.fee_asset == harness.base_asset else fill.qty * fill.price
    return (amount * bps / BPS).quantize(FEE_TOLERANCE, rounding=ROUND_HALF_UP)


class VenueContract(ABC):
    """The venue contract. Subclass as `Test<Venue>Contract` and implement `make_harness`."""

    _ids = itertools.count()

    @abstractmethod
    def make_harness(self) -> VenueHarness: ...

    @pytest.fixture
    async def harness(self) -> AsyncIterator[VenueHarness]:
        harness = self.make_harness()
        try:
            yield harness
        finally:
            await harness.close()
        harness.recorder.assert_clean()

    @pytest.fixture
    async def venue(self, harness: VenueHarness) -> Venue:
        venue = await harness.make_venue()
        await self.quote(harness, size=10 * harness.lot)
        return venue

    # -- helpers -----------------------------------------------------------------------

    async def quote(
        self,
        harness: VenueHarness,
        *,
        size: Decimal,
        bid: Decimal | None = None,
        ask: Decimal | None = None,
    ) -> None:
        await harness.set_quote(
            harness.symbol,
            harness.bid if bid is None else bid,
            harness.ask if ask is None else ask,
            size,
            size,
        )

    def request(
        self,
        harness: VenueHarness,
        side: OrderSide,
        qty: Decimal,
        price: Decimal | None = None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        client_order_id: str | None = None,
    ) -> VenueOrder:
        return VenueOrder(
            client_order_id=client_order_id or f"ct-{uuid.uuid4().hex[:12]}-{next(self._ids)}",
            symbol=harness.symbol,
            side=side,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            time_in_force=tif,
            qty=qty,
            price=price,
        )

    async def place(self, venue: Venue, harness: VenueHarness, request: VenueOrder) -> str:
        harness.recorder.track(request)
        with harness.recorder.inside_call():
            await venue.submit(request)
        return request.client_order_id

    async def cancel(self, venue: Venue, harness: VenueHarness, client_order_id: str) -> None:
        with harness.recorder.inside_call():
            await venue.cancel(client_order_id, harness.symbol)

    def away_bid(self, harness: VenueHarness) -> Decimal:
        """A BUY price well below the market, so the order rests."""
        return harness.bid - 100 * harness.tick

    async def rest_buy(self, venue: Venue, harness: VenueHarness) -> str:
        client_order_id = await self.place(
            venue,
            harness,
            self.request(harness, OrderSide.BUY, harness.lot, self.away_bid(harness)),
        )
        await harness.recorder.wait_report(OrderAccepted, client_order_id)
        return client_order_id

    def assert_fill(
        self,
        fill: OrderFilled,
        harness: VenueHarness,
        *,
        side: OrderSide,
        qty: Decimal,
        price: Decimal,
        liquidity: LiquiditySide,
    ) -> None:
        assert (fill.symbol, fill.side, fill.qty, fill.price, fill.liquidity) == (
            harness.symbol,
            side,
            qty,
            price,
            liquidity,
        )
        assert fill.trade_id
        assert abs(fill.fee - expected_fee(fill, harness)) <= FEE_TOLERANCE

    # -- place, ack, fill ------------------------------------------------------------

    async def test_order_away_from_the_market_is_acknowledged_and_rests(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        client_order_id = await self.rest_buy(venue, harness)

        ack = await harness.recorder.wait_report(OrderAccepted, client_order_id)
        state = await venue.query(client_order_id, harness.symbol)
        assert ack.venue_order_id
        assert state is not None
        assert (state.status, state.executed_qty, state.venue_order_id) == (
            OrderStatus.ACCEPTED,
            Decimal(0),
            ack.venue_order_id,
        )
        assert state.fills == []

    async def test_orders_get_distinct_venue_order_ids(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        first = await self.rest_buy(venue, harness)
        second = await self.rest_buy(venue, harness)

        acks = [await harness.recorder.wait_report(OrderAccepted, c) for c in (first, second)]
        assert acks[0].venue_order_id != acks[1].venue_order_id

    async def test_marketable_limit_buy_fills_as_taker_at_the_ask(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        limit = harness.ask + 5 * harness.tick
        client_order_id = await self.place(
            venue, harness, self.request(harness, OrderSide.BUY, harness.lot, limit)
        )

        order = await harness.recorder.wait_final(client_order_id)
        [fill] = harness.recorder.fills(client_order_id)
        self.assert_fill(
            fill,
            harness,
            side=OrderSide.BUY,
            qty=harness.lot,
            price=harness.ask,
            liquidity=LiquiditySide.TAKER,
        )
        assert (order.status, order.executed_qty) == (OrderStatus.FILLED, harness.lot)
        state = await venue.query(client_order_id, harness.symbol)
        assert state is not None
        assert (state.status, state.executed_qty) == (OrderStatus.FILLED, harness.lot)
        assert [f.trade_id for f in state.fills] == [fill.trade_id]

    async def test_market_sell_fills_as_taker_at_the_bid(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        client_order_id = await self.place(
            venue, harness, self.request(harness, OrderSide.SELL, 2 * harness.lot)
        )

        order = await harness.recorder.wait_final(client_order_id)
        [fill] = harness.recorder.fills(client_order_id)
        self.assert_fill(
            fill,
            harness,
            side=OrderSide.SELL,
            qty=2 * harness.lot,
            price=harness.bid,
            liquidity=LiquiditySide.TAKER,
        )
        assert fill.fee_asset == harness.quote_asset
        assert order.status is OrderStatus.FILLED

    async def test_fill_moves_the_account_balances(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        before = await venue.balances()
        client_order_id = await self.place(
            venue, harness, self.request(harness, OrderSide.BUY, harness.lot, harness.ask)
        )
        await harness.recorder.wait_final(client_order_id)

        after = await venue.balances()
        [fill] = harness.recorder.fills(client_order_id)
        base_fee = fill.fee if fill.fee_asset == harness.base_asset else 0
        quote_fee = fill.fee if fill.fee_asset == harness.quote_asset else 0
        assert after[harness.base_asset] - before[harness.base_asset] == fill.qty - base_fee
        assert after[harness.quote_asset] - before[harness.quote_asset] == -(
            fill.qty * fill.price + quote_fee
        )

    async def test_order_larger_than_the_displayed_size_fills_partly_rests_then_completes(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        await self.quote(harness, size=harness.lot)
        limit = harness.ask
        client_order_id = await self.place(
            venue, harness, self.request(harness, OrderSide.BUY, 3 * harness.lot, limit)
        )

        await harness.recorder.wait_executed(client_order_id, harness.lot)
        state = await venue.query(client_order_id, harness.symbol)
        assert state is not None
        assert (state.status, state.executed_qty) == (OrderStatus.PARTIALLY_FILLED, harness.lot)

        await self.quote(
            harness, size=10 * harness.lot, bid=limit - 2 * harness.tick, ask=limit - harness.tick
        )
        order = await harness.recorder.wait_final(client_order_id)

        taker, maker = harness.recorder.fills(client_order_id)
        self.assert_fill(
            taker,
            harness,
            side=OrderSide.BUY,
            qty=harness.lot,
            price=harness.ask,
            liquidity=LiquiditySide.TAKER,
        )
        self.assert_fill(
            maker,
            harness,
            side=OrderSide.BUY,
            qty=2 * harness.lot,
            price=limit,
            liquidity=LiquiditySide.MAKER,
        )
        assert (order.status, order.executed_qty) == (OrderStatus.FILLED, 3 * harness.lot)

    # -- cancel --------------------------------------------------------------------------

    async def test_cancel_of_a_resting_order_cancels_it(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        client_order_id = await self.rest_buy(venue, harness)

        await self.cancel(venue, harness, client_order_id)

        order = await harness.recorder.wait_final(client_order_id)
        assert order.status is OrderStatus.CANCELLED
        state = await venue.query(client_order_id, harness.symbol)
        assert state is not None
        assert state.status is OrderStatus.CANCELLED

    async def test_cancel_of_an_unknown_order_is_rejected(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        unknown = f"ct-unknown-{uuid.uuid4().hex[:12]}"

        await self.cancel(venue, harness, unknown)

        rejection = await harness.recorder.wait_report(OrderCancelRejected, unknown)
        assert rejection.reason
        assert await venue.query(unknown, harness.symbol) is None

    async def test_cancel_of_a_filled_order_is_rejected(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        client_order_id = await self.place(
            venue, harness, self.request(harness, OrderSide.BUY, harness.lot, harness.ask)
        )
        await harness.recorder.wait_final(client_order_id)

        await self.cancel(venue, harness, client_order_id)

        await harness.recorder.wait_report(OrderCancelRejected, client_order_id)
        assert harness.recorder.order(client_order_id).status is OrderStatus.FILLED

    # -- rejections ----------------------------------------------------------------------

    async def test_order_beyond_the_balance_is_rejected_and_changes_nothing(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        before = await venue.balances()
        price = self.away_bid(harness)
        lots = int(before.get(harness.quote_asset, Decimal(0)) / (price * harness.lot)) * 2 + 1
        client_order_id = await self.place(
            venue, harness, self.request(harness, OrderSide.BUY, lots * harness.lot, price)
        )

        order = await harness.recorder.wait_final(client_order_id)
        assert order.status is OrderStatus.REJECTED
        assert order.reason
        assert await venue.balances() == before

    async def test_duplicate_client_order_id_is_rejected_and_the_first_order_stays(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        client_order_id = await self.rest_buy(venue, harness)
        harness.recorder.untrack(client_order_id)

        duplicate = self.request(
            harness,
            OrderSide.BUY,
            harness.lot,
            self.away_bid(harness),
            client_order_id=client_order_id,
        )
        with harness.recorder.inside_call():
            await venue.submit(duplicate)

        await harness.recorder.wait_report(OrderRejected, client_order_id)
        state = await venue.query(client_order_id, harness.symbol)
        assert state is not None
        assert state.status is OrderStatus.ACCEPTED

    # -- time in force -------------------------------------------------------------------

    async def test_ioc_remainder_expires_after_the_immediate_fill(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        await self.quote(harness, size=harness.lot)
        client_order_id = await self.place(
            venue,
            harness,
            self.request(harness, OrderSide.BUY, 3 * harness.lot, harness.ask, tif=TimeInForce.IOC),
        )

        order = await harness.recorder.wait_final(client_order_id)
        assert (order.status, order.executed_qty) == (OrderStatus.EXPIRED, harness.lot)
        kinds = [type(r).__name__ for r in harness.recorder.for_order(client_order_id)]
        assert kinds == ["OrderAccepted", "OrderFilled", "OrderExpired"]

    async def test_fok_that_cannot_fill_completely_expires_without_a_fill(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        await self.quote(harness, size=harness.lot)
        client_order_id = await self.place(
            venue,
            harness,
            self.request(harness, OrderSide.BUY, 3 * harness.lot, harness.ask, tif=TimeInForce.FOK),
        )

        order = await harness.recorder.wait_final(client_order_id)
        assert (order.status, order.executed_qty) == (OrderStatus.EXPIRED, Decimal(0))
        kinds = [type(r).__name__ for r in harness.recorder.for_order(client_order_id)]
        assert kinds == ["OrderAccepted", "OrderExpired"]

    async def test_fok_that_can_fill_completely_fills(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        client_order_id = await self.place(
            venue,
            harness,
            self.request(harness, OrderSide.BUY, 3 * harness.lot, harness.ask, tif=TimeInForce.FOK),
        )

        order = await harness.recorder.wait_final(client_order_id)
        assert (order.status, order.executed_qty) == (OrderStatus.FILLED, 3 * harness.lot)
        assert sum(f.qty for f in harness.recorder.fills(client_order_id)) == 3 * harness.lot

    # -- query and delivery ----------------------------------------------------------

    async def test_query_of_an_unknown_order_returns_none(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        assert await venue.query(f"ct-never-{uuid.uuid4().hex[:12]}", harness.symbol) is None

    async def test_open_orders_lists_resting_orders_with_what_they_are(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        resting = await self.rest_buy(venue, harness)
        cancelled = await self.rest_buy(venue, harness)
        await harness.recorder.wait_report(OrderAccepted, cancelled)
        await self.cancel(venue, harness, cancelled)
        await harness.recorder.wait_final(cancelled)

        listed = {state.client_order_id: state for state in await venue.open_orders()}
        assert resting in listed and cancelled not in listed
        state = listed[resting]
        assert (state.symbol, state.side, state.status) == (
            harness.symbol,
            OrderSide.BUY,
            OrderStatus.ACCEPTED,
        )
        assert state.order_qty is not None and state.order_qty > 0 and state.price is not None

    async def test_reports_arrive_per_order_in_order_and_never_inside_submit(
        self, venue: Venue, harness: VenueHarness
    ) -> None:
        resting = [
            self.request(harness, OrderSide.BUY, harness.lot, self.away_bid(harness))
            for _ in range(10)
        ]
        taking = [
            self.request(harness, OrderSide.BUY, harness.lot, harness.ask, tif=TimeInForce.IOC)
            for _ in range(5)
        ]
        for request in [*resting, *taking]:
            await self.place(venue, harness, request)
        for request in resting:
            await self.cancel(venue, harness, request.client_order_id)

        for request in [*resting, *taking]:
            await harness.recorder.wait_final(request.client_order_id)
            first = harness.recorder.for_order(request.client_order_id)[0]
            assert isinstance(first, OrderAccepted)
        for request in resting:
            assert harness.recorder.order(request.client_order_id).status is OrderStatus.CANCELLED
        harness.recorder.assert_clean()
