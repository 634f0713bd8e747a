"""BinanceVenue against the fake Binance on loopback: the order lifecycle with partial
fills reported exactly once although both the REST answer and the user data stream carry
them, cancels, duplicate ids, unknown outcomes settled by query (the order really placed,
exactly one on the fake), rate limits, and the user data stream dropped and resubscribed.

Timeouts are short so that a lost answer costs a fraction of a second; waits are on
reports, never on sleeps."""

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import pytest

from tests.support.fake_binance import FakeBinance, FakeOrder, Fault
from veloz.binance.endpoints import BinanceEndpoints
from veloz.binance.limits import RateLimiter
from veloz.binance.signing import Credentials, HmacSigner
from veloz.clock import LiveClock
from veloz.execution.venue import VenueOrder
from veloz.execution.venues.binance import BinanceVenue, VenueStats
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import (
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReport,
)
from veloz.model.instruments import Instrument
from veloz.model.orders import Order

SYMBOL = "BTCUSDT"
WAIT_S = 5.0
_R = TypeVar("_R", bound=OrderReport)

INSTRUMENT = Instrument(
    symbol=SYMBOL,
    base_asset="BTC",
    quote_asset="USDT",
    price_increment=Decimal("0.01"),
    size_increment=Decimal("0.00001"),
    min_qty=Decimal("0.00001"),
    max_qty=Decimal("9000"),
    min_notional=Decimal("5"),
)


