"""The gateway's link to its engine: the engine's own HTTP API, on its internal address
(`VELOZ_ENGINE_URL`).

Commands travel over HTTP rather than a Redis command stream: the engine already answers
each command once it is durable, with its own errors, roles and idempotency by client
order id, so a command through a gateway is answered exactly as it would be directly, and
Redis carries events only (one direction, one writer). A command goes with its caller's
own credential, so the engine checks the role again and journals the same actor.

Reads the gateway makes for itself (snapshots, the market feed) carry the gateway's own
key (`VELOZ_ENGINE_API_KEY`) when authentication is on.
"""

import asyncio
import contextvars
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import structlog

from veloz.api.access import GATEWAY_HEADER
from veloz.histogram import LATENCY_BUCKETS, Histogram
from veloz.model.errors import CommandRejected, ErrorCode

logger = logging.getLogger(__name__)

# Header names a command carries from its caller to the engine.
CREDENTIAL_HEADERS = ("authorization", "x-api-key")
# Retries of a command whose connection failed before an answer (the command carries a
# client order id or is idempotent, so sending it again is safe).
COMMAND_ATTEMPTS = 3
RETRY_PAUSE_S = 0.2


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a command is forwarded for: their credential headers, their address chain."""

    headers: Mapping[str, str]
    forwarded_for: str


# Set for each request by the gateway's outermost layer (`veloz.runtime.gateway.app`).
CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


@dataclass(slots=True)
class LinkStats:
    """What `/metrics` and `/health/ready` show about the engine link."""

    up: bool = False
    last_ok_ns: int = 0
    last_error: str = ""
    failures: int = 0
    forwarded: Counter[str] = field(default_factory=Counter)  # by "<method> <path>", result
    command_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    reads: int = 0


class _ErrorBody(msgspec.Struct):
    error: str = "internal_error"
    message: str = ""


def _code(raw: str) -> ErrorCode:
    try:
        return ErrorCode(raw)
    except ValueError:
        return ErrorCode.INTERNAL_ERROR


class EngineLink:
    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        api_key: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token  # `auth.service.gateway_token`: not a name, a proof
        self.stats = LinkStats()
        self._own = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    def _unreachable(self, exc: Exception) -> CommandRejected:
        self.stats.up = False
        self.stats.failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        return CommandRejected(
            f"the engine at {self.base_url} does not answer: {self.stats.last_error}",
            code=ErrorCode.NOT_READY,
        )

    def _answered(self, response: httpx.Response, also_ok: frozenset[int] = frozenset()) -> bytes:
        self.stats.up = True
        self.stats.last_ok_ns = time.time_ns()
        if response.status_code < 400 or response.status_code in also_ok:
            return response.content
        try:
            body = msgspec.json.decode(response.content, type=_ErrorBody)
        except msgspec.DecodeError:
            body = _ErrorBody(message=response.text[:200])
        raise CommandRejected(body.message, code=_code(body.error))

    async def read(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        also_ok: frozenset[int] = frozenset(),
        *,
        as_caller: bool = False,
    ) -> bytes:
        """A GET with the gateway's own credential, or with its caller's (`as_caller`: what
        the gateway's own viewer key may not read); raises CommandRejected for the
        engine's error answers (but the statuses in `also_ok`: a probe's 503 is an answer)
        and `not_ready` when it does not answer."""
        body, _ = await self.read_with_headers(path, params, also_ok, as_caller=as_caller)
        return body

    async def read_with_headers(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        also_ok: frozenset[int] = frozenset(),
        *,
        as_caller: bool = False,
    ) -> tuple[bytes, httpx.Headers]:
        """`read`, with the answer's headers."""
        self.stats.reads += 1
        query = {k: v for k, v in (params or {}).items() if v is not None}
        headers = self._forwarded_headers() if as_caller else self._own
        try:
            response = await self._http.get(path, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return self._answered(response, also_ok), response.headers

    async def command(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """A command with its caller's credential and request id; sent again (at most
        COMMAND_ATTEMPTS times) when the connection failed before an answer."""
        headers = self._forwarded_headers()
        if body is not None:
            headers["content-type"] = "application/json"
        label = f"{method} {path if '/strategies/' not in path else '/api/strategies/{id}'}"
        started = time.perf_counter()
        for attempt in range(1, COMMAND_ATTEMPTS + 1):
            try:
                response = await self._http.request(method, path, content=body, headers=headers)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if attempt == COMMAND_ATTEMPTS:
                    self.stats.forwarded[f"{label} unreachable"] += 1
                    raise self._unreachable(exc) from None
                logger.warning(
                    "engine link: %s %s failed (%s); sending it again", method, path, exc
                )
                await asyncio.sleep(RETRY_PAUSE_S * attempt)
                continue
            except httpx.HTTPError as exc:  # a timeout: the engine may have done it
                self.stats.forwarded[f"{label} unreachable"] += 1
                raise self._unreachable(exc) from None
            self.stats.command_seconds.observe(time.perf_counter() - started)
            self.stats.forwarded[f"{label} {response.status_code}"] += 1
            return self._answered(response)
        raise AssertionError("unreachable")

    def _forwarded_headers(self) -> dict[str, str]:
        headers = {GATEWAY_HEADER: self._token}
        caller = CALLER.get()
        if caller is not None:
            headers.update({k: v for k, v in caller.headers.items() if k in CREDENTIAL_HEADERS})
            headers["x-forwarded-for"] = caller.forwarded_for
        # The request id RequestContext bound for this request: one id in both logs.
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            headers["x-request-id"] = str(request_id)
        return headers

    async def relay(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> httpx.Response:
        """A request passed to the engine as it came (its caller's headers), answered as
        the engine answers it: for what the engine alone holds (research jobs)."""
        try:
            return await self._http.request(method, target, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    @asynccontextmanager
    async def stream(self, path: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """A streaming GET with the gateway's own credential (no read timeout)."""
        timeout = httpx.Timeout(10.0, read=None)
        try:
            async with self._http.stream(
                "GET", path, headers=self._own, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._answered(response)
                self.stats.up = True
                yield response.aiter_raw()
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
