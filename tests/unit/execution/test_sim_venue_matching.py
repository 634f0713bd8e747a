"""SimVenue matching: prices, slippage, fees, displayed size, priority, time in force."""

from decimal import Decimal

import pytest

from veloz.execution.venue import VenueOrder
from veloz.execution.venues.sim_matching import RestingBook, SimOrder
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import (
    OrderAccepted,
    OrderCancelRejected,
    OrderExpired,
    OrderRejected,
)
from veloz.model.market import QuoteTick

BUY, SELL = OrderSide.BUY, OrderSide.SELL
D = Decimal


# -- slippage ---------------------------------------------------------------------------


@pytest.fixture
async def slipping(make_rig):
    rig = make_rig(slippage_bps=D("20"))
    await rig.venue.connect()
    rig.quote(bid="50000", ask="50010")
    return rig


async def test_market_buy_pays_the_ask_plus_slippage(slipping):
    order = await slipping.submit(BUY, "0.1")
    await slipping.drain()
    [fill] = slipping.fills(order)
    assert (fill.price, fill.liquidity) == (D("50110.02"), LiquiditySide.TAKER)


async def test_market_sell_gets_the_bid_minus_slippage(slipping):
    order = await slipping.submit(SELL, "0.1")
    await slipping.drain()
    assert slipping.fills(order)[0].price == D("49900")


async def test_marketable_limit_never_fills_worse_than_its_limit(slipping):
    buy = await slipping.submit(BUY, "0.1", "50050")
    sell = await slipping.submit(SELL, "0.1", "49950")
    await slipping.drain()
    assert slipping.fills(buy)[0].price == D("50050")
    assert slipping.fills(sell)[0].price == D("49950")


# -- fees --------------------------------------------------------------------------------


async def test_received_mode_charges_a_buy_in_base_and_a_sell_in_quote(rig):
    rig.quote(bid="50000", ask="50010")
    buy = await rig.submit(BUY, "0.5")
    sell = await rig.submit(SELL, "0.5")
    await rig.drain()
    [bought], [sold] = rig.fills(buy), rig.fills(sell)
    assert (bought.fee, bought.fee_asset) == (D("0.0005"), "BTC")
    assert (sold.fee, sold.fee_asset) == (D("25"), "USDT")


async def test_quote_mode_charges_a_buy_in_quote(make_rig):
    rig = make_rig(fee_asset="quote")
    await rig.venue.connect()
    rig.quote(bid="50000", ask="50010")
    buy = await rig.submit(BUY, "0.5")
    await rig.drain()
    [fill] = rig.fills(buy)
    assert (fill.fee, fill.fee_asset) == (D("25.005"), "USDT")


@pytest.mark.parametrize(
    ("mode", "fee", "asset"), [("received", D("0.0001"), "BTC"), ("quote", D("4.999"), "USDT")]
)
async def test_resting_fill_pays_the_maker_rate(make_rig, mode, fee, asset):
    rig = make_rig(maker_fee_bps=D("2"), taker_fee_bps=D("10"), fee_asset=mode)
    await rig.venue.connect()
    rig.quote(bid="49995", ask="50000")
    order = await rig.submit(BUY, "0.5", "49990")
    await rig.drain()
    rig.quote(bid="49970", ask="49980")
    await rig.drain()
    [fill] = rig.fills(order)
    assert (fill.liquidity, fill.price, fill.fee, fill.fee_asset) == (
        LiquiditySide.MAKER,
        D("49990"),
        fee,
        asset,
    )


async def test_fees_are_quantized_to_8_places_rounding_half_up(make_rig):
    # 0.00005 BTC * 5 bps = 0.000000025: half up gives 3e-8 (half even would give 2e-8).
    rig = make_rig(taker_fee_bps=D("5"))
    await rig.venue.connect()
    rig.quote(bid="50000", ask="50010")
    order = await rig.submit(BUY, "0.00005")
    await rig.drain()
    assert rig.fills(order)[0].fee == D("0.00000003")


# -- displayed size and priority -------------------------------------------------------


async def test_order_larger_than_the_ask_size_fills_partly_and_rests(rig):
    rig.quote(bid="49990", ask="50000", ask_size="0.2")
    order = await rig.submit(BUY, "0.5", "50000")
    await rig.drain()
    assert [f.qty for f in rig.fills(order)] == [D("0.2")]
    state = await rig.venue.query(order, "BTCUSDT")
    assert (state.status, state.executed_qty) == (OrderStatus.PARTIALLY_FILLED, D("0.2"))


