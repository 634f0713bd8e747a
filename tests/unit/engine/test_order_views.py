from decimal import Decimal

from veloz.engine.views.orders import OrderAnswer, OrderView
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.orders import Order


def _order() -> Order:
    return Order(
        client_order_id="c-1",
        symbol="BTCUSDT",
        side=OrderSide.SELL,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        order_qty=Decimal("0.250"),
        limit_price=Decimal("40000.1"),
        status=OrderStatus.PARTIALLY_FILLED,
        venue_order_id="SIM-7",
        executed_qty=Decimal("0.1"),
        avg_price=Decimal("40000.2"),
        fee=Decimal("0.004"),
        fee_asset="USDT",
        reason="why",
        strategy_id="s-1",
        created_ts_ns=11,
        last_ts_ns=22,
    )


def test_an_answer_from_a_view_is_the_answer_from_its_order():
    order = _order()
    from_view = OrderAnswer.of(OrderView.of(order))
    assert from_view == OrderAnswer.of(order)
    assert type(from_view) is OrderAnswer and from_view.ok
    assert from_view.executed_qty == Decimal("0.1") and from_view.fee_asset == "USDT"
