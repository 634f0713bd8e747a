"""Typed identifiers and the rules a valid one follows."""

import re
from typing import NewType

ClientOrderId = NewType("ClientOrderId", str)
VenueOrderId = NewType("VenueOrderId", str)
TradeId = NewType("TradeId", str)
Symbol = NewType("Symbol", str)

# Binance's rule for newClientOrderId; we apply it to every venue so an id is portable.
CLIENT_ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:/-]{1,36}$")
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}$")


def is_valid_client_order_id(value: str) -> bool:
    return CLIENT_ORDER_ID_PATTERN.fullmatch(value) is not None
