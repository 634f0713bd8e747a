"""Mapping domain errors to HTTP answers: `{"error": code, "message": text}`."""

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from veloz.model.errors import VelozError

STATUS_OF_CODE = {
    "bad_params": 400,
    "bad_json": 400,
    "unknown_symbol": 400,
    "not_found": 404,
    "duplicate_client_order_id": 409,
    "order_final": 409,
    "trading_disabled": 423,
    "rate_limit_exceeded": 429,
    "not_ready": 503,
    "shutting_down": 503,
    "journal_unavailable": 503,
    "no_market_data": 503,
}


def error_body(code: str, message: str) -> dict[str, str]:
    return {"error": code, "message": message}


def domain_error(_: Request[Any, Any, Any], exc: VelozError) -> Response[dict[str, str]]:
    return Response(
        error_body(exc.code, exc.message), status_code=STATUS_OF_CODE.get(exc.code, 400)
    )


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    code = {
        400: "bad_params",
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
    }.get(exc.status_code, "http_error")
    return Response(error_body(code, str(exc.detail)), status_code=exc.status_code)
