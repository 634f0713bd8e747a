"""How a decimal reads outside the engine (HTTP JSON, SSE, WebSocket, stdio): one rule,
applied by `veloz.codec.encode_json` to every document it writes.

- Always plain notation, never an exponent (`0.00000001`, `100`, not `1E-8`, `1E+2`).
- At the precision of what the number measures, read from the field's name and the
  object it sits in (the names `api.md` documents):
  prices (`price`, `avg_price`, `limit_price`, `mark_price`, `bid`, `ask`, a bar's
  `open`/`high`/`low`/`close`, a book level's price) at the places of the symbol's price
  increment; quantities (`qty`, `order_qty`, `executed_qty`, `position`, `size`, ...) at
  the places of its size increment (a holding off that grid, net of a fee charged in the
  base asset, at the base asset's precision instead, as its balance reads); quote
  amounts (`notional`, `realized_pnl`, `unrealized_pnl`, `fees`) at the quote asset's
  precision; a `fee` at its `fee_asset`'s; an asset's `free`/`locked`/`total` at that
  asset's; `equity` and `peak_equity` at the valuation asset's. Always that many
  places, so a figure keeps one form (equity reads `100000.00000000` whatever
  arithmetic produced it).
- Ratios (`drawdown`, leverage, shares) have no unit: at most `RATIO_PLACES` places,
  trailing zeros dropped.
- Anything else (a risk limit, a strategy parameter, a field of an unknown symbol) keeps
  its exact digits.

Rounding is ROUND_HALF_EVEN and happens here only: the engine's values stay exact, and
what is shown is the nearest value at the shown precision, unbiased when many shown
figures are added up.
"""

import functools
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import msgspec

from veloz.model.instruments import Instrument

RATIO_PLACES = 8
# The places an asset is shown at when no instrument says (Binance's asset precision).
DEFAULT_ASSET_PLACES = 8

_PRICE = frozenset(
    {"price", "avg_price", "limit_price", "mark_price", "bid", "ask"}
    | {"open", "high", "low", "close"}  # a bar's
)
_QTY = frozenset(
    {
        "qty",
        "order_qty",
        "executed_qty",
        "position",
        "position_qty",
        "open_buy_qty",
        "open_sell_qty",
        "bid_size",
        "ask_size",
        "size",
        "volume",
    }
)
_QUOTE = frozenset({"notional", "unrealized_pnl", "realized_pnl", "fees"})
_ASSET = frozenset({"free", "locked", "total", "journal", "venue"})
_VALUATION = frozenset({"equity", "peak_equity"})
_RATIO = frozenset(
    {
        "drawdown",
        "leverage",
        "gross_leverage",
        "net_leverage",
        "largest_position_share",
        "concentration_hhi",
    }
)
_BOOK_SIDES = frozenset({"bids", "asks"})
# Wide enough that quantizing any real amount never runs out of digits.
_CONTEXT = Context(prec=80, rounding=ROUND_HALF_EVEN)
_QUANTUM = [Decimal(1).scaleb(-places) for places in range(19)]


@functools.lru_cache(maxsize=4096)  # a few increments, asked for by every decimal shown
def places_of(increment: Decimal) -> int:
    """0.01 -> 2, 1 -> 0, 10 -> 0."""
    return max(0, -increment.normalize().as_tuple().exponent)  # type: ignore[operator]


class Precisions:
    """The places each traded symbol's prices and quantities and each asset's amounts are
    shown at. It reads the engine's instrument mapping itself, so instruments loaded
    after start (Binance's exchangeInfo) are seen."""

    def __init__(
        self, instruments: Mapping[str, Instrument] | None = None, valuation_asset: str = ""
    ) -> None:
        self._instruments: Mapping[str, Instrument] = instruments or {}
        self.valuation_asset = valuation_asset

    def price(self, symbol: Any) -> int | None:
        instrument = self._instruments.get(symbol) if isinstance(symbol, str) else None
        return places_of(instrument.price_increment) if instrument else None

    def qty(self, symbol: Any, value: Decimal | None = None) -> int | None:
        """The size increment's places; for a `value` off that grid (a holding net of a
        fee charged in the base asset: 0.000999 BTC), the base asset's precision, so
        dust is shown as the balance shows it rather than rounded to a step."""
        instrument = self._instruments.get(symbol) if isinstance(symbol, str) else None
        if instrument is None:
            return None
        places = places_of(instrument.size_increment)
        if value is not None and value.is_finite() and not instrument.is_size_on_grid(value):
            return max(places, instrument.base_asset_precision)
        return places

    def quote(self, symbol: Any) -> int | None:
        instrument = self._instruments.get(symbol) if isinstance(symbol, str) else None
        return instrument.quote_asset_precision if instrument else None

    def asset(self, asset: Any) -> int | None:
        if not isinstance(asset, str) or not asset or not self._instruments:
            return None
        for instrument in self._instruments.values():
            if instrument.quote_asset == asset:
                return instrument.quote_asset_precision
            if instrument.base_asset == asset:
                return instrument.base_asset_precision
        return DEFAULT_ASSET_PLACES

    def of_field(self, name: str, holder: dict[str, Any]) -> int | None:
        """The places field `name` of the object `holder` is shown at; None: exact."""
        if name in _PRICE:
            return self.price(holder.get("symbol"))
        if name in _QTY:
            return self.qty(holder.get("symbol"), holder[name])
        if name in _QUOTE:
            return self.quote(holder.get("symbol"))
        if name == "fee":
            return self.asset(holder.get("fee_asset"))
        if name in _ASSET:
            return self.asset(holder.get("asset"))
        if name in _VALUATION:
            return self.asset(self.valuation_asset)
        return None