async def test_resting_buys_share_the_displayed_size_best_price_then_oldest_first(rig):
    rig.quote(bid="49900", ask="50000")
    low = await rig.submit(BUY, "0.5", "49000")
    high_first = await rig.submit(BUY, "0.5", "49500")
    high_second = await rig.submit(BUY, "0.5", "49500")
    await rig.drain()

    rig.quote(bid="48900", ask="49000", ask_size="0.75")
    await rig.drain()
    assert [f.qty for f in rig.fills(high_first)] == [D("0.5")]
    assert [f.qty for f in rig.fills(high_second)] == [D("0.25")]
    assert rig.fills(low) == []

    rig.quote(bid="48900", ask="49000", ask_size="10")
    await rig.drain()
    assert [(f.qty, f.price) for f in rig.fills(high_second)] == [
        (D("0.25"), D("49500")),
        (D("0.25"), D("49500")),
    ]
    assert [(f.qty, f.price) for f in rig.fills(low)] == [(D("0.5"), D("49000"))]


async def test_resting_sells_fill_lowest_price_first_when_the_bid_reaches_them(rig):
    rig.quote(bid="50000", ask="50010")
    far = await rig.submit(SELL, "0.5", "50500")
    near = await rig.submit(SELL, "0.5", "50200")
    untouched = await rig.submit(SELL, "0.5", "50700")
    await rig.drain()

    rig.quote(bid="50600", ask="50610", bid_size="0.6")
    await rig.drain()
    assert [(f.qty, f.price, f.liquidity) for f in rig.fills(near)] == [
        (D("0.5"), D("50200"), LiquiditySide.MAKER)
    ]
    assert [f.qty for f in rig.fills(far)] == [D("0.1")]
    assert rig.fills(untouched) == []


async def test_orders_taking_from_the_same_quote_share_its_displayed_size(rig):
    rig.quote(bid="49990", ask="50000", ask_size="0.75")
    first = await rig.submit(BUY, "0.5")
    second = await rig.submit(BUY, "0.5")
    await rig.drain()
    assert [f.qty for f in rig.fills(first)] == [D("0.5")]
    assert [f.qty for f in rig.fills(second)] == [D("0.25")]
    assert rig.only(OrderExpired, second).reason == "insufficient_liquidity"

    rig.quote(bid="49990", ask="50000", ask_size="0.75")
    third = await rig.submit(BUY, "0.5")
    await rig.drain()
    assert [f.qty for f in rig.fills(third)] == [D("0.5")]


