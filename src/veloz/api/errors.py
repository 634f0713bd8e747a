"""Mapping errors to HTTP answers, `{"error": code, "message": text}`, and documenting
them: every route lists the error statuses it can answer with."""

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec

from veloz.model.errors import VelozError

STATUS_OF_CODE = {
    "bad_params": 400,
    "bad_json": 400,
    "bad_limits": 400,
    "unknown_symbol": 400,
    "not_found": 404,
    "duplicate_client_order_id": 409,
    "order_final": 409,
    "trading_disabled": 423,
    "risk_rejected": 422,
    "rate_limit_exceeded": 429,
    "not_ready": 503,
    "shutting_down": 503,
    "journal_unavailable": 503,
    "no_market_data": 503,
    "venue_unreachable": 503,
    "store_unavailable": 503,
}
_HTTP_CODES = {
    400: "bad_params",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
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
    error: str
    message: str
    reason: str | None = None  # the finer cause under risk_rejected and rate_limit_exceeded


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route may answer (400 always)."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[status])
        for status in sorted({400, *statuses})
    }


def domain_error(_: Request[Any, Any, Any], exc: VelozError) -> Response[ErrorBody]:
    status = getattr(exc, "status", None) or STATUS_OF_CODE.get(exc.code, 400)
    retry_after = getattr(exc, "retry_after_s", 0)
    headers = {"retry-after": str(max(1, round(retry_after + 0.5)))} if status == 429 else {}
    return Response(
        ErrorBody(exc.code, exc.message, exc.reason), status_code=status, headers=headers
    )


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return Response(ErrorBody(code, str(exc.detail)), status_code=exc.status_code)
