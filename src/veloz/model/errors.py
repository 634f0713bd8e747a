"""Domain errors and their codes. Each error carries a stable machine code (`ErrorCode`)
that transports map to their own form (an HTTP status, an `error` event on stdio) without
inspecting the message; a risk denial also names its `DenialReason`."""

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every code an error may carry, with its wire spelling. The HTTP status of each is
    in `veloz.api.errors.http_status`, which must name them all (mypy checks it)."""

    # The request itself is wrong.
    BAD_PARAMS = "bad_params"
    BAD_JSON = "bad_json"
    BAD_COMMAND = "bad_command"  # stdio: not a command it knows
    LINE_TOO_LONG = "line_too_long"  # stdio
    BAD_LIMITS = "bad_limits"  # a risk limits file that does not validate
    UNKNOWN_SYMBOL = "unknown_symbol"
    # What it names is missing, or in a state that does not allow it.
    NOT_FOUND = "not_found"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    DUPLICATE_STRATEGY_ID = "duplicate_strategy_id"
    ORDER_FINAL = "order_final"
    BAD_STATE = "bad_state"
    # Refused by the rules in force.
    TRADING_DISABLED = "trading_disabled"
    RISK_REJECTED = "risk_rejected"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    # Who is asking, and whether they may.
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    LOCKED_OUT = "locked_out"
    AUTH_DISABLED = "auth_disabled"
    # Something the engine needs is not there (yet).
    NOT_READY = "not_ready"
    SHUTTING_DOWN = "shutting_down"
    JOURNAL_UNAVAILABLE = "journal_unavailable"
    NO_MARKET_DATA = "no_market_data"
    VENUE_UNREACHABLE = "venue_unreachable"
    STORE_UNAVAILABLE = "store_unavailable"
    # An event that does not fit an order's state (`InvalidTransition`): reported and
    # counted inside the engine, never the answer to a request.
    ILLEGAL_TRANSITION = "illegal_transition"
    OVERFILL = "overfill"
    DUPLICATE_TRADE = "duplicate_trade"
    DUPLICATE_ORDER = "duplicate_order"
    UNKNOWN_ORDER = "unknown_order"
    MISMATCHED_ORDER = "mismatched_order"
    # HTTP-level refusals before a route runs (`veloz.api.errors.http_error`).
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    HTTP_ERROR = "http_error"
    # A bug: the transports say so without details.
    INTERNAL_ERROR = "internal_error"


class DenialReason(StrEnum):
    """Why the engine refused a new order before it entered the book. Journaled with the
    denial (`OrderDenied`), counted, and answered as the `reason` under the error code."""

    TRADING_DISABLED = "trading_disabled"  # READONLY or MAINTENANCE
    TRADING_HALTED = "trading_halted"  # the circuit breaker
    RATE_LIMITED = "rate_limited"
    QTY_BELOW_MINIMUM = "qty_below_minimum"
    QTY_ABOVE_MAXIMUM = "qty_above_maximum"
    NOTIONAL_BELOW_MINIMUM = "notional_below_minimum"
    NOTIONAL_ABOVE_MAXIMUM = "notional_above_maximum"
    PRICE_OUT_OF_BAND = "price_out_of_band"
    MAX_OPEN_ORDERS = "max_open_orders"
    MAX_POSITION_EXCEEDED = "max_position_exceeded"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    INSUFFICIENT_MARGIN = "insufficient_margin"


class VelozError(Exception):
    """Base of every error the domain raises on purpose.

    `code` takes the enum member (a string is converted at once, so a mistyped code fails
    where it is raised instead of reaching a client as an unmapped code).
    """

    code: ErrorCode = ErrorCode.BAD_PARAMS

    def __init__(
        self, message: str, *, code: ErrorCode | str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = ErrorCode(code)
        self.message = message
        # The finer cause under a general code, e.g. risk_rejected / max_position_exceeded.
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class CommandRejected(VelozError):
    """A command was refused before it changed anything (default code `bad_params`)."""

    code = ErrorCode.BAD_PARAMS


class InvalidTransition(VelozError):
    """An event does not fit the order's current state; it is reported, never applied.

    Codes: `illegal_transition`, `overfill`, `duplicate_trade`, `mismatched_order`,
    `duplicate_order`, `unknown_order`.
    """

    code = ErrorCode.ILLEGAL_TRANSITION