class Reports:
    """The venue's report handler: every report, and a way to await one."""

    def __init__(self) -> None:
        self.all: list[OrderReport] = []
        self._arrived = asyncio.Event()

    def __call__(self, report: OrderReport) -> None:
        self.all.append(report)
        self._arrived.set()

    def of(self, client_order_id: str) -> list[OrderReport]:
        return [r for r in self.all if r.client_order_id == client_order_id]

    def kinds(self, client_order_id: str) -> list[str]:
        return [type(r).__name__ for r in self.of(client_order_id)]

    async def until(self, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._arrived.clear()
                await self._arrived.wait()

    async def wait(self, kind: type[_R], client_order_id: str, count: int = 1) -> list[_R]:
        def found() -> list[_R]:
            return [r for r in self.of(client_order_id) if isinstance(r, kind)]

        await self.until(lambda: len(found()) >= count)
        return found()

    async def settle(self) -> None:
        """Let reports already on their way arrive (a few loop turns, no timer)."""
        for _ in range(20):
            await asyncio.sleep(0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    server = FakeBinance(api_key="k", secret="s", symbols=(SYMBOL,))
    await server.start()
    server.set_book(
        SYMBOL, bids=[(Decimal("50000"), Decimal("1"))], asks=[(Decimal("50001"), Decimal("1"))]
    )
    yield server
    await server.stop()


@pytest.fixture
def reports() -> Reports:
    return Reports()


def make_venue(
    fake: FakeBinance,
    reports: Reports,
    endpoints: BinanceEndpoints | None = None,
    **options: Any,
) -> BinanceVenue:
    settings: dict[str, Any] = {
        "timeout_s": 0.5,
        "recv_window_ms": 500,
        "reconnect_delay_s": 0.05,
        "max_reconnect_delay_s": 0.2,
        "poll_interval_s": 0.05,
        "resolve_delay_s": 0.05,
        "max_resolve_delay_s": 0.2,
        "stream_timeout_s": 2.0,
        **options,
    }
    venue = BinanceVenue(
        endpoints or fake.endpoints(),
        Credentials("k", HmacSigner("s")),
        {SYMBOL: INSTRUMENT},
        clock=LiveClock(),
        limiter=RateLimiter(),
        **settings,
    )
    venue.set_report_handler(reports)
    return venue


@pytest.fixture
async def venue(fake: FakeBinance, reports: Reports) -> AsyncIterator[BinanceVenue]:
    connected = make_venue(fake, reports)
    await connected.connect()
    assert connected.stats.user_stream_connected
    yield connected
    await connected.close()


_ids = iter(range(1, 1_000_000))


def order(
    side: OrderSide = OrderSide.BUY,
    qty: str = "0.01",
    price: str | None = "49000",
    tif: TimeInForce = TimeInForce.GTC,
    client_order_id: str | None = None,
) -> VenueOrder:
    return VenueOrder(
        client_order_id=client_order_id or f"t-{next(_ids)}",
        symbol=SYMBOL,
        side=side,
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        time_in_force=tif,
        qty=Decimal(qty),
        price=Decimal(price) if price is not None else None,
    )


def on_fake(fake: FakeBinance, client_order_id: str) -> list[FakeOrder]:
    return [o for o in fake.orders.values() if o.client_order_id == client_order_id]


# -- lifecycle -------------------------------------------------------------------------


async def test_resting_order_partly_filled_then_filled_reports_each_fact_once(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order(qty="0.03", price="49000")
    await venue.submit(request)
    [ack] = await reports.wait(OrderAccepted, request.client_order_id)

    await fake.fill(request.client_order_id, Decimal("0.01"), Decimal("49000"))
    await fake.fill(request.client_order_id, Decimal("0.02"), Decimal("48999.5"))
    await reports.wait(OrderFilled, request.client_order_id, 2)
    await reports.settle()

    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderFilled", "OrderFilled"]
    fills = [r for r in reports.of(request.client_order_id) if isinstance(r, OrderFilled)]
    assert [f.qty for f in fills] == [Decimal("0.01"), Decimal("0.02")]
    assert [f.price for f in fills] == [Decimal("49000"), Decimal("48999.5")]
    assert all(f.liquidity is LiquiditySide.MAKER for f in fills)
    assert len({f.trade_id for f in fills}) == 2
    state = await venue.query(request.client_order_id, SYMBOL)
    assert state is not None
    assert (state.status, state.executed_qty, state.venue_order_id) == (
        OrderStatus.FILLED,
        Decimal("0.03"),
        ack.venue_order_id,
    )
    assert [(f.trade_id, f.qty, f.fee, f.fee_asset) for f in state.fills] == [
        (f.trade_id, f.qty, f.fee, f.fee_asset) for f in fills
    ]


async def test_taker_fills_in_the_answer_and_the_stream_are_reported_once(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    fake.set_book(
        SYMBOL,
        bids=[(Decimal("50000"), Decimal("1"))],
        asks=[(Decimal("50001"), Decimal("0.01")), (Decimal("50002"), Decimal("1"))],
    )
    request = order(qty="0.03", price=None)

    await venue.submit(request)
    await reports.wait(OrderFilled, request.client_order_id, 2)
    await reports.settle()

    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderFilled", "OrderFilled"]
    fills = [r for r in reports.of(request.client_order_id) if isinstance(r, OrderFilled)]
    assert [(f.qty, f.price, f.liquidity) for f in fills] == [
        (Decimal("0.01"), Decimal("50001"), LiquiditySide.TAKER),
        (Decimal("0.02"), Decimal("50002"), LiquiditySide.TAKER),
    ]
    # Fees and their asset exactly as the fake charged them (a buy pays in the base asset).
    charged = {str(t.trade_id): (t.commission, t.commission_asset) for t in fake.trades}
    assert [(f.fee, f.fee_asset) for f in fills] == [charged[f.trade_id] for f in fills]
    assert [f.fee for f in fills] == [Decimal("0.00001"), Decimal("0.00002")]
    assert venue.stats.submit_latency.count == 1


async def test_cancel_of_a_resting_order(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order()
    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)

    await venue.cancel(request.client_order_id, SYMBOL)
    await reports.wait(OrderCancelled, request.client_order_id)
    await reports.settle()

    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderCancelled"]


async def test_cancel_of_a_filled_order_is_rejected_with_binance_reason(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order(qty="0.01", price="49000")
    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)
    await fake.fill(request.client_order_id, Decimal("0.01"), Decimal("49000"))
    await reports.wait(OrderFilled, request.client_order_id)

    await venue.cancel(request.client_order_id, SYMBOL)
    [refused] = await reports.wait(OrderCancelRejected, request.client_order_id)

    assert "-2011" in refused.reason or "-2013" in refused.reason


async def test_rejection_keeps_binance_code_and_message(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order(qty="100", price="49000")  # 4.9 million USDT: beyond the balance

    await venue.submit(request)
    [rejected] = await reports.wait(OrderRejected, request.client_order_id)

    assert "-2010" in rejected.reason and "insufficient balance" in rejected.reason
    assert on_fake(fake, request.client_order_id) == []


async def test_duplicate_of_a_working_order_is_refused_and_the_first_stays(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order()
    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)

    await venue.submit(request)
    [refused] = await reports.wait(OrderRejected, request.client_order_id)

    assert "Duplicate order sent." in refused.reason
    assert len(on_fake(fake, request.client_order_id)) == 1
    state = await venue.query(request.client_order_id, SYMBOL)
    assert state is not None and state.status is OrderStatus.ACCEPTED


async def test_duplicate_answer_for_an_order_we_never_heard_of_resolves_to_it(
    fake: FakeBinance, reports: Reports
) -> None:
    """After a restart that lost the acknowledgement: Binance's -2010 duplicate is our own
    order, found by query, not a rejection."""
    first = make_venue(fake, Reports())
    await first.connect()
    request = order()
    await first.submit(request)
    await first.close()

    second = make_venue(fake, reports)
    await second.connect()
    try:
        await second.submit(request)
        [ack] = await reports.wait(OrderAccepted, request.client_order_id)
    finally:
        await second.close()
    assert reports.kinds(request.client_order_id) == ["OrderAccepted"]
    assert ack.venue_order_id == str(on_fake(fake, request.client_order_id)[0].order_id)


# -- unknown outcomes ------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["TIMEOUT", "HTTP_500", "DROP", "CODE_1007"])
async def test_submit_with_unknown_outcome_is_settled_never_resent(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports, fault: str
) -> None:
    """The order was placed although no answer said so: the user data stream (or the
    query) tells it, once, and the order is never sent again."""
    request = order()
    fake.fail_next("/api/v3/order", Fault[fault], apply=True)

    await venue.submit(request)
    [ack] = await reports.wait(OrderAccepted, request.client_order_id)
    await reports.settle()

    [placed] = on_fake(fake, request.client_order_id)
    posts = [r for r in fake.requests if (r.method, r.path) == ("POST", "/api/v3/order")]
    assert len(posts) == 1
    assert reports.kinds(request.client_order_id) == ["OrderAccepted"]
    assert ack.venue_order_id == str(placed.order_id)
    assert venue.stats.unknown_outcomes == 1


async def streamless_venue(fake: FakeBinance, reports: Reports, **options: Any) -> BinanceVenue:
    """A venue whose user data stream never comes up (nothing listens where it points),
    so only queries and polling tell it anything."""
    nowhere = msgspec.structs.replace(fake.endpoints(), ws_api="ws://127.0.0.1:9/ws-api/v3")
    venue = make_venue(fake, reports, nowhere, stream_timeout_s=0.05, **options)
    await venue.connect()
    assert not venue.stats.user_stream_connected and venue.stats.polling
    return venue


@pytest.fixture
async def streamless(fake: FakeBinance, reports: Reports) -> AsyncIterator[BinanceVenue]:
    venue = await streamless_venue(fake, reports)
    yield venue
    await venue.close()


@pytest.mark.parametrize("fault", ["TIMEOUT", "HTTP_500", "DROP", "CODE_1007"])
async def test_submit_with_unknown_outcome_is_settled_by_query(
    fake: FakeBinance, streamless: BinanceVenue, reports: Reports, fault: str
) -> None:
    request = order()
    fake.fail_next("/api/v3/order", Fault[fault], apply=True)

    await streamless.submit(request)
    assert reports.of(request.client_order_id) == []  # nothing known yet: PENDING_NEW
    [ack] = await reports.wait(OrderAccepted, request.client_order_id)
    await fake.fill(request.client_order_id, Decimal("0.004"))
    [fill] = await reports.wait(OrderFilled, request.client_order_id)

    [placed] = on_fake(fake, request.client_order_id)
    assert ack.venue_order_id == str(placed.order_id)
    assert fill.qty == Decimal("0.004") and fill.trade_id == str(fake.trades[-1].trade_id)
    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderFilled"]
    assert streamless.stats.resolved_by_query == 1


@pytest.mark.parametrize("fault", ["TIMEOUT", "HTTP_500", "DROP", "CODE_1007"])
async def test_submit_lost_before_binance_placed_it_is_rejected_as_not_placed(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports, fault: str
) -> None:
    request = order()
    fake.fail_next("/api/v3/order", Fault[fault], apply=False)

    await venue.submit(request)
    [rejected] = await reports.wait(OrderRejected, request.client_order_id)

    assert "not placed" in rejected.reason
    assert on_fake(fake, request.client_order_id) == []
    assert venue.stats.resolved_by_query == 1


@pytest.mark.parametrize("fault", ["TIMEOUT", "HTTP_500", "DROP", "CODE_1007"])
async def test_cancel_with_unknown_outcome_is_settled_by_query(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports, fault: str
) -> None:
    request = order()
    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)
    fake.fail_next("/api/v3/order", Fault[fault], apply=True)

    await venue.cancel(request.client_order_id, SYMBOL)
    await reports.wait(OrderCancelled, request.client_order_id)
    await reports.settle()

    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderCancelled"]


async def test_cancel_with_unknown_outcome_is_settled_by_query_without_the_stream(
    fake: FakeBinance, reports: Reports
) -> None:
    venue = await streamless_venue(fake, reports, poll_interval_s=60.0)
    try:
        request = order()
        await venue.submit(request)
        await reports.wait(OrderAccepted, request.client_order_id)
        fake.fail_next("/api/v3/order", Fault.TIMEOUT, apply=True, method="DELETE")

        await venue.cancel(request.client_order_id, SYMBOL)
        assert reports.kinds(request.client_order_id) == ["OrderAccepted"]  # PENDING_CANCEL
        await reports.wait(OrderCancelled, request.client_order_id)
    finally:
        await venue.close()

    assert fake.order(request.client_order_id).status == "CANCELED"
    assert venue.stats.resolved_by_query == 1


async def test_cancel_lost_before_binance_saw_it_is_sent_again(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order()
    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)
    fake.fail_next("/api/v3/order", Fault.TIMEOUT, apply=False)

    await venue.cancel(request.client_order_id, SYMBOL)
    await reports.wait(OrderCancelled, request.client_order_id)

    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderCancelled"]


# -- rate limits -----------------------------------------------------------------------


async def test_429_waits_out_retry_after_and_sends_the_order(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order()
    fake.fail_next("/api/v3/order", Fault.RATE_429)

    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)

    assert len(on_fake(fake, request.client_order_id)) == 1
    assert venue.stats.rate_limited == 1


async def test_418_ban_rejects_orders_with_a_clear_reason(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    banned, after = order(), order()
    fake.fail_next("/api/v3/order", Fault.BAN_418)

    await venue.submit(banned)
    [first] = await reports.wait(OrderRejected, banned.client_order_id)
    await venue.submit(after)  # refused by our limiter, never sent
    [second] = await reports.wait(OrderRejected, after.client_order_id)

    assert "banned" in first.reason and "418" in first.reason
    assert "banned" in second.reason
    assert not venue.connected
    assert on_fake(fake, after.client_order_id) == []


# -- the user data stream --------------------------------------------------------------


async def stream_state(venue: BinanceVenue, predicate: Callable[[VenueStats], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        await venue.wait_stream(predicate)


async def test_fills_while_the_stream_is_down_are_polled_and_reported_once(
    fake: FakeBinance, reports: Reports
) -> None:
    venue = make_venue(fake, reports, reconnect_delay_s=0.5, max_reconnect_delay_s=0.5)
    await venue.connect()
    try:
        request = order(qty="0.03")
        await venue.submit(request)
        await reports.wait(OrderAccepted, request.client_order_id)

        await fake.drop_user_stream()
        await stream_state(venue, lambda stats: stats.polling)
        await fake.fill(request.client_order_id, Decimal("0.01"), Decimal("49000"))
        await reports.wait(OrderFilled, request.client_order_id)
        # It came by polling: the stream is still waiting out its reconnect delay.
        assert not venue.stats.user_stream_connected

        await stream_state(venue, lambda stats: stats.user_stream_connected and not stats.polling)
        await fake.fill(request.client_order_id, Decimal("0.02"), Decimal("49000"))
        await reports.wait(OrderFilled, request.client_order_id, 2)
        await reports.settle()
    finally:
        await venue.close()

    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderFilled", "OrderFilled"]
    assert venue.stats.reconnects == 1


async def test_fills_between_the_drop_and_the_resubscription_are_reported_once(
    fake: FakeBinance, reports: Reports
) -> None:
    """The gap fill: a fill made while the stream was down but before polling saw it is
    found by the poll pass made when the stream is back."""
    venue = make_venue(fake, reports, poll_interval_s=60.0)
    await venue.connect()
    try:
        request = order(qty="0.03")
        await venue.submit(request)
        await reports.wait(OrderAccepted, request.client_order_id)

        await fake.drop_user_stream()
        await stream_state(venue, lambda stats: not stats.user_stream_connected)
        await fake.fill(request.client_order_id, Decimal("0.01"), Decimal("49000"))
        [fill] = await reports.wait(OrderFilled, request.client_order_id)
        await reports.settle()
    finally:
        await venue.close()

    assert fill.qty == Decimal("0.01")
    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderFilled"]


async def test_server_shutdown_moves_the_stream_without_losing_a_fill(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order(qty="0.03")
    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)

    await fake.server_shutdown()
    await stream_state(venue, lambda stats: stats.reconnects == 1)
    await fake.fill(request.client_order_id, Decimal("0.03"), Decimal("49000"))
    await reports.wait(OrderFilled, request.client_order_id)
    await reports.settle()

    assert reports.kinds(request.client_order_id) == ["OrderAccepted", "OrderFilled"]
    assert venue.stats.user_stream_connected


async def test_restart_restores_orders_and_reports_only_what_is_new(
    fake: FakeBinance, reports: Reports
) -> None:
    """After a restart the journal's open orders are restored: fills the journal has are
    not reported again; the ones made while we were away are (once)."""
    first = make_venue(fake, Reports())
    await first.connect()
    request = order(qty="0.03")
    await first.submit(request)
    await fake.fill(request.client_order_id, Decimal("0.01"))
    await first.close()
    await fake.fill(request.client_order_id, Decimal("0.01"))  # while nobody listens
    placed = on_fake(fake, request.client_order_id)[0]
    journal = Order(
        client_order_id=request.client_order_id,
        symbol=SYMBOL,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        order_qty=request.qty,
        limit_price=request.price,
        status=OrderStatus.PARTIALLY_FILLED,
        venue_order_id=str(placed.order_id),
        executed_qty=Decimal("0.01"),
        trade_ids=[str(fake.trades[0].trade_id)],
    )

    second = make_venue(fake, reports)
    second.restore([journal], [])
    await second.connect()
    try:
        [missed] = await reports.wait(OrderFilled, request.client_order_id)
        await reports.settle()
    finally:
        await second.close()

    assert missed.trade_id == str(fake.trades[1].trade_id)
    assert reports.kinds(request.client_order_id) == ["OrderFilled"]


async def test_order_expired_by_binance_is_reported_with_its_reason(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order()
    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)

    await fake.expire(request.client_order_id)
    [expired] = await reports.wait(OrderExpired, request.client_order_id)

    assert expired.reason == "EXCHANGE_CANCELED"


async def test_unreadable_execution_report_is_counted_and_the_stream_carries_on(
    fake: FakeBinance, venue: BinanceVenue, reports: Reports
) -> None:
    request = order()
    await venue.submit(request)
    await reports.wait(OrderAccepted, request.client_order_id)

    fake.ws_api.publish({"e": "executionReport", "c": request.client_order_id, "X": "WHAT"})
    await fake.fill(request.client_order_id, Decimal("0.01"))
    await reports.wait(OrderFilled, request.client_order_id)

    assert venue.stats.malformed == 1 and venue.stats.user_stream_connected
