"""The rules a valid identifier follows. Ids are plain `str` in the model: every venue,
the journal and the stores carry them as text, and a NewType would only add wrapping
at each of those edges without a check behind it."""

import re

# Binance's rule for newClientOrderId; we apply it to every venue so an id is portable.
CLIENT_ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:/-]{1,36}$")
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}$")


def is_valid_client_order_id(value: str) -> bool:
    return CLIENT_ORDER_ID_PATTERN.fullmatch(value) is not None