async def test_quote_that_does_not_reach_a_resting_order_fills_nothing(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.5", "49000")
    await rig.drain()
    rig.quote(bid="49000", ask="49000.01")
    await rig.drain()
    assert rig.fills(order) == []


def _resting(seq: int, side: OrderSide, price: str) -> SimOrder:
    request = VenueOrder(
        client_order_id=f"b-{seq}",
        symbol="BTCUSDT",
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=D(1),
        price=D(price),
    )
    return SimOrder.from_request(request, venue_order_id=f"v-{seq}", seq=seq)


def test_resting_book_removes_exactly_the_given_order_among_equal_prices():
    book = RestingBook()
    orders = [_resting(seq, BUY, "100") for seq in range(1, 6)]
    for order in reversed(orders):
        book.add(order)
    book.remove(orders[2])
    book.remove(orders[2])
    quote = QuoteTick(
        symbol="BTCUSDT", bid=D(99), ask=D(100), bid_size=D(1), ask_size=D(1), ts_ns=0
    )
    [(side, crossed), _] = book.crossed_by(quote)
    assert side is BUY
    assert [o.seq for o in crossed] == [1, 2, 4, 5]
    assert len(book) == 4


# -- time in force and order types -----------------------------------------------------


async def test_market_remainder_beyond_the_displayed_size_expires(rig):
    rig.quote(bid="49990", ask="50000", ask_size="0.2")
    order = await rig.submit(BUY, "0.5")
    await rig.drain()
    assert rig.kinds(order) == ["OrderAccepted", "OrderFilled", "OrderExpired"]
    assert rig.only(OrderExpired, order).reason == "insufficient_liquidity"


async def test_market_order_against_an_empty_side_is_accepted_then_expires(rig):
    rig.quote(bid="49990", ask="50000", ask_size="0")
    order = await rig.submit(BUY, "0.5")
    await rig.drain()
    assert rig.kinds(order) == ["OrderAccepted", "OrderExpired"]


@pytest.mark.parametrize(
    ("tif", "reason"), [(TimeInForce.IOC, "ioc_remainder"), (TimeInForce.FOK, "fok_not_fillable")]
)
async def test_ioc_or_fok_away_from_the_market_expires_without_a_fill(rig, tif, reason):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.5", "49000", tif=tif)
    await rig.drain()
    assert rig.kinds(order) == ["OrderAccepted", "OrderExpired"]
    assert rig.only(OrderExpired, order).reason == reason


async def test_fok_fills_in_one_trade_when_the_displayed_size_covers_it(rig):
    rig.quote(bid="49990", ask="50000", ask_size="0.5")
    order = await rig.submit(BUY, "0.5", "50000", tif=TimeInForce.FOK)
    await rig.drain()
    assert [f.qty for f in rig.fills(order)] == [D("0.5")]


# -- rejections ---------------------------------------------------------------------------


async def test_order_for_an_unknown_symbol_is_rejected(rig):
    order = await rig.submit(BUY, "1", "10", symbol="DOGEUSDT")
    await rig.drain()
    assert rig.only(OrderRejected, order).reason == "unknown_symbol"
    state = await rig.venue.query(order, "DOGEUSDT")
    assert (state.status, state.reason) == (OrderStatus.REJECTED, "unknown_symbol")


async def test_market_order_without_a_quote_is_rejected(rig):
    order = await rig.submit(BUY, "0.1")
    await rig.drain()
    assert rig.kinds(order) == ["OrderRejected"]
    assert rig.only(OrderRejected, order).reason == "no_market_data"


@pytest.mark.parametrize(("qty", "price"), [("0", "50000"), ("-1", "50000"), ("1", "-5")])
async def test_malformed_order_is_rejected(rig, qty, price):
    order = await rig.submit(BUY, qty, price)
    await rig.drain()
    assert rig.only(OrderRejected, order).reason == "invalid_order"


async def test_reused_client_order_id_is_rejected_and_the_original_is_kept(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.5", "49000")
    await rig.submit(SELL, "0.1", "51000", client_order_id=order)
    await rig.submit(BUY, "1", "10", client_order_id=order, symbol="DOGEUSDT")
    await rig.drain()
    rejections = [r.reason for r in rig.of(order) if isinstance(r, OrderRejected)]
    assert rejections == ["duplicate_client_order_id", "unknown_symbol"]
    state = await rig.venue.query(order, "BTCUSDT")
    assert (state.status, state.executed_qty) == (OrderStatus.ACCEPTED, 0)


# -- cancel and query -------------------------------------------------------------------


async def test_cancel_of_a_final_order_is_rejected_as_final(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.1")
    await rig.drain()
    await rig.venue.cancel(order, "BTCUSDT")
    await rig.drain()
    assert rig.only(OrderCancelRejected, order).reason == "order_final"


async def test_cancel_naming_another_symbol_is_rejected_as_unknown(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.1", "49000")
    await rig.venue.cancel(order, "ETHUSDT")
    await rig.drain()
    assert rig.only(OrderCancelRejected, order).reason == "unknown_order"
    assert await rig.venue.query(order, "ETHUSDT") is None


async def test_cancelled_order_no_longer_fills(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.1", "49000")
    await rig.venue.cancel(order, "BTCUSDT")
    await rig.drain()
    rig.quote(bid="48000", ask="48001")
    await rig.drain()
    assert rig.kinds(order) == ["OrderAccepted", "OrderCancelled"]


async def test_query_returns_the_fills_of_the_order(rig):
    rig.quote(bid="49990", ask="50000", ask_size="0.2")
    order = await rig.submit(BUY, "0.5", "50000")
    await rig.drain()
    rig.quote(bid="49980", ask="49990")
    await rig.drain()
    state = await rig.venue.query(order, "BTCUSDT")
    assert state.status is OrderStatus.FILLED
    assert state.venue_order_id == rig.only(OrderAccepted, order).venue_order_id
    assert state.fills == rig.fills(order)


async def test_reports_carry_the_clock_time(make_rig):
    rig = make_rig()
    await rig.venue.connect()
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.5", "49000")
    await rig.drain()
    rig.clock.advance_to(5_000)
    rig.quote(bid="48990", ask="49000")
    await rig.drain()
    assert [r.ts_ns for r in rig.of(order)] == [1_000, 5_000]
