"""Binance's answers that are not what was asked for, sorted by what the caller must do:

- `UnknownOutcome`: a timeout, a dropped connection, a 5xx, or Binance's own -1006/-1007
  ("execution status unknown"). The request may have taken effect; an order is resolved by
  querying its client order id, never by sending it again under a new one.
- `RateLimited`: 429 (back off until Retry-After) or 418 (the IP is banned until then).
- `BinanceError`: Binance refused, and nothing happened. Its code and message are kept.

`str()` of each names the endpoint, the HTTP status and Binance's code and message; never
a key, a secret or a signature (the endpoint is a path, without its query).
`error_code` maps each to our `ErrorCode`, so that a refusal reaches our clients under the
same code the simulated venue would use, with Binance's message beside it.
"""

from veloz.model.errors import ErrorCode

# Binance's codes the adapters act upon (errors.md).
DISCONNECTED = -1001
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
UNEXPECTED_RESPONSE = -1006
TIMEOUT = -1007
SERVER_BUSY = -1008
ERROR_MSG_RECEIVED = -1010
INVALID_MESSAGE = -1013  # a filter failure: the request never reached the matching engine
TOO_MANY_ORDERS = -1015
SERVICE_SHUTTING_DOWN = -1016
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
BAD_SYMBOL = -1121
INVALID_SYMBOL_STATUS = -1122
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FORMAT = -2014
REJECTED_API_KEY = -2015
ORDER_ARCHIVED = -2026

UNKNOWN_OUTCOME_CODES = frozenset({UNEXPECTED_RESPONSE, TIMEOUT})
UNAUTHORIZED_CODES = frozenset(
    {UNAUTHORIZED, INVALID_SIGNATURE, BAD_API_KEY_FORMAT, REJECTED_API_KEY}
)
# The matching engine's refusals: the code says only "rejected", the message says why
# (errors.md, "Messages for -1010, -2010, -2011 and -2038").
MATCHING_ENGINE_CODES = frozenset({ERROR_MSG_RECEIVED, NEW_ORDER_REJECTED, CANCEL_REJECTED})
# Under these codes a refusal may be "Duplicate order sent." (`is_duplicate_order`
# decides: -2010 alone also means a filter or balance refusal).
DUPLICATE_ORDER_CODES = frozenset({NEW_ORDER_REJECTED, ERROR_MSG_RECEIVED})
# The order does not exist: -2013 always; the others when the message says
# "Unknown order sent." (`is_unknown_order` decides).
UNKNOWN_ORDER_CODES = frozenset({NO_SUCH_ORDER}) | MATCHING_ENGINE_CODES

DUPLICATE_ORDER_MESSAGE = "Duplicate order sent."
UNKNOWN_ORDER_MESSAGE = "Unknown order sent."
INSUFFICIENT_BALANCE_MESSAGE = "Account has insufficient balance for requested action."
MARKET_CLOSED_MESSAGE = "Market is closed."
# The account (or this API) may not trade: nothing to retry until an operator acts.
_TRADING_NOT_ALLOWED_MESSAGES = frozenset(
    {
        "This action is disabled on this account.",
        "This account may not place or cancel orders.",
        "This symbol is not permitted for this account.",
        "This symbol is restricted for this account.",
        "Rest API trading is not enabled.",
        "WebSocket API trading is not enabled.",
    }
)


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
        """The client order id is already in use: the order exists; query it."""
        return self.code in DUPLICATE_ORDER_CODES and self.msg == DUPLICATE_ORDER_MESSAGE

    @property
    def is_unknown_order(self) -> bool:
        """Binance knows no order by that id (a query, a cancel)."""
        return self.code == NO_SUCH_ORDER or (
            self.code in MATCHING_ENGINE_CODES and self.msg == UNKNOWN_ORDER_MESSAGE
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
    code = error.code
    if isinstance(error, RateLimited) or code in (TOO_MANY_REQUESTS, TOO_MANY_ORDERS):
        return ErrorCode.RATE_LIMIT_EXCEEDED
    if (
        isinstance(error, UnknownOutcome)
        or error.status >= 500
        or code in (DISCONNECTED, SERVER_BUSY, SERVICE_SHUTTING_DOWN, INVALID_TIMESTAMP)
    ):
        # -1021 after a resync: our clock and Binance's disagree; nothing was done.
        return ErrorCode.VENUE_UNREACHABLE
    if code in UNAUTHORIZED_CODES or error.status == 401:
        return ErrorCode.UNAUTHORIZED
    if error.status == 403:
        # Binance's web application firewall: a rate or security block on this IP,
        # not a refusal of the request's content.
        return ErrorCode.VENUE_UNREACHABLE
    if error.is_duplicate_order:
        return ErrorCode.DUPLICATE_CLIENT_ORDER_ID
    if error.is_unknown_order or code == ORDER_ARCHIVED:
        return ErrorCode.NOT_FOUND
    if error.msg == INSUFFICIENT_BALANCE_MESSAGE:
        return ErrorCode.INSUFFICIENT_BALANCE
    if error.msg == MARKET_CLOSED_MESSAGE or code == INVALID_SYMBOL_STATUS:
        return ErrorCode.TRADING_DISABLED
    if error.msg in _TRADING_NOT_ALLOWED_MESSAGES:
        return ErrorCode.FORBIDDEN
    if code == BAD_SYMBOL:
        return ErrorCode.UNKNOWN_SYMBOL
    if code == CANCEL_REJECTED:
        return ErrorCode.BAD_STATE  # e.g. cancel restrictions: the order is not cancellable now
    if code in (NEW_ORDER_REJECTED, ERROR_MSG_RECEIVED, INVALID_MESSAGE):
        return ErrorCode.RISK_REJECTED  # a filter or a matching engine rule refused it
    return ErrorCode.BAD_PARAMS