# The precisions every document is rendered with: the running engine's (`show_with`);
# until an engine sets them (the CLI), decimals keep their exact digits.
_shown = [Precisions()]


def show_with(precisions: Precisions) -> None:
    _shown[0] = precisions


def plain(value: Decimal, places: int | None = None) -> str:
    """`value` in plain notation: exact when `places` is None, else rounded half-even to
    exactly `places` places."""
    if places is not None and value.is_finite():
        quantum = _QUANTUM[places] if places < len(_QUANTUM) else Decimal(1).scaleb(-places)
        value = _CONTEXT.quantize(value, quantum)
    if not value and value.is_signed():
        value = value.copy_abs()  # -0.00 reads 0.00
    # str() is several times cheaper than format() and writes the same digits, except in
    # scientific notation (a positive exponent, or below 1e-6): then format() is asked.
    text = str(value)
    return format(value, "f") if "E" in text else text


def ratio(value: Decimal) -> str:
    """A unitless ratio: at most RATIO_PLACES places, no trailing zeros."""
    rounded = _CONTEXT.quantize(value, _QUANTUM[RATIO_PLACES])
    text = format(rounded, "f").rstrip("0").rstrip(".") if rounded else "0"
    return "0" if text in ("", "-0") else text


def render(tree: Any) -> Any:
    """`tree` (dicts, lists and scalars, as `msgspec.to_builtins` leaves them with decimals
    kept) with every decimal replaced by its rendered JSON number."""
    return _render(tree, _shown[0])


# What the precision rules read of an object besides the decimal itself
# (`Precisions.of_field`).
CONTEXT_FIELDS = frozenset({"symbol", "fee_asset", "asset"})


def render_flat(
    value: Any, decimals: tuple[tuple[str, str], ...], context: tuple[tuple[str, str], ...]
) -> Any:
    """A copy of the Struct `value`, whose fields are all scalars, with each of its
    `decimals` that holds a Decimal replaced by its rendered JSON number, by the same rule
    as `render` over its `to_builtins` dict. `decimals` and `context` are (attribute, JSON
    name) pairs: its decimal fields, and its fields among CONTEXT_FIELDS. Encoded as it is,
    such a Struct is not built into a dict and walked (an order's answer: a third less)."""
    precisions = _shown[0]
    holder: dict[str, Any] = {name: getattr(value, attribute) for attribute, name in context}
    changes: dict[str, msgspec.Raw] = {}
    for attribute, name in decimals:
        number = getattr(value, attribute)
        if type(number) is Decimal:
            holder[name] = number
            changes[attribute] = _field_number(name, number, holder, precisions)
    return msgspec.structs.replace(value, **changes) if changes else value


def _field_number(
    name: str, value: Decimal, holder: dict[str, Any], precisions: Precisions
) -> msgspec.Raw:
    """Field `name` of the object `holder` (its JSON names), holding `value`, rendered."""
    if name in _RATIO:
        return _number(ratio(value))
    return _number(plain(value, precisions.of_field(name, holder)))


def _number(text: str) -> msgspec.Raw:
    return msgspec.Raw(text.encode())


def _render(node: Any, precisions: Precisions) -> Any:
    kind = type(node)
    if kind is dict:
        return _render_object(node, precisions)
    if kind is list:
        return [_render(item, precisions) for item in node]
    if kind is Decimal:
        return _number(plain(node))
    return node


def _render_object(node: dict[str, Any], precisions: Precisions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in node.items():
        kind = type(value)
        if kind is Decimal:
            out[name] = _field_number(name, value, node, precisions)
        elif kind is list and name in _BOOK_SIDES:
            out[name] = _book_side(value, node.get("symbol"), precisions)
        elif kind is dict or kind is list:
            out[name] = _render(value, precisions)
        else:
            out[name] = value
    return out


def _book_side(levels: list[Any], symbol: Any, precisions: Precisions) -> list[Any]:
    """`[[price, qty], ...]` at the symbol's price and size places."""
    price = precisions.price(symbol)
    rendered = []
    for level in levels:
        if type(level) is list and len(level) == 2 and all(type(v) is Decimal for v in level):
            qty = precisions.qty(symbol, level[1])
            rendered.append([_number(plain(level[0], price)), _number(plain(level[1], qty))])
        else:
            rendered.append(_render(level, precisions))
    return rendered
