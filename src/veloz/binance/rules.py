"""A symbol's trading rules from Binance's exchangeInfo: status, PRICE_FILTER, LOT_SIZE,
MARKET_LOT_SIZE and the notional filters (MIN_NOTIONAL, or NOTIONAL where Binance lists
it), turned into the `Instrument` every order is checked and rounded against before it is
journaled. A bound of 0 means "disabled", as in filters.md."""

from decimal import Decimal
from typing import Any

import msgspec

from veloz.model.instruments import Instrument

ZERO = Decimal(0)
# What LOT_SIZE allows when Binance sets no maximum.
_NO_MAX_QTY = Decimal(9_000_000_000)


class SymbolRules(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    min_price: Decimal | None
    max_price: Decimal | None
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal | None
    market_min_qty: Decimal | None
    market_max_qty: Decimal | None
    min_notional: Decimal
    apply_min_to_market: bool
    max_notional: Decimal | None
    apply_max_to_market: bool
    base_asset_precision: int = 8
    quote_asset_precision: int = 8

    def instrument(self) -> Instrument:
        return Instrument(
            symbol=self.symbol,
            base_asset=self.base_asset,
            quote_asset=self.quote_asset,
            price_increment=self.tick_size,
            size_increment=self.step_size,
            min_qty=self.min_qty,
            max_qty=self.max_qty if self.max_qty is not None else _NO_MAX_QTY,
            min_notional=self.min_notional,
            status=self.status,
            min_price=self.min_price,
            max_price=self.max_price,
            market_min_qty=self.market_min_qty,
            market_max_qty=self.market_max_qty,
            max_notional=self.max_notional,
            min_notional_applies_to_market=self.apply_min_to_market,
            max_notional_applies_to_market=self.apply_max_to_market,
            base_asset_precision=self.base_asset_precision,
            quote_asset_precision=self.quote_asset_precision,
        )


def parse_exchange_info(data: Any) -> dict[str, SymbolRules]:
    """Symbol -> its rules. Raises ValueError naming the symbol and field that do not
    parse (an answer we do not understand must not become an order we get wrong); ask
    for the symbols traded (`symbols=[...]`), not the whole exchange."""
    if not isinstance(data, dict) or not isinstance(data.get("symbols"), list):
        raise ValueError("exchangeInfo answer has no `symbols` list")
    rules: dict[str, SymbolRules] = {}
    for entry in data["symbols"]:
        if not isinstance(entry, dict):
            raise ValueError(f"exchangeInfo symbol entry is not an object: {entry!r:.80}")
        symbol = str(entry.get("symbol", "?"))
        try:
            rules[symbol] = _symbol(entry)
        except (KeyError, ArithmeticError, TypeError, ValueError) as exc:
            raise ValueError(f"exchangeInfo entry for {symbol}: {exc!r}") from None
    return rules


def _symbol(entry: dict[str, Any]) -> SymbolRules:
    filters = {f["filterType"]: f for f in entry.get("filters", [])}
    price = filters.get("PRICE_FILTER", {})
    lot = filters.get("LOT_SIZE", {})
    market_lot = filters.get("MARKET_LOT_SIZE")
    notional = filters.get("NOTIONAL", {})
    legacy = filters.get("MIN_NOTIONAL", {})
    step = _enabled(lot.get("stepSize")) or _precision(entry, "baseAssetPrecision")
    # Both notional filters may be listed; an order must pass each. The instrument has one
    # minimum, so it takes the stricter, and applies it to market orders if either does.
    minimums = [
        (_enabled(notional.get("minNotional")), bool(notional.get("applyMinToMarket", True))),
        (_enabled(legacy.get("minNotional")), bool(legacy.get("applyToMarket", True))),
    ]
    set_minimums = [(value, applies) for value, applies in minimums if value is not None]
    min_notional = max((value for value, _ in set_minimums), default=ZERO)
    apply_min = any(applies for _, applies in set_minimums)
    max_notional = _enabled(notional.get("maxNotional"))
    apply_max = max_notional is not None and bool(notional.get("applyMaxToMarket", False))
    return SymbolRules(
        symbol=entry["symbol"],
        status=str(entry.get("status", "TRADING")),
        base_asset=entry["baseAsset"],
        quote_asset=entry["quoteAsset"],
        tick_size=_enabled(price.get("tickSize")) or _precision(entry, "quoteAssetPrecision"),
        min_price=_enabled(price.get("minPrice")),
        max_price=_enabled(price.get("maxPrice")),
        step_size=step,
        min_qty=_enabled(lot.get("minQty")) or step,
        max_qty=_enabled(lot.get("maxQty")),
        market_min_qty=_enabled(market_lot.get("minQty")) if market_lot else None,
        market_max_qty=_enabled(market_lot.get("maxQty")) if market_lot else None,
        min_notional=min_notional,
        apply_min_to_market=apply_min,
        max_notional=max_notional,
        apply_max_to_market=apply_max,
        base_asset_precision=_digits(entry, "baseAssetPrecision"),
        quote_asset_precision=_digits(entry, "quoteAssetPrecision"),
    )


def _precision(entry: dict[str, Any], field: str) -> Decimal:
    """The grid where a filter sets none: one unit in the asset's last digit."""
    return Decimal(1).scaleb(-_digits(entry, field))


def _digits(entry: dict[str, Any], field: str) -> int:
    """An asset's precision in digits, 8 where not listed (quotePrecision is the older
    name of quoteAssetPrecision, to be removed in v4)."""
    digits = entry.get(field)
    if digits is None and field == "quoteAssetPrecision":
        digits = entry.get("quotePrecision")
    return int(8 if digits is None else digits)


def _enabled(text: object) -> Decimal | None:
    """A filter value; None where Binance writes 0 (the rule is off)."""
    if text is None:
        return None
    value = Decimal(str(text))
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a filter value: {text!r}")
    # Plain notation (0.01, 100000), never 1E+5: these values end up in messages too.
    return Decimal(format(value.normalize(), "f")) if value else None
