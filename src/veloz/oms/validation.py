"""Checks an order must pass against its instrument before the engine takes it: the same
filters a venue applies (tick and step grids, size and notional bounds), so a malformed
order is refused here with a clear reason instead of at the venue."""

from decimal import Decimal

from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderType
from veloz.model.errors import CommandRejected
from veloz.model.instruments import Instrument


def validate_against(order: SubmitOrder, instrument: Instrument, reference: Decimal | None) -> None:
    """Raise CommandRejected(bad_params) for the first filter `order` fails. `reference`
    is the price a MARKET order is expected to trade at (the touch)."""
    # Bounds first: a grid check on an absurd number is not informative.
    if order.qty < instrument.min_qty or order.qty > instrument.max_qty:
        raise CommandRejected(
            f"qty {order.qty} is outside [{instrument.min_qty}, {instrument.max_qty}] "
            f"for {instrument.symbol}"
        )
    if not instrument.is_size_on_grid(order.qty):
        raise CommandRejected(
            f"qty {order.qty} is not a multiple of the {instrument.symbol} step "
            f"{instrument.size_increment}"
        )
    price = order.price if order.order_type is OrderType.LIMIT else reference
    if order.price is not None and not instrument.is_price_on_grid(order.price):
        raise CommandRejected(
            f"price {order.price} is not a multiple of the {instrument.symbol} tick "
            f"{instrument.price_increment}"
        )
    if price is not None and order.qty * price < instrument.min_notional:
        raise CommandRejected(
            f"notional {order.qty * price} is below the {instrument.symbol} minimum "
            f"{instrument.min_notional}"
        )
