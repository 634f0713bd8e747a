"""Commands: requests to the engine, in the imperative. They are parsed and checked here
(shape, types, ranges); whether the engine can act on them is the engine's business.

The Structs are also the documented request bodies (the API's OpenAPI schema is generated
from them), so each field carries its wire name and constraints; the parsers below accept
the looser forms the runbooks use as well (numbers as strings, lower case, `order_type`
for `type`, form fields)."""

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import msgspec

from veloz.model.enums import OrderSide, OrderType, TimeInForce
from veloz.model.errors import CommandRejected
from veloz.model.identifiers import CLIENT_ORDER_ID_PATTERN, is_valid_client_order_id

_E = TypeVar("_E", OrderSide, OrderType, TimeInForce)

MAX_DECIMAL_DIGITS = 30
# Orders of magnitude a price or quantity may span: wide enough for any listed market,
# narrow enough that grid arithmetic stays exact within Decimal's 28-digit context.
MIN_EXPONENT, MAX_EXPONENT = -12, 12
_DIGITS_BOUND = 10**MAX_DECIMAL_DIGITS
MAX_STRATEGY_ID_LENGTH = 64

# The fields as the request bodies document them (the parsers enforce the same rules).
ClientOrderIdText = Annotated[
    str,
    msgspec.Meta(
        pattern=CLIENT_ORDER_ID_PATTERN.pattern,
        description="1-36 of A-Z a-z 0-9 . _ : / - (Binance's rule)",
    ),
]
SymbolText = Annotated[str, msgspec.Meta(description="e.g. BTCUSDT (any case)")]
Quantity = Annotated[Decimal, msgspec.Meta(description="quantity in base units, above zero")]
LimitPrice = Annotated[Decimal, msgspec.Meta(description="limit price; omit for MARKET")]
StrategyIdText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRATEGY_ID_LENGTH)]
TimeInForceChoice = Annotated[
    TimeInForce, msgspec.Meta(description="GTC (LIMIT default), IOC (MARKET default) or FOK")
]


class SubmitOrder(
    msgspec.Struct, gc=False, frozen=True, kw_only=True, rename={"order_type": "type"}
):
    symbol: SymbolText
    side: OrderSide
    qty: Quantity
    price: LimitPrice | None = None
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForceChoice = TimeInForce.GTC
    client_order_id: ClientOrderIdText | None = None  # generated if absent
    strategy_id: StrategyIdText | None = None


