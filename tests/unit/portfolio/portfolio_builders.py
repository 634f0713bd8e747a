"""Builders for portfolio tests: the BTCUSDT instrument, orders and fills as the OMS
would hand them to the portfolio."""

from decimal import Decimal
from itertools import count

from veloz.model.enums import LiquiditySide, OrderSide, OrderType, TimeInForce
from veloz.model.events import OrderFilled, OrderSubmitted
from veloz.model.instruments import Instrument
from veloz.model.orders import Order

D = Decimal

BTCUSDT = Instrument(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    price_increment=D("0.01"),
    size_increment=D("0.00001"),
    min_qty=D("0.00001"),
    max_qty=D(9000),
    min_notional=D(5),
)
ETHUSDT = Instrument(
    symbol="ETHUSDT",
    base_asset="ETH",
    quote_asset="USDT",
    price_increment=D("0.01"),
    size_increment=D("0.0001"),
    min_qty=D("0.0001"),
    max_qty=D(9000),
    min_notional=D(5),
)
INSTRUMENTS = {i.symbol: i for i in (BTCUSDT, ETHUSDT)}

_trade_ids = count(1)


def make_order(
    client_order_id: str,
    side: OrderSide,
    qty: str | Decimal,
    price: str | Decimal | None = None,
    *,
    reference_price: str | Decimal | None = None,
    symbol: str = "BTCUSDT",
) -> Order:
    """A LIMIT order when `price` is given, else a MARKET order locked at `reference_price`."""
    return Order.from_submitted(
        OrderSubmitted(
            ts_ns=1,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
            time_in_force=TimeInForce.GTC if price is not None else TimeInForce.IOC,
            qty=D(qty),
            price=None if price is None else D(price),
            reference_price=None if reference_price is None else D(reference_price),
        )
    )


def make_fill(
    order: Order,
    qty: str | Decimal,
    price: str | Decimal,
    fee: str | Decimal = "0",
    fee_asset: str = "USDT",
) -> OrderFilled:
    return OrderFilled(
        ts_ns=2,
        client_order_id=order.client_order_id,
        trade_id=f"t{next(_trade_ids)}",
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_asset=fee_asset,
        liquidity=LiquiditySide.TAKER,
        symbol=order.symbol,
        side=order.side,
    )


def fill_event(
    side: OrderSide,
    qty: str | Decimal,
    price: str | Decimal,
    fee: str | Decimal = "0",
    fee_asset: str = "USDT",
) -> OrderFilled:
    """A fill on its own, for driving a `Position` directly."""
    return make_fill(make_order("o", side, qty, price), qty, price, fee, fee_asset)
