"""Binance's refusals map to our error codes by what they mean (errors.md), keep
Binance's message, and name no secret."""

import pytest

from veloz.binance.errors import (
    DUPLICATE_ORDER_CODES,
    UNKNOWN_ORDER_CODES,
    BinanceError,
    RateLimited,
    UnknownOutcome,
    error_code,
)
from veloz.model.errors import ErrorCode

ORDER = "/api/v3/order"


@pytest.mark.parametrize(
    ("status", "code", "msg", "expected"),
    [
        (
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
            "venue_unreachable",
        ),
        (400, -1022, "Signature for this request is not valid.", "unauthorized"),
        (401, -2014, "API-key format invalid.", "unauthorized"),
        (401, -2015, "Invalid API-key, IP, or permissions for action.", "unauthorized"),
        (400, -1013, "Filter failure: LOT_SIZE", "risk_rejected"),
        (400, -1111, "Parameter 'quantity' has too much precision.", "bad_params"),
        (400, -1100, "Illegal characters found in parameter 'newClientOrderId'.", "bad_params"),
        (400, -1102, "Mandatory parameter 'price' was not sent.", "bad_params"),
        (400, -1121, "Invalid symbol.", "unknown_symbol"),
        (
            400,
            -2010,
            "Account has insufficient balance for requested action.",
            "insufficient_balance",
        ),
        (400, -2010, "Duplicate order sent.", "duplicate_client_order_id"),
        (400, -2010, "Market is closed.", "trading_disabled"),
        (400, -2010, "This account may not place or cancel orders.", "forbidden"),
        (400, -2010, "Order would immediately match and take.", "risk_rejected"),
        (400, -2011, "Unknown order sent.", "not_found"),
        (400, -2011, "Order was not canceled due to cancel restrictions.", "bad_state"),
        (400, -2013, "Order does not exist.", "not_found"),
        (400, -1003, "Too many requests queued.", "rate_limit_exceeded"),
        (400, -1015, "Too many new orders.", "rate_limit_exceeded"),
        (503, None, "Service Unavailable", "venue_unreachable"),
        (403, None, "<html>blocked</html>", "venue_unreachable"),
    ],
)
def test_binance_codes_map_to_ours(status, code, msg, expected):
    error = BinanceError(ORDER, status, code, msg)
    assert error_code(error) == ErrorCode(expected)
    assert msg in str(error)  # Binance's own words reach whoever reads ours


def test_unknown_outcomes_and_rate_limits_map_by_class():
    assert error_code(UnknownOutcome(ORDER, 0, None, "timed out")) == "venue_unreachable"
    timeout = UnknownOutcome(ORDER, 408, -1007, "Timeout waiting for response")
    assert error_code(timeout) == ErrorCode.VENUE_UNREACHABLE
    limited = RateLimited(ORDER, 429, -1003, "Too much weight", retry_after_s=7, banned=False)
    assert error_code(limited) == ErrorCode.RATE_LIMIT_EXCEEDED
    banned = RateLimited(ORDER, 418, -1003, "IP banned", retry_after_s=120, banned=True)
    assert error_code(banned) == ErrorCode.RATE_LIMIT_EXCEEDED


def test_str_names_endpoint_status_code_and_message():
    error = BinanceError(ORDER, 400, -2010, "Duplicate order sent.")
    assert str(error) == "/api/v3/order -> HTTP 400 -2010: Duplicate order sent."
    assert str(UnknownOutcome(ORDER, 0, None, "timed out")) == "/api/v3/order -> HTTP 0: timed out"


def test_duplicate_and_unknown_orders_are_told_by_code_and_message():
    duplicate = BinanceError(ORDER, 400, -2010, "Duplicate order sent.")
    assert duplicate.is_duplicate_order and duplicate.code in DUPLICATE_ORDER_CODES
    assert not BinanceError(ORDER, 400, -2010, "Market is closed.").is_duplicate_order
    for code, msg in ((-2013, "Order does not exist."), (-2011, "Unknown order sent.")):
        unknown = BinanceError(ORDER, 400, code, msg)
        assert unknown.is_unknown_order and unknown.code in UNKNOWN_ORDER_CODES
    restricted = BinanceError(
        ORDER, 400, -2011, "Order was not canceled due to cancel restrictions."
    )
    assert not restricted.is_unknown_order
