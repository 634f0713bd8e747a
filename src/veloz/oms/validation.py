"""Checks an order must pass against its instrument before the engine takes it: the same
filters a venue applies (tick and step grids, size and notional bounds), so a malformed
order is refused here with a clear reason instead of at the venue."""

from decimal import Decimal

from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderType
from veloz.model.errors import CommandRejected
from veloz.model.instruments import Instrument

# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
LIMIT = OrderType.LIMIT


def validate_against(order: SubmitOrder, instrument: Instrument, reference: Decimal | None) -> None:
    """Raise CommandRejected(bad_params) for the first filter `order` fails. `reference`
    is the price a MARKET order is expected to trade at (the touch)."""
    qty, limit_price = order.qty, order.price
    # Bounds first: a grid check on an absurd number is not informative.
    if qty < instrument.min_qty or qty > instrument.max_qty:
        raise CommandRejected(
            f"qty {qty} is outside [{instrument.min_qty}, {instrument.max_qty}] "
            f"for {instrument.symbol}"
        )
    if not instrument.is_size_on_grid(qty):
        raise CommandRejected(
            f"qty {qty} is not a multiple of the {instrument.symbol} step "
            f"{instrument.size_increment}"
        )
    price = limit_price if order.order_type is LIMIT else reference
    if limit_price is not None and not instrument.is_price_on_grid(limit_price):
        raise CommandRejected(
            f"price {limit_price} is not a multiple of the {instrument.symbol} tick "
            f"{instrument.price_increment}"
        )
    if price is not None and qty * price < instrument.min_notional:
        raise CommandRejected(
            f"notional {qty * price} is below the {instrument.symbol} minimum "
            f"{instrument.min_notional}"
        )
