"""Portfolio, hand-computed: order locks across fills and cancels, settlement at the actual
fill price, equity/peak/drawdown with marks, views and checkpoint round trips."""

from decimal import Decimal

import msgspec
import pytest

from tests.unit.portfolio.portfolio_builders import INSTRUMENTS, make_fill, make_order
from veloz.model.account import Balance, PositionView
from veloz.model.enums import OrderSide
from veloz.model.errors import VelozError
from veloz.portfolio.portfolio import OrderLock, Portfolio, PortfolioState

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def funded(**totals: str) -> Portfolio:
    portfolio = Portfolio(INSTRUMENTS)
    for asset, total in totals.items():
        portfolio.on_balance_set(asset, D(total))
    return portfolio


def balance(portfolio: Portfolio, asset: str) -> Balance:
    return next(b for b in portfolio.balances() if b.asset == asset)


def test_partial_fill_then_cancel_releases_the_lock() -> None:
    portfolio = funded(USDT="1000")
    order = make_order("b1", BUY, "2", "100")
    portfolio.on_submitted(order)
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D(800), locked=D(200))
    assert portfolio.locked_for("b1") == OrderLock(asset="USDT", remaining=D(200), price=D(100))

    fill = make_fill(order, "0.5", "99", "0.0495", "USDT")
    order.apply(fill)
    portfolio.on_fill(order, fill)
    # 50 released at the lock price; 49.5 + 0.0495 actually paid.
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D("800.4505"), locked=D(150))
    assert balance(portfolio, "BTC") == Balance(asset="BTC", free=D("0.5"))
    assert portfolio.locked_for("b1") == OrderLock(asset="USDT", remaining=D(150), price=D(100))

    portfolio.on_final(order)
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D("950.4505"), locked=D(0))
    assert portfolio.locked_for("b1") is None


def test_sell_locks_base_and_fills_release_it() -> None:
    portfolio = funded(BTC="1", USDT="0")
    order = make_order("s1", SELL, "0.6", "100")
    portfolio.on_submitted(order)
    assert balance(portfolio, "BTC") == Balance(asset="BTC", free=D("0.4"), locked=D("0.6"))

    for qty in ("0.2", "0.4"):
        fill = make_fill(order, qty, "101", "0.01", "USDT")
        order.apply(fill)
        portfolio.on_fill(order, fill)
    portfolio.on_final(order)
    assert balance(portfolio, "BTC") == Balance(asset="BTC", free=D("0.4"), locked=D(0))
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D("60.58"), locked=D(0))
    view = portfolio.position("BTCUSDT")
    assert view is not None
    assert (view.qty, view.realized_pnl, view.fees) == (D("-0.6"), D(0), D("0.02"))


def test_market_buy_locked_at_reference_filled_at_another_price() -> None:
    portfolio = funded(USDT="1000")
    order = make_order("m1", BUY, "1", reference_price="100")
    portfolio.on_submitted(order)
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D(900), locked=D(100))

    fill = make_fill(order, "1", "105", "0.105", "USDT")
    order.apply(fill)
    portfolio.on_fill(order, fill)
    portfolio.on_final(order)
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D("894.895"), locked=D(0))
    assert balance(portfolio, "BTC") == Balance(asset="BTC", free=D(1))


def test_overdraft_is_recorded_not_refused() -> None:
    portfolio = funded(USDT="50")
    portfolio.on_submitted(make_order("b1", BUY, "1", "100"))
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D(-50), locked=D(100))


def test_fee_in_a_third_asset_is_paid_from_that_asset() -> None:
    portfolio = funded(USDT="1000", BNB="1")
    order = make_order("b1", BUY, "1", "100")
    portfolio.on_submitted(order)
    fill = make_fill(order, "1", "100", "0.02", "BNB")
    order.apply(fill)
    portfolio.on_fill(order, fill)
    portfolio.on_final(order)
    assert balance(portfolio, "BNB").total == D("0.98")
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D(900))
    view = portfolio.position("BTCUSDT")
    assert view is not None
    assert (view.qty, view.fees) == (D(1), D(0))


def test_refuses_what_replay_could_not_reproduce() -> None:
    portfolio = funded(USDT="1000")
    with pytest.raises(VelozError) as priceless:
        portfolio.on_submitted(make_order("m1", BUY, "1"))
    assert priceless.value.code == "bad_params"
    with pytest.raises(VelozError) as unknown:
        portfolio.on_submitted(make_order("x1", BUY, "1", "1", symbol="SOLUSDT"))
    assert unknown.value.code == "unknown_symbol"

    portfolio.on_submitted(make_order("b1", BUY, "1", "100"))
    with pytest.raises(VelozError) as duplicate:
        portfolio.on_submitted(make_order("b1", BUY, "1", "100"))
    assert duplicate.value.code == "duplicate_client_order_id"
    assert balance(portfolio, "USDT") == Balance(asset="USDT", free=D(900), locked=D(100))


def test_market_sell_needs_no_price() -> None:
    portfolio = funded(BTC="1")
    portfolio.on_submitted(make_order("m1", SELL, "0.5"))
    assert portfolio.locked_for("m1") == OrderLock(asset="BTC", remaining=D("0.5"), price=None)


