"""Tradable instruments: what a symbol is made of and the increments its prices and sizes
must respect."""

from decimal import Decimal, InvalidOperation

import msgspec

from veloz.model.identifiers import SYMBOL_PATTERN

# Longest first, so that e.g. "FDUSD" wins over "USD" when splitting a symbol.
_STABLE_QUOTES = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "TUSD"})
KNOWN_QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol and its filters, named after Binance's (PRICE_FILTER, LOT_SIZE,
    MARKET_LOT_SIZE, NOTIONAL): a venue that lists its own filters (Binance's
    exchangeInfo) fills them all; the defaults are what a simulated symbol has."""

    symbol: str
    base_asset: str
    quote_asset: str
    price_increment: Decimal
    size_increment: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    # Whether the venue takes orders now ("TRADING"), or why not ("HALT", "BREAK"...).
    status: str = "TRADING"
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    # MARKET_LOT_SIZE: a market order's own bounds, where the venue sets them.
    market_min_qty: Decimal | None = None
    market_max_qty: Decimal | None = None
    max_notional: Decimal | None = None
    # Whether the notional bounds apply to market orders too (at the reference price).
    min_notional_applies_to_market: bool = True
    max_notional_applies_to_market: bool = False
    # Decimal places of the base and quote assets' amounts (balances, fees): Binance's
    # baseAssetPrecision / quoteAssetPrecision, 8 for every spot symbol it lists.
    base_asset_precision: int = 8
    quote_asset_precision: int = 8

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"

    def is_price_on_grid(self, price: Decimal) -> bool:
        return _on_grid(price, self.price_increment)

    def is_size_on_grid(self, qty: Decimal) -> bool:
        return _on_grid(qty, self.size_increment)


def _on_grid(value: Decimal, increment: Decimal) -> bool:
    try:
        return value % increment == 0
    except InvalidOperation:  # more grid steps than Decimal's precision: not a real price
        return False


def split_symbol(symbol: str) -> tuple[str, str]:
    """`BTCUSDT` -> (`BTC`, `USDT`). Raises ValueError for a symbol we cannot split."""
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValueError(f"symbol {symbol!r} must be 2-20 upper-case letters or digits")
    for quote in KNOWN_QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(
        f"symbol {symbol!r} does not end in a known quote asset ({', '.join(KNOWN_QUOTE_ASSETS)})"
    )


def default_instrument(symbol: str, reference_price: Decimal) -> Instrument:
    """An instrument with increments scaled to its price, like a venue would list it.

    The price increment keeps 7 significant digits at the reference price (0.01 for BTC at
    50,000) and the size increment is 10^-(digits before the point) (0.00001 BTC), both
    what Binance lists for its majors.
    """
    base, quote = split_symbol(symbol)
    magnitude = reference_price.adjusted()  # exponent of the leading digit
    price_increment = _power_of_ten(max(-10, min(magnitude - 6, 0)))
    size_increment = _power_of_ten(max(-8, min(0, -(magnitude + 1))))
    return Instrument(
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        price_increment=price_increment,
        size_increment=size_increment,
        min_qty=size_increment,
        max_qty=Decimal(9_000_000),
        min_notional=Decimal(5) if quote in _STABLE_QUOTES else Decimal(0),
    )


def _power_of_ten(exponent: int) -> Decimal:
    # Written out in fixed notation so it prints as 0.01, not 1E-2.
    return Decimal(format(Decimal(1).scaleb(exponent), "f"))
