"""Binance's REST API over aiohttp: public and signed calls, each counted against the rate
limiter before it leaves and classified when it comes back.

Signed calls carry `timestamp` (our clock plus the offset to Binance's, kept by
`sync_time`), `recvWindow` and the signature over the query string exactly as sent, with
the key in `X-MBX-APIKEY`. A -1021 (our clock outside the window) resyncs and retries
once; anything else comes back as the errors of `veloz.binance.errors`, never silently.
"""

import json
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from veloz.binance.errors import (
    INVALID_TIMESTAMP,
    UNAUTHORIZED_CODES,
    UNKNOWN_OUTCOME_CODES,
    BinanceError,
    RateLimited,
    UnknownOutcome,
)
from veloz.binance.limits import RateLimiter
from veloz.binance.signing import Credentials
from veloz.binance.stats import RestStats

# Each call's share of the weight: GET /api/v3/time weighs 1.
_TIME_WEIGHT = 1


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def format_param(value: object) -> str:
    """A parameter as Binance reads it: decimals in plain notation (no exponent), enums by
    value, booleans lower case, lists (`symbols`) as a JSON array."""
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps([format_param(item) for item in value], separators=(",", ":"))
    return str(getattr(value, "value", value))


class BinanceRest:
    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        limiter: RateLimiter,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 10.0,
        recv_window_ms: int = 5000,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.limiter = limiter
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.recv_window_ms = recv_window_ms
        self._wall_ms = wall_ms
        self.offset_ms = 0
        self.stats = RestStats()

    # -- calls -----------------------------------------------------------------------------

    async def public(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        *,
        weight: int = 1,
    ) -> Any:
        query = urlencode([(k, format_param(v)) for k, v in (params or {}).items()])
        await self.limiter.acquire(weight)
        return await self._send(method, path, query, signed=False)

    async def signed(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        *,
        weight: int = 1,
        orders: int = 0,
    ) -> Any:
        if self.credentials is None:
            raise BinanceError(path, 0, None, "this call needs an API key; none is configured")
        await self.limiter.acquire(weight, orders)
        try:
            return await self._send(method, path, self._signed_query(params), signed=True)
        except BinanceError as error:
            if error.code != INVALID_TIMESTAMP:
                raise
            stale = error
        # Our clock drifted outside recvWindow: learn Binance's time again and retry once
        # (a -1021 means the request was refused, so sending it again is safe).
        try:
            await self.sync_time()
        except BinanceError:
            # Still refused, and certainly not done: say so, not "unknown outcome" of
            # the time request.
            raise stale from None
        await self.limiter.acquire(weight, orders)
        return await self._send(method, path, self._signed_query(params), signed=True)

    def _signed_query(self, params: Mapping[str, object] | None) -> str:
        assert self.credentials is not None
        items = [(k, format_param(v)) for k, v in (params or {}).items()]
        items += [
            ("recvWindow", str(self.recv_window_ms)),
            ("timestamp", str(self._wall_ms() + self.offset_ms)),
        ]
        query = urlencode(items)
        # An Ed25519 signature is base64: its + / = must travel percent-encoded.
        return f"{query}&signature={quote(self.credentials.signer.sign(query), safe='')}"

    def sign_params(self, params: Mapping[str, object]) -> dict[str, str]:
        """Parameters for a signed WebSocket API request: `apiKey` and `timestamp` added,
        signed over all of them sorted by name, as the WebSocket API prescribes."""
        if self.credentials is None:
            raise BinanceError("ws-api", 0, None, "signing needs an API key; none is configured")
        signed = {k: format_param(v) for k, v in params.items()}
        signed["apiKey"] = self.credentials.api_key
        signed["timestamp"] = str(self._wall_ms() + self.offset_ms)
        signed.setdefault("recvWindow", str(self.recv_window_ms))
        payload = "&".join(f"{k}={signed[k]}" for k in sorted(signed))
        signed["signature"] = self.credentials.signer.sign(payload)
        return signed

    async def sync_time(self) -> int:
        """Binance's clock minus ours, in ms (half the round trip allowed for)."""
        await self.limiter.acquire(_TIME_WEIGHT)
        sent = self._wall_ms()
        answer = await self._send("GET", "/api/v3/time", "", signed=False)
        received = self._wall_ms()
        self.offset_ms = int(answer["serverTime"]) - (sent + received) // 2
        self.stats.time_offset_ms = self.offset_ms
        self.stats.time_syncs += 1
        return self.offset_ms

    # -- the wire --------------------------------------------------------------------------

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def _send(self, method: str, path: str, query: str, *, signed: bool) -> Any:
        stats = self.stats
        stats.requests[path] += 1
        headers = {"X-MBX-APIKEY": self.credentials.api_key} if signed and self.credentials else {}
        # Binance takes the parameters in the query string for every method. `encoded`:
        # sent byte for byte as signed (aiohttp would otherwise re-quote it, e.g. turn
        # %5B back into `[`, and Binance would check the signature against other bytes).
        url = URL(
            f"{self.base_url}{path}?{query}" if query else f"{self.base_url}{path}", encoded=True
        )
        started = time.perf_counter()
        sent_at = self.limiter.now()
        try:
            async with self._session_now().request(
                method, url, headers=headers, timeout=self._timeout
            ) as response:
                self.limiter.observe(response.headers, sent_at=sent_at)
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except TimeoutError:
            timed_out = UnknownOutcome(path, 0, None, "timed out")
            raise self._failed(path, "timeout", timed_out) from None
        except aiohttp.ClientError as exc:
            reason = type(exc).__name__
            raise self._failed(
                path, "connection", UnknownOutcome(path, 0, None, f"connection failed: {reason}")
            ) from None
        finally:
            stats.latency[path].observe(time.perf_counter() - started)
        if status < 300:
            if signed:
                stats.key_refused = None  # the key works (again)
            return _json(body, path, status)
        error = self._refused(path, status, body, retry_after)
        if signed and error.code in UNAUTHORIZED_CODES:
            # Revoked, expired, or no longer allowed from this IP: health says so until a
            # signed call succeeds again.
            stats.key_refused = str(error)
        raise error

    def _refused(
        self, path: str, status: int, body: bytes, retry_after: str | None
    ) -> BinanceError:
        code, msg = _error_body(body)
        if status in (418, 429):
            seconds = _seconds(retry_after)
            banned = status == 418
            self.limiter.back_off(seconds, banned=banned)
            error: BinanceError = RateLimited(
                path, status, code, msg, retry_after_s=seconds, banned=banned
            )
        elif status >= 500 or code in UNKNOWN_OUTCOME_CODES:
            error = UnknownOutcome(path, status, code, msg)
        else:
            error = BinanceError(path, status, code, msg)
        kind = str(code) if code is not None else "5xx" if status >= 500 else f"http_{status}"
        return self._failed(path, kind, error)

    def _failed(self, path: str, kind: str, error: BinanceError) -> BinanceError:
        self.stats.errors[(path, kind)] += 1
        self.stats.last_error[path] = str(error)
        return error

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _json(body: bytes, path: str, status: int) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise UnknownOutcome(path, status, None, "answer is not JSON") from None


def _error_body(body: bytes) -> tuple[int | None, str]:
    try:
        data = json.loads(body)
    except ValueError:
        return None, body[:200].decode(errors="replace").strip() or "no message"
    if isinstance(data, dict):
        code = data.get("code")
        return (int(code) if isinstance(code, int) else None), str(data.get("msg", ""))
    return None, str(data)[:200]


def _seconds(retry_after: str | None) -> float:
    try:
        return max(float(retry_after), 1.0) if retry_after is not None else 60.0
    except ValueError:
        return 60.0