class CancelOrder(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    client_order_id: ClientOrderIdText
    symbol: SymbolText | None = None  # checked against the order's


class CancelAllOrders(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    symbol: SymbolText | None = None  # only this symbol's orders


class AddStrategy(msgspec.Struct, frozen=True, kw_only=True):
    """Run a strategy: `strategy` is a built-in name (`ema_cross`, `grid`) or
    `module:Class`; `params` are checked against its parameter schema."""

    strategy_id: str
    strategy: str
    symbol: SymbolText
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    start: bool = True


_STRATEGY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def parse_add_strategy(fields: Mapping[str, object]) -> AddStrategy:
    unknown = sorted(set(fields) - {"strategy_id", "strategy", "symbol", "params", "start"})
    if unknown:
        raise CommandRejected(f"unknown field(s): {', '.join(unknown)}")
    strategy_id = _required_str(fields, "strategy_id")
    if not _STRATEGY_ID.fullmatch(strategy_id):
        raise CommandRejected("strategy_id must be 1-64 characters of A-Z a-z 0-9 . _ -")
    params = fields.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise CommandRejected("params must be an object of NAME: VALUE")
    start = fields.get("start", True)
    if not isinstance(start, bool):
        raise CommandRejected("start must be true or false")
    return AddStrategy(
        strategy_id=strategy_id,
        strategy=_required_str(fields, "strategy"),
        symbol=_required_str(fields, "symbol").upper(),
        params=params,
        start=start,
    )


_SUBMIT_FIELDS = frozenset(
    {
        "symbol",
        "side",
        "qty",
        "price",
        "type",
        "order_type",
        "time_in_force",
        "client_order_id",
        "strategy_id",
        "cmd",
    }
)


def parse_submit_order(fields: Mapping[str, object]) -> SubmitOrder:
    """Build a SubmitOrder from loosely typed fields (JSON, a form, a stdio line).

    Accepts `type` or `order_type`, `qty`/`price` as numbers or strings. Raises
    CommandRejected(bad_params) naming the first field that is wrong.
    """
    if not _SUBMIT_FIELDS.issuperset(fields):
        unknown = sorted(set(fields) - _SUBMIT_FIELDS)
        raise CommandRejected(f"unknown field(s): {', '.join(unknown)}")
    symbol = _required_str(fields, "symbol").upper()
    side = _enum(OrderSide, _required_str(fields, "side").upper(), "side")
    raw_type = fields.get("type", fields.get("order_type"))
    order_type = (
        OrderType.LIMIT
        if raw_type is None
        else _enum(OrderType, _str(raw_type, "type").upper(), "type")
    )
    raw_tif = fields.get("time_in_force")
    # A market order cannot rest, so it defaults to IOC rather than GTC.
    default_tif = TimeInForce.IOC if order_type is OrderType.MARKET else TimeInForce.GTC
    time_in_force = (
        default_tif
        if raw_tif is None
        else _enum(TimeInForce, _str(raw_tif, "time_in_force").upper(), "time_in_force")
    )
    qty = parse_positive_decimal(fields.get("qty"), "qty")
    raw_price = fields.get("price")
    price = (
        None if raw_price is None or raw_price == "" else parse_positive_decimal(raw_price, "price")
    )
    if order_type is OrderType.LIMIT and price is None:
        raise CommandRejected("price is required for a LIMIT order")
    if order_type is OrderType.MARKET and price is not None:
        raise CommandRejected("a MARKET order takes no price")
    if order_type is OrderType.MARKET and time_in_force is TimeInForce.GTC:
        raise CommandRejected("a MARKET order cannot rest: use IOC or FOK, or omit time_in_force")
    client_order_id = fields.get("client_order_id")
    if client_order_id is not None:
        client_order_id = _str(client_order_id, "client_order_id")
        if not is_valid_client_order_id(client_order_id):
            raise CommandRejected(
                "client_order_id must be 1-36 characters of A-Z a-z 0-9 . _ : / -"
            )
    strategy_id = fields.get("strategy_id")
    if strategy_id is not None:
        strategy_id = _str(strategy_id, "strategy_id")
        if not 0 < len(strategy_id) <= MAX_STRATEGY_ID_LENGTH:
            raise CommandRejected(f"strategy_id must be 1-{MAX_STRATEGY_ID_LENGTH} characters")
    return SubmitOrder(
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        order_type=order_type,
        time_in_force=time_in_force,
        client_order_id=client_order_id,
        strategy_id=strategy_id,
    )


def parse_cancel_order(fields: Mapping[str, object]) -> CancelOrder:
    unknown = sorted(set(fields) - {"client_order_id", "symbol", "cmd"})
    if unknown:
        raise CommandRejected(f"unknown field(s): {', '.join(unknown)}")
    client_order_id = _required_str(fields, "client_order_id")
    if not is_valid_client_order_id(client_order_id):
        raise CommandRejected("client_order_id must be 1-36 characters of A-Z a-z 0-9 . _ : / -")
    symbol = fields.get("symbol")
    return CancelOrder(
        client_order_id=client_order_id,
        symbol=None if symbol is None else _str(symbol, "symbol").upper(),
    )


def parse_cancel_all_orders(fields: Mapping[str, object]) -> CancelAllOrders:
    unknown = sorted(set(fields) - {"symbol", "cmd"})
    if unknown:
        raise CommandRejected(f"unknown field(s): {', '.join(unknown)}")
    symbol = fields.get("symbol")
    if symbol is None or symbol == "":
        return CancelAllOrders()
    return CancelAllOrders(symbol=_str(symbol, "symbol").upper())


def parse_positive_decimal(value: object, name: str) -> Decimal:
    """A finite, strictly positive decimal from a number or a numeric string.

    Floats are taken through their shortest repr (0.1 -> Decimal('0.1')), which is what
    a JSON client meant when it wrote 0.1.
    """
    # Exact types first (every order has two such fields). `short`: the number was read
    # from at most MAX_DECIMAL_DIGITS characters or is an integer below 10**30, so it
    # cannot hold too many digits and the costlier count is skipped.
    try:
        if type(value) is float:
            text = repr(value)
            number, short = Decimal(text), len(text) <= MAX_DECIMAL_DIGITS
        elif type(value) is int:
            number, short = Decimal(value), -_DIGITS_BOUND < value < _DIGITS_BOUND
        elif type(value) is str and value:
            text = value.strip()
            number, short = Decimal(text), len(text) <= MAX_DECIMAL_DIGITS
        elif value is None or value == "":
            raise CommandRejected(f"{name} is required")
        elif isinstance(value, bool):
            raise CommandRejected(f"{name} must be a number, not a boolean")
        elif isinstance(value, Decimal):
            number, short = value, False
        elif isinstance(value, (int, str)):
            number, short = Decimal(str(value).strip()), False
        elif isinstance(value, float):
            number, short = Decimal(repr(value)), False
        else:
            raise CommandRejected(f"{name} must be a number")
    except (InvalidOperation, ValueError):
        raise CommandRejected(f"{name} must be a number, got {_preview(value)}") from None
    if not number.is_finite():
        raise CommandRejected(f"{name} must be finite")
    if number <= 0:
        raise CommandRejected(f"{name} must be greater than zero")
    if not short and len(number.as_tuple().digits) > MAX_DECIMAL_DIGITS:
        raise CommandRejected(f"{name} has more than {MAX_DECIMAL_DIGITS} significant digits")
    if not MIN_EXPONENT <= number.adjusted() < MAX_EXPONENT:
        raise CommandRejected(
            f"{name} must be between 1e{MIN_EXPONENT} and 1e{MAX_EXPONENT}, got {_preview(number)}"
        )
    return number


def _preview(value: object) -> str:
    text = value if isinstance(value, str) else f"{value:.6e}" if isinstance(value, Decimal) else ""
    return repr(text[:40]) if text else type(value).__name__


def _required_str(fields: Mapping[str, object], name: str) -> str:
    value = fields.get(name)
    if value is None or value == "":
        raise CommandRejected(f"{name} is required")
    return _str(value, name)


def _str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise CommandRejected(f"{name} must be a string")
    return value.strip()


def _enum(kind: type[_E], value: str, name: str) -> _E:
    # A dict lookup: calling the enum class costs several times more, once per field of
    # every order.
    member: _E | None = _MEMBERS[kind].get(value)
    if member is None:
        allowed = "|".join(known.value for known in kind)
        raise CommandRejected(f"{name} must be one of {allowed}, got {value[:20]!r}")
    return member


_MEMBERS: dict[type, dict[str, Any]] = {
    kind: {member.value: member for member in kind} for kind in (OrderSide, OrderType, TimeInForce)
}
