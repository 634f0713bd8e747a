"""Mapping errors to HTTP answers, `{"error": code, "message": text}`, and documenting
them: every route lists the error statuses it can answer with."""

from typing import Any, assert_never

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec

from veloz.model.errors import ErrorCode, VelozError


def http_status(code: ErrorCode) -> int:
    """The HTTP status an error code is answered with. Every code is listed: a new one
    without a status here fails the type check (`assert_never`), not a client."""
    match code:
        case (
            ErrorCode.BAD_PARAMS
            | ErrorCode.BAD_JSON
            | ErrorCode.BAD_COMMAND
            | ErrorCode.LINE_TOO_LONG
            | ErrorCode.BAD_LIMITS
            | ErrorCode.UNKNOWN_SYMBOL
            | ErrorCode.HTTP_ERROR
        ):
            return 400
        case ErrorCode.UNAUTHORIZED:
            return 401
        case ErrorCode.FORBIDDEN:
            return 403
        case ErrorCode.NOT_FOUND | ErrorCode.AUTH_DISABLED:
            return 404
        case ErrorCode.METHOD_NOT_ALLOWED:
            return 405
        case (
            ErrorCode.DUPLICATE_CLIENT_ORDER_ID
            | ErrorCode.DUPLICATE_STRATEGY_ID
            | ErrorCode.ORDER_FINAL
            | ErrorCode.BAD_STATE
            # An event that contradicts an order's state conflicts with that state.
            | ErrorCode.ILLEGAL_TRANSITION
            | ErrorCode.OVERFILL
            | ErrorCode.DUPLICATE_TRADE
            | ErrorCode.DUPLICATE_ORDER
            | ErrorCode.UNKNOWN_ORDER
            | ErrorCode.MISMATCHED_ORDER
        ):
            return 409
        case ErrorCode.BODY_TOO_LARGE:
            return 413
        case ErrorCode.UNSUPPORTED_MEDIA_TYPE:
            return 415
        case ErrorCode.RISK_REJECTED | ErrorCode.INSUFFICIENT_BALANCE:
            return 422
        case ErrorCode.TRADING_DISABLED:
            return 423
        case ErrorCode.RATE_LIMIT_EXCEEDED | ErrorCode.LOCKED_OUT:
            return 429
        case ErrorCode.INTERNAL_ERROR:
            return 500
        case (
            ErrorCode.NOT_READY
            | ErrorCode.SHUTTING_DOWN
            | ErrorCode.JOURNAL_UNAVAILABLE
            | ErrorCode.NO_MARKET_DATA
            | ErrorCode.VENUE_UNREACHABLE
            | ErrorCode.STORE_UNAVAILABLE
        ):
            return 503
        case _:
            assert_never(code)


# Litestar's own refusals (before a route runs), by status.
_HTTP_CODES = {
    400: ErrorCode.BAD_PARAMS,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.BODY_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}

_DESCRIPTIONS = {
    400: "Malformed request: bad JSON, a missing or invalid field or parameter",
    401: "No credentials, or credentials that do not hold (wrong, expired, revoked)",
    403: "The credential's role may not do this, or the API key may not be used from here",
    404: "No such route or object",
    405: "Method not allowed on this route",
    409: "Conflicts with the object's state or an earlier use of its id",
    413: "Body larger than the configured limit",
    422: "Refused by a risk limit; `reason` names it",
    423: "Trading is disabled (READONLY, MAINTENANCE or HALTED)",
    429: "Rate limited",
    503: "Not ready, shutting down, or the journal or venue is unavailable",
}


# The largest nanosecond time a store column (signed 64-bit) can hold: query parameters
# beyond it are refused as bad input, not passed to the database.
MAX_TS_NS = 2**63 - 1


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    error: ErrorCode
    message: str
    reason: str | None = None  # the finer cause under risk_rejected and rate_limit_exceeded


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route may answer (400 always)."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[status])
        for status in sorted({400, *statuses})
    }


class ErrorAnswer(msgspec.Struct, frozen=True):
    """What an error is answered with: status, body and extra headers."""

    status: int
    body: ErrorBody
    headers: dict[str, str]


def domain_answer(exc: VelozError) -> ErrorAnswer:
    status = http_status(exc.code)
    retry_after = getattr(exc, "retry_after_s", 0)
    headers = {"retry-after": str(max(1, round(retry_after + 0.5)))} if status == 429 else {}
    return ErrorAnswer(status, ErrorBody(exc.code, exc.message, exc.reason), headers)


def http_answer(exc: HTTPException) -> ErrorAnswer:
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.HTTP_ERROR)
    return ErrorAnswer(exc.status_code, ErrorBody(code, str(exc.detail)), {})


def domain_error(_: Request[Any, Any, Any], exc: VelozError) -> Response[ErrorBody]:
    return _response(domain_answer(exc))


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    return _response(http_answer(exc))


def _response(answer: ErrorAnswer) -> Response[ErrorBody]:
    return Response(answer.body, status_code=answer.status, headers=answer.headers)
