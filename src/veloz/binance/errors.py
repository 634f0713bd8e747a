"""Binance's answers that are not what was asked for, sorted by what the caller must do:

- `UnknownOutcome`: a timeout, a dropped connection, a 5xx, or Binance's own -1006/-1007
  ("execution status unknown"). The request may have taken effect; an order is resolved by
  querying its client order id, never by sending it again under a new one.
- `RateLimited`: 429 (back off until Retry-After) or 418 (the IP is banned until then).
- `BinanceError`: Binance refused, and nothing happened. Its code and message are kept.

`str()` of each names the endpoint, the HTTP status and Binance's code and message; never
a key, a secret or a signature (the endpoint is a path, without its query).
"""

from veloz.model.errors import ErrorCode

# Binance's codes the adapters act upon (errors.md).
TOO_MANY_REQUESTS = -1003
UNEXPECTED_RESPONSE = -1006
TIMEOUT = -1007
SERVER_BUSY = -1008
INVALID_MESSAGE = -1013  # a filter failure: the request never reached the matching engine
TOO_MANY_ORDERS = -1015
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FORMAT = -2014
REJECTED_API_KEY = -2015

UNKNOWN_OUTCOME_CODES = frozenset({UNEXPECTED_RESPONSE, TIMEOUT})
UNAUTHORIZED_CODES = frozenset({-1002, INVALID_SIGNATURE, BAD_API_KEY_FORMAT, REJECTED_API_KEY})

DUPLICATE_ORDER_MESSAGE = "Duplicate order sent."
UNKNOWN_ORDER_MESSAGE = "Unknown order sent."
INSUFFICIENT_BALANCE_MESSAGE = "Account has insufficient balance for requested action."


class BinanceError(Exception):
    def __init__(self, endpoint: str, status: int, code: int | None, msg: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.msg = msg
        super().__init__(str(self))

    def __str__(self) -> str:
        code = f" {self.code}" if self.code is not None else ""
        return f"{self.endpoint} -> HTTP {self.status}{code}: {self.msg}"

    @property
    def is_duplicate_order(self) -> bool:
        return self.code == NEW_ORDER_REJECTED and self.msg == DUPLICATE_ORDER_MESSAGE

    @property
    def is_unknown_order(self) -> bool:
        return self.code == NO_SUCH_ORDER or (
            self.code in (CANCEL_REJECTED, NEW_ORDER_REJECTED) and self.msg == UNKNOWN_ORDER_MESSAGE
        )


class UnknownOutcome(BinanceError):
    """The request may or may not have taken effect."""


class RateLimited(BinanceError):
    """429 (`banned` False) or 418 (`banned` True): no call until `retry_after_s` is over."""

    def __init__(
        self,
        endpoint: str,
        status: int,
        code: int | None,
        msg: str,
        *,
        retry_after_s: float,
        banned: bool,
    ) -> None:
        self.retry_after_s = retry_after_s
        self.banned = banned
        super().__init__(endpoint, status, code, msg)


def error_code(error: BinanceError) -> ErrorCode:
    """Our error code for Binance's answer (its message stays in the error's text)."""
    if isinstance(error, RateLimited) or error.code in (TOO_MANY_REQUESTS, TOO_MANY_ORDERS):
        return ErrorCode.RATE_LIMIT_EXCEEDED
    if isinstance(error, UnknownOutcome) or error.code == SERVER_BUSY or error.status >= 500:
        return ErrorCode.VENUE_UNREACHABLE
    if error.code in UNAUTHORIZED_CODES or error.status in (401, 403):
        return ErrorCode.UNAUTHORIZED
    if error.is_duplicate_order:
        return ErrorCode.DUPLICATE_CLIENT_ORDER_ID
    if error.is_unknown_order:
        return ErrorCode.NOT_FOUND
    if error.msg == INSUFFICIENT_BALANCE_MESSAGE:
        return ErrorCode.INSUFFICIENT_BALANCE
    if error.code == -1121:
        return ErrorCode.UNKNOWN_SYMBOL
    if error.code in (NEW_ORDER_REJECTED, CANCEL_REJECTED, INVALID_MESSAGE):
        return ErrorCode.RISK_REJECTED
    return ErrorCode.BAD_PARAMS
