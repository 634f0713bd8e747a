"""SimVenue's life: latency, throughput on one worker task, connect/close, restore after a
restart, bounded memory of final orders, and failures that must be loud."""

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from veloz.clock import LiveClock, SimulatedClock
from veloz.execution.venue import VenueOrder
from veloz.execution.venues.sim import SimVenue, SimVenueConfig
from veloz.model.account import Balance
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import OrderAccepted, OrderFilled, OrderRejected, OrderReport
from veloz.model.instruments import default_instrument
from veloz.model.orders import Order
from veloz.portfolio.balances import InsufficientBalance

BUY, SELL = OrderSide.BUY, OrderSide.SELL
D = Decimal


class LoopErrors:
    """Contexts passed to the loop's exception handler, and an event when one arrives."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    def __call__(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.contexts.append(context)
        self.arrived.set()


@pytest.fixture
async def loop_errors():
    loop = asyncio.get_running_loop()
    errors = LoopErrors()
    loop.set_exception_handler(errors)
    yield errors
    loop.set_exception_handler(None)


# -- latency and delivery ----------------------------------------------------------------


async def test_reports_never_arrive_inside_submit_even_without_latency(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.1")
    assert rig.reports == []
    await rig.drain()
    assert rig.kinds(order) == ["OrderAccepted", "OrderFilled"]


async def test_requests_are_answered_no_sooner_than_the_latency(make_rig):
    rig = make_rig(clock=LiveClock(), latency_ms=30)
    await rig.venue.connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    order = await rig.submit(BUY, "0.1", "49000")
    await rig.wait(lambda r: r.client_order_id == order)
    assert loop.time() - started >= 0.03
    assert await rig.venue.ping() == pytest.approx(0.03)


async def test_latency_is_measured_on_the_venue_clock_not_the_loop(make_rig):
    clock = SimulatedClock(1_000)
    rig = make_rig(clock=clock, latency_ms=50)
    await rig.venue.connect()
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.1", "49000")

    await asyncio.sleep(0.1)  # twice the latency in wall time: the clock has not moved
    assert rig.reports == []
    clock.advance(50_000_000 - 1)
    await asyncio.sleep(0.05)
    assert rig.reports == []
    clock.advance(1)
    ack = await rig.wait(lambda r: r.client_order_id == order)
    assert ack.ts_ns == 1_000 + 50_000_000


async def test_reports_a_handler_causes_come_after_those_already_queued(make_rig):
    rig = make_rig()
    record = rig.record

    def trading_on_the_first_ack(report):
        record(report)
        if report.client_order_id == "first" and isinstance(report, OrderAccepted):
            rig.quote(bid="48990", ask="49000")  # fills "first" while its batch is delivered

    rig.venue.set_report_handler(trading_on_the_first_ack)
    await rig.venue.connect()
    rig.quote(bid="49990", ask="50000")
    await rig.submit(BUY, "0.1", "49000", client_order_id="first")
    await rig.submit(BUY, "0.1", "48000", client_order_id="second")
    await rig.wait(lambda r: isinstance(r, OrderFilled))

    assert [(type(r).__name__, r.client_order_id) for r in rig.reports] == [
        ("OrderAccepted", "first"),
        ("OrderAccepted", "second"),
        ("OrderFilled", "first"),
    ]


async def test_ten_thousand_orders_are_served_by_one_worker_task(make_rig):
    rig = make_rig(starting_balances={"USDT": "100000000", "BTC": "100000"})
    baseline = len(asyncio.all_tasks())
    task_counts: list[int] = []
    record = rig.record

    def counting(report):
        task_counts.append(len(asyncio.all_tasks()))
        record(report)

    rig.venue.set_report_handler(counting)
    await rig.venue.connect()
    rig.quote(bid="49990", ask="50000", bid_size="1000000", ask_size="1000000")
    for n in range(10_000):
        if n % 2:
            await rig.submit(BUY, "0.001", "49000")
        else:
            await rig.submit(SELL, "0.001")
    await rig.drain()

    accepted = sum(isinstance(r, OrderAccepted) for r in rig.reports)
    filled = sum(isinstance(r, OrderFilled) for r in rig.reports)
    assert (accepted, filled) == (10_000, 5_000)
    assert max(task_counts) <= baseline + 1


# -- connect and close --------------------------------------------------------------------


async def test_connect_needs_a_report_handler():
    venue = SimVenue(SimVenueConfig(), SimulatedClock(), {}, lambda _symbol: None)
    with pytest.raises(RuntimeError, match="set_report_handler"):
        await venue.connect()


async def test_requests_and_pings_need_a_connection(make_rig):
    rig = make_rig()
    with pytest.raises(ConnectionError):
        await rig.submit(BUY, "0.1", "49000")
    with pytest.raises(ConnectionError):
        await rig.venue.ping()


async def test_close_drops_pending_requests_and_leaves_no_task(make_rig):
    rig = make_rig(latency_ms=10_000)
    before = asyncio.all_tasks()
    await rig.venue.connect()
    await rig.submit(BUY, "0.1", "49000")

    await rig.venue.close()
    await rig.venue.close()

    assert asyncio.all_tasks() == before
    assert rig.reports == []
    with pytest.raises(ConnectionError):
        await rig.submit(BUY, "0.1", "49000")


async def test_close_delivers_reports_of_trades_that_already_happened(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.1", "49000")
    await rig.drain()
    rig.quote(bid="48990", ask="49000")
    await rig.venue.close()
    assert rig.kinds(order) == ["OrderAccepted", "OrderFilled"]


async def test_reconnecting_keeps_orders_and_balances(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.1", "49000")
    await rig.drain()
    await rig.venue.close()
    await rig.venue.connect()

    state = await rig.venue.query(order, "BTCUSDT")
    assert state.status is OrderStatus.ACCEPTED
    assert rig.account()["USDT"].locked == D("4900")


async def test_quotes_do_not_trade_while_disconnected(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.1", "49000")
    await rig.drain()
    await rig.venue.close()
    rig.quote(bid="48990", ask="49000")
    await rig.venue.connect()
    await rig.drain()
    assert rig.fills(order) == []


async def test_a_failing_report_handler_does_not_stop_the_venue(make_rig, loop_errors):
    rig = make_rig()
    record = rig.record

    def flaky(report):
        record(report)
        if isinstance(report, OrderAccepted):
            raise RuntimeError("engine bug")

    rig.venue.set_report_handler(flaky)
    await rig.venue.connect()
    rig.quote(bid="49990", ask="50000")
    first = await rig.submit(BUY, "0.1")
    second = await rig.submit(BUY, "0.1")
    await rig.drain()

    assert rig.kinds(first) == rig.kinds(second) == ["OrderAccepted", "OrderFilled"]
    assert [c["message"] for c in loop_errors.contexts] == ["sim venue report handler raised"] * 2


async def test_a_dead_worker_is_reported_and_refuses_further_requests(loop_errors):
    def broken_quotes(_symbol):
        raise RuntimeError("quote cache bug")

    rig_reports: list[OrderReport] = []
    venue = SimVenue(
        SimVenueConfig(latency_ms=0),
        SimulatedClock(),
        {"BTCUSDT": default_instrument("BTCUSDT", D("50000"))},
        broken_quotes,
    )
    venue.set_report_handler(rig_reports.append)
    await venue.connect()
    await venue.submit(_request("x-1"))
    async with asyncio.timeout(5):
        await loop_errors.arrived.wait()

    assert loop_errors.contexts[0]["message"] == "sim venue worker died"
    with pytest.raises(ConnectionError, match="worker has stopped"):
        await venue.submit(_request("x-2"))
    await venue.close()


# -- ids and memory -----------------------------------------------------------------------


async def test_ids_differ_between_venue_instances(make_rig):
    ids = []
    for _ in range(2):
        rig = make_rig()
        await rig.venue.connect()
        rig.quote(bid="49990", ask="50000")
        order = await rig.submit(BUY, "0.1")
        await rig.drain()
        ids.append((rig.only(OrderAccepted, order).venue_order_id, rig.fills(order)[0].trade_id))
    assert ids[0][0] != ids[1][0]
    assert ids[0][1] != ids[1][1]


async def test_a_seed_makes_the_ids_repeatable_for_the_same_clock(make_rig):
    def ids_of(rig) -> tuple[str, str]:
        return rig.only(OrderAccepted, "a").venue_order_id, rig.fills("a")[0].trade_id

    ids = []
    for seed in (7, 7, 8):
        rig = make_rig(clock=SimulatedClock(1_000), id_seed=seed)
        await rig.venue.connect()
        rig.quote(bid="49990", ask="50000")
        await rig.submit(BUY, "0.1", client_order_id="a")
        await rig.drain()
        ids.append(ids_of(rig))
    assert ids[0] == ids[1]
    assert ids[0][0] != ids[2][0]
    assert ids[0][1] != ids[2][1]


async def test_only_the_most_recent_final_orders_are_remembered(make_rig):
    rig = make_rig(order_history_limit=2)
    await rig.venue.connect()
    rig.quote(bid="49990", ask="50000")
    resting = await rig.submit(BUY, "0.1", "49000")
    filled = [await rig.submit(SELL, "0.1") for _ in range(3)]
    await rig.drain()

    assert await rig.venue.query(filled[0], "BTCUSDT") is None
    assert all([await rig.venue.query(o, "BTCUSDT") for o in filled[1:]])
    assert await rig.venue.query(resting, "BTCUSDT") is not None


# -- restore ------------------------------------------------------------------------------


def _journal_order(
    client_order_id: str,
    side: OrderSide,
    qty: str,
    price: str,
    *,
    status: OrderStatus = OrderStatus.ACCEPTED,
    executed: str = "0",
    venue_order_id: str | None = "old",
    tif: TimeInForce = TimeInForce.GTC,
    created: int = 0,
) -> Order:
    return Order(
        client_order_id=client_order_id,
        symbol="BTCUSDT",
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=tif,
        order_qty=D(qty),
        limit_price=D(price),
        status=status,
        venue_order_id=venue_order_id,
        executed_qty=D(executed),
        created_ts_ns=created,
    )


JOURNAL_ORDERS = [
    _journal_order(
        "r-buy",
        BUY,
        "1",
        "49000",
        status=OrderStatus.PARTIALLY_FILLED,
        executed="0.4",
        venue_order_id="old-7",
        created=10,
    ),
    _journal_order("r-sell", SELL, "2", "52000", venue_order_id="old-8", created=5),
    _journal_order(
        "r-unacked", BUY, "0.1", "48000", status=OrderStatus.PENDING_NEW, venue_order_id=None
    ),
    _journal_order("r-ioc", BUY, "0.1", "48000", tif=TimeInForce.IOC),
]
JOURNAL_BALANCES = [
    Balance(asset="USDT", free=D("70600"), locked=D("29400")),
    Balance(asset="BTC", free=D("3"), locked=D("2")),
]


@pytest.fixture
async def restored(make_rig):
    rig = make_rig()
    rig.venue.restore(JOURNAL_ORDERS, JOURNAL_BALANCES)
    await rig.venue.connect()
    return rig


async def test_restore_sets_the_account_instead_of_the_starting_balances(restored):
    assert await restored.venue.balances() == {"BTC": D("5"), "USDT": D("100000")}
    account = restored.account()
    assert (account["USDT"].free, account["USDT"].locked) == (D("70600"), D("29400"))
    assert (account["BTC"].free, account["BTC"].locked) == (D("3"), D("2"))


async def test_restored_orders_rest_silently_as_they_were(restored):
    await restored.drain()
    assert [r.client_order_id for r in restored.reports if "barrier" not in r.client_order_id] == []
    state = await restored.venue.query("r-buy", "BTCUSDT")
    assert (state.status, state.executed_qty, state.venue_order_id) == (
        OrderStatus.PARTIALLY_FILLED,
        D("0.4"),
        "old-7",
    )


async def test_orders_the_venue_cannot_hold_are_not_restored(restored):
    assert await restored.venue.query("r-unacked", "BTCUSDT") is None
    assert await restored.venue.query("r-ioc", "BTCUSDT") is None


async def test_restored_orders_fill_their_remainder_and_can_be_cancelled(restored):
    restored.quote(bid="48890", ask="48900")
    await restored.venue.cancel("r-sell", "BTCUSDT")
    await restored.drain()

    [fill] = restored.fills("r-buy")
    assert (fill.qty, fill.price) == (D("0.6"), D("49000"))
    assert restored.kinds("r-sell") == ["OrderCancelled"]
    assert restored.account()["USDT"].locked == 0
    assert restored.account()["BTC"].locked == 0


async def test_restored_ids_are_known_to_duplicate_detection(restored):
    await restored.submit(BUY, "0.1", "40000", client_order_id="r-buy")
    await restored.drain()
    assert restored.only(OrderRejected, "r-buy").reason == "duplicate_client_order_id"


async def test_restore_that_cannot_cover_its_orders_raises_and_changes_nothing(make_rig):
    rig = make_rig()
    poor = [Balance(asset="USDT", free=D("1000")), Balance(asset="BTC", free=D("5"))]
    with pytest.raises(InsufficientBalance):
        rig.venue.restore(JOURNAL_ORDERS, poor)
    await rig.venue.connect()
    assert await rig.venue.balances() == {"BTC": D("10"), "USDT": D("100000")}
    assert await rig.venue.query("r-sell", "BTCUSDT") is None


async def test_restore_is_refused_once_connected(rig):
    with pytest.raises(RuntimeError, match="before connect"):
        rig.venue.restore(JOURNAL_ORDERS, JOURNAL_BALANCES)


def _request(client_order_id: str) -> VenueOrder:
    return VenueOrder(
        client_order_id=client_order_id,
        symbol="BTCUSDT",
        side=BUY,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.GTC,
        qty=D("0.1"),
        price=None,
    )
