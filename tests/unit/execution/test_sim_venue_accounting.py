"""SimVenue's own account: funds locked for open orders, released by fills and final
reports, and the assets each fill moves."""

from decimal import Decimal
from typing import Any

from veloz.model.enums import OrderSide, TimeInForce
from veloz.model.events import OrderAccepted, OrderRejected

BUY, SELL = OrderSide.BUY, OrderSide.SELL
D = Decimal


def free_locked(rig: Any, asset: str) -> tuple[Decimal, Decimal]:
    balance = rig.account()[asset]
    return balance.free, balance.locked


async def test_resting_buy_locks_its_notional_until_cancelled(rig):
    rig.quote(bid="49990", ask="50000")
    order = await rig.submit(BUY, "0.5", "49000")
    await rig.drain()
    assert free_locked(rig, "USDT") == (D("75500"), D("24500"))
    assert await rig.venue.balances() == {"BTC": D("10"), "USDT": D("100000")}

    await rig.venue.cancel(order, "BTCUSDT")
    await rig.drain()
    assert free_locked(rig, "USDT") == (D("100000"), D(0))


async def test_resting_sell_locks_its_base_quantity(rig):
    rig.quote(bid="49990", ask="50000")
    await rig.submit(SELL, "2", "51000")
    await rig.drain()
    assert free_locked(rig, "BTC") == (D("8"), D("2"))


async def test_locked_funds_cannot_back_a_second_order_until_released(rig):
    rig.quote(bid="49990", ask="50000")
    first = await rig.submit(BUY, "1.5", "49000")
    refused = await rig.submit(BUY, "1", "49000")
    await rig.venue.cancel(first, "BTCUSDT")
    retried = await rig.submit(BUY, "1", "49000")
    await rig.drain()
    assert rig.only(OrderRejected, refused).reason == "insufficient_balance"
    assert rig.kinds(retried) == ["OrderAccepted"]
    assert free_locked(rig, "USDT") == (D("51000"), D("49000"))


async def test_fills_release_their_share_of_the_lock_and_move_both_assets(rig):
    rig.quote(bid="49990", ask="50000", ask_size="0.2")
    order = await rig.submit(BUY, "0.5", "50100")
    await rig.drain()
    # 0.2 taken at 50000 releases 0.2 x 50100 of the 0.5 x 50100 held.
    assert free_locked(rig, "USDT") == (D("74970"), D("15030"))
    assert await rig.venue.balances() == {"BTC": D("10.1998"), "USDT": D("90000")}

    rig.quote(bid="50040", ask="50050")
    await rig.drain()
    assert len(rig.fills(order)) == 2
    assert free_locked(rig, "USDT") == (D("74970"), D(0))
    assert await rig.venue.balances() == {"BTC": D("10.4995"), "USDT": D("74970")}


async def test_ioc_expiry_releases_the_unfilled_remainder(rig):
    rig.quote(bid="49990", ask="50000", ask_size="0.2")
    await rig.submit(BUY, "0.5", "50000", tif=TimeInForce.IOC)
    await rig.drain()
    assert free_locked(rig, "USDT") == (D("90000"), D(0))


async def test_sell_pays_base_and_receives_quote_net_of_the_fee(rig):
    rig.quote(bid="49990", ask="50000")
    await rig.submit(SELL, "1")
    await rig.drain()
    assert await rig.venue.balances() == {"BTC": D("9"), "USDT": D("149940.01")}
    assert free_locked(rig, "BTC") == (D("9"), D(0))


async def test_quote_mode_buy_must_afford_the_fee_on_top_of_the_notional(make_rig):
    short = make_rig(fee_asset="quote", starting_balances={"USDT": "50000"})
    enough = make_rig(fee_asset="quote", starting_balances={"USDT": "50050"})
    for rig in (short, enough):
        await rig.venue.connect()
        rig.quote(bid="49990", ask="50000")
        await rig.submit(BUY, "1")
        await rig.drain()

    [rejection] = short.reports[:1]
    assert isinstance(rejection, OrderRejected)
    assert rejection.reason == "insufficient_balance"
    assert type(enough.reports[0]) is OrderAccepted
    assert await enough.venue.balances() == {"BTC": D("1"), "USDT": D("0")}
    assert free_locked(enough, "USDT") == (D(0), D(0))


async def test_market_buy_is_funded_at_the_ask_moved_by_slippage(make_rig):
    short = make_rig(slippage_bps=D("10"), starting_balances={"USDT": "50049.99"})
    enough = make_rig(slippage_bps=D("10"), starting_balances={"USDT": "50050"})
    for rig in (short, enough):
        await rig.venue.connect()
        rig.quote(bid="49990", ask="50000")
        await rig.submit(BUY, "1")
        await rig.drain()

    assert short.reports[0].reason == "insufficient_balance"
    assert await enough.venue.balances() == {"BTC": D("0.999"), "USDT": D("0")}
