"""Properties of the portfolio over arbitrary event sequences.

Conservation: starting from USDT only, the cash the trades moved plus the coins they left,
valued at the mark, equals realised plus unrealised PnL, net of fees. Average cost divides
(a partial close takes `cost * closed / qty`, a flip splits the flow by quantity), and
Decimal division rounds to the context's 28 significant digits. The rounded share is
booked into both realised PnL and the remaining cost, so it cancels in the sum; what is
left is the rounding of sums at 28 digits. Hence the comparison allows an error of 1e-12
relative to the size of the flows rather than demanding equality.

Locks: however orders are submitted, partially filled at any price, cancelled or filled,
no lock goes negative, the book's locked funds are exactly what the open orders hold, and
nothing stays locked once every order is final.
"""

from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.portfolio.portfolio_builders import INSTRUMENTS, make_fill, make_order
from veloz.model.enums import OrderSide
from veloz.model.events import OrderCancelled
from veloz.model.orders import Order
from veloz.portfolio.portfolio import Portfolio

D = Decimal
START_USDT = D(10) ** 9

sides = st.sampled_from([OrderSide.BUY, OrderSide.SELL])
quantities = st.integers(1, 10**6).map(lambda n: D(n).scaleb(-5))  # 0.00001 .. 10
prices = st.integers(1, 10**7).map(lambda n: D(n).scaleb(-2))  # 0.01 .. 100,000
fee_rates = st.integers(0, 1000).map(lambda n: D(n).scaleb(-5))  # 0 .. 1%
fills = st.lists(
    st.tuples(sides, quantities, prices, fee_rates, st.sampled_from(["USDT", "BTC"])),
    min_size=1,
    max_size=30,
)


def fee_for(qty: Decimal, price: Decimal, rate: Decimal, asset: str) -> Decimal:
    return (qty * rate if asset == "BTC" else qty * price * rate).quantize(D("1e-8"))


def assert_conserved(portfolio: Portfolio, mark: Decimal) -> None:
    view = portfolio.position("BTCUSDT")
    assert view is not None
    balances = {b.asset: b.total for b in portfolio.balances()}
    cash = balances["USDT"] - START_USDT
    coins = balances.get("BTC", D(0))
    assert coins == view.qty  # the base balance is exactly what trading left us
    lhs = cash + coins * mark
    rhs = view.realized_pnl + view.unrealized_pnl
    scale = abs(cash) + abs(coins * mark) + abs(view.realized_pnl) + 1
    assert abs(lhs - rhs) <= scale * D("1e-12"), (lhs, rhs)


@settings(max_examples=300, deadline=None)
@given(fills=fills, mark=prices)
def test_cash_plus_coins_equals_realised_plus_unrealised(
    fills: list[tuple[OrderSide, Decimal, Decimal, Decimal, str]], mark: Decimal
) -> None:
    portfolio = Portfolio(INSTRUMENTS)
    portfolio.on_balance_set("USDT", START_USDT)
    portfolio.mark("BTCUSDT", mark)
    for n, (side, qty, price, rate, fee_asset) in enumerate(fills):
        order = make_order(f"o{n}", side, qty, price)
        portfolio.on_submitted(order)
        fill = make_fill(order, qty, price, fee_for(qty, price, rate, fee_asset), fee_asset)
        order.apply(fill)
        portfolio.on_fill(order, fill)
        portfolio.on_final(order)
        assert_conserved(portfolio, mark)


def assert_locks_consistent(portfolio: Portfolio, orders: list[Order]) -> None:
    held: dict[str, Decimal] = defaultdict(D)
    for order in orders:
        lock = portfolio.locked_for(order.client_order_id)
        if lock is not None:
            assert lock.remaining >= 0
            held[lock.asset] += lock.remaining
    for balance in portfolio.balances():
        assert balance.locked >= 0
        assert balance.locked == held[balance.asset]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_locks_never_negative_and_drain_when_orders_are_final(data: st.DataObject) -> None:
    portfolio = Portfolio(INSTRUMENTS)
    portfolio.on_balance_set("USDT", D(10**6))
    portfolio.on_balance_set("BTC", D(10))
    orders: list[Order] = []
    for n in range(data.draw(st.integers(1, 25))):
        live = [o for o in orders if not o.is_final]
        action = data.draw(st.sampled_from(["submit", "fill", "cancel"] if live else ["submit"]))
        if action == "submit":
            order = submit(portfolio, data, f"o{n}")
            orders.append(order)
        elif action == "fill":
            fill_some(portfolio, data, data.draw(st.sampled_from(live)))
        else:
            order = data.draw(st.sampled_from(live))
            order.apply(OrderCancelled(ts_ns=3, client_order_id=order.client_order_id))
            portfolio.on_final(order)
        assert_locks_consistent(portfolio, orders)

    for order in orders:
        if not order.is_final:
            order.apply(OrderCancelled(ts_ns=3, client_order_id=order.client_order_id))
            portfolio.on_final(order)
    assert all(b.locked == 0 for b in portfolio.balances())
    assert all(portfolio.locked_for(o.client_order_id) is None for o in orders)


def submit(portfolio: Portfolio, data: st.DataObject, client_order_id: str) -> Order:
    side = data.draw(sides)
    qty = data.draw(quantities)
    if data.draw(st.booleans()):
        order = make_order(client_order_id, side, qty, data.draw(prices))
    else:
        order = make_order(client_order_id, side, qty, reference_price=data.draw(prices))
    portfolio.on_submitted(order)
    return order


def fill_some(portfolio: Portfolio, data: st.DataObject, order: Order) -> None:
    leaves = order.leaves_qty
    qty = data.draw(st.integers(1, int(leaves.scaleb(5))).map(lambda n: D(n).scaleb(-5)))
    fill = make_fill(order, qty, data.draw(prices), data.draw(fee_rates) * qty, "BTC")
    order.apply(fill)
    portfolio.on_fill(order, fill)
    if order.is_final:
        portfolio.on_final(order)