def test_equity_peak_and_drawdown_follow_marks() -> None:
    portfolio = funded(USDT="10000")
    assert portfolio.update_equity() == D(10000)
    order = make_order("b1", BUY, "0.1", "50000")
    portfolio.on_submitted(order)
    fill = make_fill(order, "0.1", "50000", "5", "USDT")
    order.apply(fill)
    portfolio.on_fill(order, fill)
    portfolio.on_final(order)

    # Without a BTC mark the coin cannot be valued and is reported, not guessed.
    assert portfolio.unvalued_assets() == ["BTC"]
    assert portfolio.equity() == D(4995)

    portfolio.mark("BTCUSDT", D(50000))
    assert portfolio.unvalued_assets() == []
    assert portfolio.update_equity() == D(9995)
    assert portfolio.peak_equity == D(10000)
    assert portfolio.drawdown() == D("0.0005")

    portfolio.mark("BTCUSDT", D(60000))
    assert portfolio.update_equity() == D(10995)
    assert (portfolio.peak_equity, portfolio.drawdown()) == (D(10995), D(0))

    portfolio.mark("BTCUSDT", D(55000))
    portfolio.update_equity()
    assert portfolio.peak_equity == D(10995)
    assert portfolio.drawdown() == D(500) / D(10995)


def test_drawdown_is_zero_without_a_peak() -> None:
    portfolio = Portfolio(INSTRUMENTS)
    assert (portfolio.equity(), portfolio.drawdown()) == (D(0), D(0))


def test_equity_in_another_valuation_asset() -> None:
    portfolio = Portfolio(INSTRUMENTS, valuation_asset="BTC")
    portfolio.on_balance_set("BTC", D(2))
    portfolio.on_balance_set("ETH", D(10))
    assert portfolio.unvalued_assets() == ["ETH"]
    portfolio.mark("ETHBTC", D("0.05"))
    assert portfolio.equity() == D("2.5")


def test_position_views_with_and_without_a_mark() -> None:
    portfolio = funded(USDT="1000")
    order = make_order("b1", BUY, "2", "100")
    portfolio.on_submitted(order)
    fill = make_fill(order, "2", "100", "0.2", "USDT")
    order.apply(fill)
    portfolio.on_fill(order, fill)

    assert portfolio.position("ETHUSDT") is None
    at_cost = PositionView(
        symbol="BTCUSDT",
        qty=D(2),
        avg_price=D("100.1"),
        mark_price=None,
        notional=D("200.2"),
        unrealized_pnl=D(0),
        realized_pnl=D(0),
        fees=D("0.2"),
    )
    assert portfolio.positions() == [at_cost]

    portfolio.mark("BTCUSDT", D(110))
    assert portfolio.position("BTCUSDT") == msgspec.structs.replace(
        at_cost, mark_price=D(110), notional=D(220), unrealized_pnl=D("19.8")
    )


def busy_portfolio() -> Portfolio:
    """Balances, a closed and an open position, an order still holding a lock, a peak."""
    portfolio = funded(USDT="10000", BNB="1")
    buy = make_order("b1", BUY, "1", "100", symbol="ETHUSDT")
    portfolio.on_submitted(buy)
    fill = make_fill(buy, "1", "100", "0.001", "ETH")
    buy.apply(fill)
    portfolio.on_fill(buy, fill)
    portfolio.mark("ETHUSDT", D(120))
    portfolio.update_equity()
    sell = make_order("s1", SELL, "0.5", "130", symbol="ETHUSDT")
    portfolio.on_submitted(sell)
    open_buy = make_order("b2", BUY, "0.01", reference_price="50000")
    portfolio.on_submitted(open_buy)
    partial = make_fill(open_buy, "0.004", "50100", "0.01", "BNB")
    open_buy.apply(partial)
    portfolio.on_fill(open_buy, partial)
    return portfolio


def test_snapshot_restore_round_trip_through_msgpack() -> None:
    original = busy_portfolio()
    state = original.snapshot()
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=PortfolioState)
    assert decoded == state

    restored = Portfolio(INSTRUMENTS)
    restored.restore(decoded)
    assert restored.snapshot() == state
    assert restored.balances() == original.balances()
    assert restored.peak_equity == original.peak_equity
    assert restored.locked_for("b2") == original.locked_for("b2")


def test_restored_portfolio_continues_like_the_original() -> None:
    original = busy_portfolio()
    restored = Portfolio(INSTRUMENTS)
    restored.restore(original.snapshot())

    order = make_order("s2", SELL, "0.004", "51000")
    for portfolio in (original, restored):
        portfolio.on_submitted(order)
        fill = make_fill(order, "0.004", "51000", "0.1", "USDT")
        fill = msgspec.structs.replace(fill, trade_id="same")
        portfolio.on_fill(order, fill)
        portfolio.on_final(order)
    assert restored.snapshot() == original.snapshot()


def test_snapshot_does_not_alias_live_state() -> None:
    portfolio = busy_portfolio()
    state = portfolio.snapshot()
    frozen = msgspec.msgpack.encode(state)
    order = make_order("b3", BUY, "1", "100", symbol="ETHUSDT")
    portfolio.on_submitted(order)
    fill = make_fill(order, "1", "100")
    portfolio.on_fill(order, fill)
    assert msgspec.msgpack.encode(state) == frozen

    portfolio.restore(state)
    portfolio.on_balance_set("USDT", D(1))
    assert msgspec.msgpack.encode(state) == frozen
