"""What an order must satisfy of its instrument before the engine takes it: the filters a
venue applies, named as Binance names them (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE,
NOTIONAL), so the venue never sees an order it would refuse for its shape.

An order a little off the grid is rounded onto it rather than refused: the size down to
the step (never more than was asked), a limit price to the tick on the passive side (a
buy never pays more, a sell never takes less than its limit). What rounding cannot make
valid is refused with the filter named. The engine journals the rounded order, and its
answer carries the quantity and price that will trade.
"""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

import msgspec

from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderType
from veloz.model.errors import CommandRejected, ErrorCode
from veloz.model.instruments import Instrument

# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
LIMIT = OrderType.LIMIT
BUY = OrderSide.BUY
# Decimals are compared with a Decimal zero: against the int 0 each comparison converts it.
ZERO = Decimal(0)


def conform(order: SubmitOrder, instrument: Instrument, reference: Decimal | None) -> SubmitOrder:
    """`order` on its instrument's grid, or CommandRejected naming the filter it fails
    (bad_params; trading_disabled when the venue does not trade the symbol now).
    `reference` is the price a MARKET order is expected to trade at (the touch)."""
    if not instrument.trading:
        raise CommandRejected(
            f"{instrument.symbol} is {instrument.status} at the venue, not TRADING",
            code=ErrorCode.TRADING_DISABLED,
        )
    qty, limit_price = order.qty, order.price
    is_limit = order.order_type is LIMIT
    try:
        qty = _on_grid(qty, instrument.size_increment, ROUND_FLOOR)
        if limit_price is not None:
            rounding = ROUND_FLOOR if order.side is BUY else ROUND_CEILING
            limit_price = _on_grid(limit_price, instrument.price_increment, rounding)
    except InvalidOperation:  # more grid steps than Decimal's precision: not a real order
        raise CommandRejected(
            f"qty {order.qty} or price {order.price} is too large for {instrument.symbol}"
        ) from None
    _check_size(qty, instrument, order, is_limit)
    if limit_price is not None:
        _check_price(limit_price, instrument)
    price = limit_price if is_limit else reference
    if price is not None:
        _check_notional(qty * price, instrument, is_limit)
    if qty is order.qty and limit_price is order.price:
        return order
    return msgspec.structs.replace(order, qty=qty, price=limit_price)


def _on_grid(value: Decimal, increment: Decimal, rounding: str) -> Decimal:
    """`value` itself when on the grid (the common case costs one remainder), else the
    nearest grid point in the direction of `rounding`."""
    if value % increment == ZERO:
        return value
    return (value / increment).to_integral_value(rounding) * increment


def _check_size(qty: Decimal, instrument: Instrument, order: SubmitOrder, is_limit: bool) -> None:
    symbol = instrument.symbol
    low, high, name = instrument.min_qty, instrument.max_qty, "LOT_SIZE"
    if not is_limit:
        if instrument.market_min_qty is not None:
            low, name = max(low, instrument.market_min_qty), "MARKET_LOT_SIZE"
        if instrument.market_max_qty is not None and instrument.market_max_qty > 0:
            high, name = min(high, instrument.market_max_qty), "MARKET_LOT_SIZE"
    if qty < low or qty <= ZERO:
        step = instrument.size_increment
        rounded = f" (rounded down to the step {step})" if qty != order.qty else ""
        raise CommandRejected(f"{name}: qty {qty}{rounded} is below the minimum {low} for {symbol}")
    if qty > high:
        raise CommandRejected(f"{name}: qty {qty} is above the maximum {high} for {symbol}")


def _check_price(price: Decimal, instrument: Instrument) -> None:
    symbol = instrument.symbol
    if price <= 0:
        raise CommandRejected(
            f"PRICE_FILTER: price rounds to {price} on the tick {instrument.price_increment} "
            f"for {symbol}"
        )
    if instrument.min_price is not None and price < instrument.min_price:
        raise CommandRejected(
            f"PRICE_FILTER: price {price} is below the minimum {instrument.min_price} for {symbol}"
        )
    if instrument.max_price is not None and price > instrument.max_price:
        raise CommandRejected(
            f"PRICE_FILTER: price {price} is above the maximum {instrument.max_price} for {symbol}"
        )


def _check_notional(notional: Decimal, instrument: Instrument, is_limit: bool) -> None:
    symbol = instrument.symbol
    if (is_limit or instrument.min_notional_applies_to_market) and (
        notional < instrument.min_notional
    ):
        raise CommandRejected(
            f"NOTIONAL: notional {notional} is below the minimum {instrument.min_notional} "
            f"for {symbol}"
        )
    high = instrument.max_notional
    if (
        high is not None
        and (is_limit or instrument.max_notional_applies_to_market)
        and notional > high
    ):
        raise CommandRejected(
            f"NOTIONAL: notional {notional} is above the maximum {high} for {symbol}"
        )
