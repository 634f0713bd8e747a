"""A new order's parameters as Binance reads them: the mandatory ones per type, the enums,
the client order id pattern, and the symbol's filters (PRICE_FILTER, LOT_SIZE,
MARKET_LOT_SIZE, NOTIONAL), each refused with the documented code and message."""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from tests.support.fake_binance import wire
from tests.support.fake_binance.market import SymbolMarket, SymbolRules

SIDES = ("BUY", "SELL")
TYPES = ("LIMIT", "MARKET", "LIMIT_MAKER")
TIFS = ("GTC", "IOC", "FOK")
RESP_TYPES = ("ACK", "RESULT", "FULL")


@dataclass(frozen=True, kw_only=True)
class NewOrder:
    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal | None
    quote_order_qty: Decimal | None
    price: Decimal | None
    client_order_id: str | None
    resp_type: str


def parse_new_order(params: Mapping[str, str], market: SymbolMarket) -> NewOrder:
    rules = market.rules
    side = wire.text(params, "side")
    if side not in SIDES:
        raise wire.Refusal(-1117, "Invalid side.")
    kind = wire.text(params, "type")
    if kind not in TYPES:
        raise wire.Refusal(-1116, "Invalid orderType.")
    tif = params.get("timeInForce")
    if kind == "LIMIT":
        if not tif:
            raise wire.mandatory("timeInForce")
        if tif not in TIFS:
            raise wire.Refusal(-1115, "Invalid timeInForce.")
    elif tif:
        raise wire.not_required("timeInForce")
    quantity = wire.decimal(params, "quantity", required=False)
    quote_qty = wire.decimal(params, "quoteOrderQty", required=False)
    price = wire.decimal(params, "price", required=False)
    if kind == "MARKET":
        if price is not None:
            raise wire.not_required("price")
        if quantity is None and quote_qty is None:
            raise wire.Refusal(
                -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
            )
        if quantity is not None and quote_qty is not None:
            raise wire.not_required("quoteOrderQty")
    else:
        if quantity is None:
            raise wire.mandatory("quantity")
        if price is None:
            raise wire.mandatory("price")
        if quote_qty is not None:
            raise wire.not_required("quoteOrderQty")
    client_id = params.get("newClientOrderId")
    if client_id is not None:
        if client_id == "":
            raise wire.Refusal(-1118, "New client order ID was empty.")
        wire.client_order_id(client_id)
    resp_type = params.get("newOrderRespType") or ("ACK" if kind == "LIMIT_MAKER" else "FULL")
    if resp_type not in RESP_TYPES:
        raise wire.illegal("newOrderRespType", ", ".join(RESP_TYPES))
    _check_filters(rules, market, kind, side, quantity, quote_qty, price)
    return NewOrder(
        symbol=rules.symbol,
        side=side,
        type=kind,
        time_in_force=tif or "GTC",
        quantity=quantity,
        quote_order_qty=quote_qty,
        price=price,
        client_order_id=client_id,
        resp_type=resp_type,
    )


def _check_filters(  # noqa: PLR0917 - the order's fields, one by one
    rules: SymbolRules,
    market: SymbolMarket,
    kind: str,
    side: str,
    quantity: Decimal | None,
    quote_qty: Decimal | None,
    price: Decimal | None,
) -> None:
    if price is not None:
        if price <= 0:
            raise wire.Refusal(-1013, "Invalid price.")
        if price < rules.min_price or price > rules.max_price or price % rules.tick_size:
            raise wire.filter_failure("PRICE_FILTER")
    if quantity is not None:
        if quantity <= 0:
            raise wire.Refusal(-1013, "Invalid quantity.")
        if quantity < rules.min_qty or quantity > rules.max_qty or quantity % rules.step_size:
            raise wire.filter_failure("LOT_SIZE")
        if kind == "MARKET" and quantity > rules.market_max_qty:
            raise wire.filter_failure("MARKET_LOT_SIZE")
    if quote_qty is not None:
        if quote_qty <= 0:
            raise wire.Refusal(-1013, "Invalid quantity.")
        if quote_qty < rules.min_notional:
            raise wire.filter_failure("NOTIONAL")
        return
    assert quantity is not None
    reference = price if price is not None else _market_price(market, side)
    if reference is None:
        return
    notional = reference * quantity
    if notional < rules.min_notional or (kind != "MARKET" and notional > rules.max_notional):
        raise wire.filter_failure("NOTIONAL")


def _market_price(market: SymbolMarket, side: str) -> Decimal | None:
    """What a MARKET order's notional is checked at: the fake has no average price, so
    the last trade, else the best price it would take."""
    if market.trades:
        return market.trades[-1].price
    level = market.best_ask() if side == "BUY" else market.best_bid()
    return level[0] if level else None
