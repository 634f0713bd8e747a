"""Who may call which route, in one table, and the middleware that enforces it: client
address (through trusted proxies only), rate limits per address and per credential,
authentication, the role check, security headers, and an audit record of every mutating
request and every refused credential.

A route missing from ROUTE_ROLES is refused to everyone but admins (and a test generated
from the app's routes fails), so a new route cannot be public by accident.
"""

import hmac
import ipaddress
import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import (
    ASGIApp,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from veloz.api.errors import http_status
from veloz.api.headers import header_pairs, request_headers, set_headers
from veloz.api.request_context import request_id_of
from veloz.auth.roles import Role
from veloz.auth.service import AuthError, AuthService, Principal, gateway_token
from veloz.model.errors import ErrorCode
from veloz.persistence.store import AuditRecord
from veloz.risk.rate import TokenBucket

audit_log = logging.getLogger("veloz.audit")

PUBLIC = None
# (method, route) -> the least role that may call it; PUBLIC needs no credential.
# "WS" is a WebSocket upgrade.
ROUTE_ROLES: dict[tuple[str, str], Role | None] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/health/startup"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/"): PUBLIC,  # the dashboard's static files hold no data
    ("GET", "/{file_path}"): PUBLIC,
    ("HEAD", "/{file_path}"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,  # the body is the credential
    ("POST", "/api/auth/refresh"): PUBLIC,
    ("POST", "/api/auth/logout"): PUBLIC,
    ("GET", "/api/market"): Role.VIEWER,
    ("GET", "/api/market/{symbol}/book"): Role.VIEWER,
    ("GET", "/api/market/{symbol}/bars"): Role.VIEWER,
    ("GET", "/api/instruments"): Role.VIEWER,
    ("GET", "/api/equity"): Role.VIEWER,
    ("GET", "/api/order_state"): Role.VIEWER,
    ("GET", "/api/orders"): Role.VIEWER,
    ("GET", "/api/orders_state"): Role.VIEWER,
    ("GET", "/api/trades"): Role.VIEWER,
    ("GET", "/api/account"): Role.VIEWER,
    ("GET", "/api/positions"): Role.VIEWER,
    ("GET", "/api/execution/ping"): Role.VIEWER,
    ("GET", "/api/execution/orphans"): Role.VIEWER,
    ("GET", "/api/risk/limits"): Role.VIEWER,
    ("GET", "/api/risk/status"): Role.VIEWER,
    ("GET", "/api/stream"): Role.VIEWER,
    ("GET", "/api/internal/feed"): Role.VIEWER,  # a gateway's market data
    ("WS", "/ws/market"): Role.VIEWER,
    ("WS", "/ws/orders"): Role.VIEWER,
    ("GET", "/api/auth/me"): Role.VIEWER,
    ("POST", "/api/order"): Role.TRADER,
    ("POST", "/api/cancel"): Role.TRADER,
    ("POST", "/api/cancel_all"): Role.TRADER,
    ("GET", "/api/strategies"): Role.VIEWER,
    ("GET", "/api/strategies/catalog"): Role.VIEWER,
    ("GET", "/api/strategies/{strategy_id}"): Role.VIEWER,
    # Strategies place orders: managing them is a trader's business, as placing orders is.
    ("POST", "/api/strategies"): Role.TRADER,
    ("DELETE", "/api/strategies/{strategy_id}"): Role.TRADER,
    ("POST", "/api/strategies/{strategy_id}/start"): Role.TRADER,
    ("POST", "/api/strategies/{strategy_id}/stop"): Role.TRADER,
    ("POST", "/api/strategies/{strategy_id}/pause"): Role.TRADER,
    ("POST", "/api/strategies/{strategy_id}/resume"): Role.TRADER,
    # Backtests and optimisations read data and use the machine's cores: running,
    # cancelling and deleting them is a trader's business; reading them a viewer's.
    ("GET", "/api/backtests"): Role.VIEWER,
    ("GET", "/api/backtests/{job_id}"): Role.VIEWER,
    ("GET", "/api/backtests/{job_id}/report"): Role.VIEWER,
    ("POST", "/api/backtests"): Role.TRADER,
    ("POST", "/api/backtests/{job_id}/cancel"): Role.TRADER,
    ("DELETE", "/api/backtests/{job_id}"): Role.TRADER,
    ("GET", "/api/optimizations"): Role.VIEWER,
    ("GET", "/api/optimizations/{job_id}"): Role.VIEWER,
    ("GET", "/api/optimizations/{job_id}/report"): Role.VIEWER,
    ("GET", "/api/optimizations/{job_id}/results"): Role.VIEWER,
    ("POST", "/api/optimizations"): Role.TRADER,
    ("POST", "/api/optimizations/{job_id}/cancel"): Role.TRADER,
    ("DELETE", "/api/optimizations/{job_id}"): Role.TRADER,
    ("GET", "/api/config"): Role.ADMIN,
    ("POST", "/api/admin/maintenance"): Role.ADMIN,
    ("POST", "/api/admin/ready"): Role.ADMIN,
    ("POST", "/api/admin/readonly"): Role.ADMIN,
    ("POST", "/api/admin/readwrite"): Role.ADMIN,
    ("POST", "/api/admin/reload-config"): Role.ADMIN,
    ("POST", "/api/admin/reset-breaker"): Role.ADMIN,
    ("POST", "/api/admin/log-level"): Role.ADMIN,
    ("POST", "/api/admin/checkpoint"): Role.ADMIN,
    ("GET", "/api/audit/logs"): Role.ADMIN,
    ("GET", "/api/auth/keys"): Role.ADMIN,
    ("POST", "/api/auth/keys"): Role.ADMIN,
    ("DELETE", "/api/auth/keys/{key_id}"): Role.ADMIN,
    ("GET", "/api/auth/users"): Role.ADMIN,
    ("POST", "/api/auth/users"): Role.ADMIN,
    ("POST", "/api/auth/users/{user_id}/password"): Role.ADMIN,
    ("POST", "/api/auth/users/{user_id}/disable"): Role.ADMIN,
    ("POST", "/api/auth/users/{user_id}/enable"): Role.ADMIN,
}
# The API documentation is public: it describes routes, it holds no data.
PUBLIC_PREFIXES = ("/schema",)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Fields whose values never reach the audit trail (or anything else).
SECRET_PARAMS = frozenset({"password", "refresh_token", "access_token", "key", "token", "secret"})
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
_SECURITY_PAIRS = header_pairs(SECURITY_HEADERS)
_AUDIT_BODY_BYTES = 16 * 1024
# A command a gateway forwards carries this header, holding `auth.service.gateway_token`.
# From a trusted proxy and with the right token it means: the gateway has counted it
# against its caller's limits and audits it, so the engine checks the credential and the
# role again but neither counts nor audits it a second time. Gateways themselves never
# honour it (`honour_gateways`).
GATEWAY_HEADER = "x-veloz-gateway"


class SharedLimit(Protocol):
    """A per-credential rate limit shared by every replica (a gateway's is in Redis)."""

    async def take(self, key: str) -> tuple[bool, int, float]:
        """(allowed, tokens left, seconds until the next one)."""
        ...


_PARAM_TYPE = re.compile(r"\{(\w+):\w+\}")


def route_template(path: str) -> str:
    """`/api/market/{symbol:str}/bars` -> `/api/market/{symbol}/bars`: routes as the table
    names them, whether they come from the app's route list or a request's scope."""
    return _PARAM_TYPE.sub(r"{\1}", path)


def required_role(method: str, route: str) -> Role | None:
    """The least role for a route; routes missing from the table need admin (fail closed)."""
    if route.startswith(PUBLIC_PREFIXES):
        return PUBLIC
    return ROUTE_ROLES.get((method, route_template(route)), Role.ADMIN)


class AccessConfig(msgspec.Struct, frozen=True, kw_only=True):
    api_rate_limit: float = 100.0
    api_ip_rate_limit: float = 1000.0
    login_rate_limit: float = 1.0
    trusted_proxies: tuple[str, ...] = ()


class _Buckets:
    """Token buckets by key, the least recently used dropped beyond `size`."""

    def __init__(self, rate: float, now_ns: Callable[[], int], size: int = 10_000) -> None:
        self._rate, self._now_ns, self._size = rate, now_ns, size
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> TokenBucket | None:
        """The bucket if it had a token for `key`, else None (then `retry_after`)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._now_ns)
            if len(self._buckets) > self._size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket if bucket.take() else None

    def retry_after(self, key: str) -> float:
        bucket = self._buckets.get(key)
        return bucket.retry_after_s() if bucket else 0.0

    @property
    def rate(self) -> float:
        return self._rate


@dataclass(frozen=True, slots=True)
class _Call:
    """One request or WebSocket upgrade, as access control sees it."""

    scope: Scope
    method: str
    route: str
    client_ip: str
    headers: dict[str, str]
    required: Role | None


class AccessControl(ASGIMiddleware):
    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(
        self,
        auth: AuthService,
        config: AccessConfig,
        record_audit: Callable[[AuditRecord], None] | None = None,
        *,
        now_ns: Callable[[], int] = time.time_ns,
        shared_limit: SharedLimit | None = None,
        honour_gateways: bool = True,
    ) -> None:
        self._auth = auth
        self._shared_limit = shared_limit
        self._gateway_token = gateway_token(auth.config) if honour_gateways else None
        self._config = config
        self._record_audit = record_audit
        self._now_ns = now_ns
        self._per_ip = _Buckets(config.api_ip_rate_limit, now_ns)
        self._per_credential = _Buckets(config.api_rate_limit, now_ns)
        self._logins = _Buckets(config.login_rate_limit, now_ns)
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in config.trusted_proxies]
        # Refusals by answer code (unauthorized, forbidden, rate_limit_exceeded, ...), for
        # /metrics: a burst of them is a brute force or a misconfigured client.
        self.refused: Counter[str] = Counter()

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        websocket = scope["type"] == ScopeType.WEBSOCKET
        method = "WS" if websocket else str(scope.get("method", "GET"))
        route = str(scope.get("path_template", scope.get("path", "")))
        headers = request_headers(scope)
        call = _Call(
            scope,
            method,
            route,
            self.client_ip(scope, headers),
            headers,
            required_role(method, route),
        )
        limit_headers: dict[str, str] = {}
        principal: Principal | None = None
        forwarded = self._from_gateway(scope, headers)
        try:
            if method == "OPTIONS":  # CORS preflights carry no credentials
                principal = self._anonymous(call.client_ip)
            else:
                # No await on the common path: an order pays for no coroutine it needs not.
                if forwarded:
                    principal = await self._authenticate_forwarded(call)
                else:
                    principal = self._authenticate(call)
                self._authorize(call, principal)
                if not forwarded and (actor := self._limited_actor(call, principal)):
                    if self._shared_limit is None:
                        limit_headers = self._limit(actor)
                    else:
                        limit_headers = await self._limit_shared(actor)
        except AuthError as refused:
            self.refused[refused.code] += 1
            if not forwarded:
                self._audit_refusal(call, principal, refused)
            await self._refuse(send, websocket, refused)
            return
        scope.setdefault("state", {})["principal"] = principal
        audited = method in MUTATING and not forwarded
        body = bytearray()
        answered = False

        def audit(status: int) -> None:
            nonlocal answered
            answered = True
            self._audit(call, principal, _params(bytes(body), scope), str(status))

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_headers(message, [*_SECURITY_PAIRS, *header_pairs(limit_headers)])
                # Before the client sees a byte of the answer: a kill -9 after the
                # answer cannot lose the record of what was done.
                if audited:
                    audit(message["status"])
            await send(message)

        async def keep_body() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.request" and len(body) < _AUDIT_BODY_BYTES:
                body.extend(message.get("body", b"")[: _AUDIT_BODY_BYTES - len(body)])
            return message

        await next_app(scope, keep_body if audited else receive, capture)
        if audited and not answered:  # the app ended without an answer
            audit(0)

    # -- who is calling ----------------------------------------------------------------

    def client_ip(self, scope: Scope, headers: dict[str, str]) -> str:
        """The peer's address, or, when the peer is a trusted proxy, the last address in
        X-Forwarded-For that is not one of ours (the client as our first proxy saw it)."""
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._proxies or not self._trusted(peer):
            return str(peer)
        forwarded = headers.get("x-forwarded-for", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop
        return str(peer)

    def _from_gateway(self, scope: Scope, headers: dict[str, str]) -> bool:
        shown = headers.get(GATEWAY_HEADER)
        if shown is None or self._gateway_token is None or not self._proxies:
            return False
        if not hmac.compare_digest(shown.encode(), self._gateway_token.encode()):
            return False
        client = scope.get("client")
        return client is not None and self._trusted(str(client[0]))

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._proxies)

    def _anonymous(self, client_ip: str) -> Principal:
        # Auth off (the dev preset): everything is allowed, and the audit names the address.
        return Principal(kind="anonymous", name=client_ip, role=Role.ADMIN)

    async def _authenticate_forwarded(self, call: _Call) -> Principal | None:
        """As `_authenticate`, uncounted, for a request a gateway forwards: a credential
        unknown here makes the engine read users and keys again once (the gateway knew it:
        it was created or changed through another replica since the last reload)."""
        try:
            return self._authenticate(call, counted=False)
        except AuthError as refused:
            if refused.code is not ErrorCode.UNAUTHORIZED or not await self._auth.catch_up():
                raise
        return self._authenticate(call, counted=False)

    def _authenticate(self, call: _Call, *, counted: bool = True) -> Principal | None:
        if counted and call.required is not PUBLIC and not self._per_ip.take(call.client_ip):
            raise AuthError(
                ErrorCode.RATE_LIMIT_EXCEEDED,
                f"too many requests from {call.client_ip}",
                self._per_ip.retry_after(call.client_ip),
            )
        if not self._auth.enabled:
            return self._anonymous(call.client_ip)
        query = parse_qs(call.scope.get("query_string", b"").decode("latin-1"))
        principal = self._auth.authenticate(
            authorization=call.headers.get("authorization"),
            api_key=call.headers.get("x-api-key"),
            # Tokens in URLs only where browsers cannot send headers: streams.
            query_token=query.get("token", [None])[0] if call.method in ("GET", "WS") else None,
            client_ip=call.client_ip,
        )
        return principal

    def _authorize(self, call: _Call, principal: Principal | None) -> None:
        if call.required is PUBLIC:
            return
        if principal is None:
            raise AuthError(
                ErrorCode.UNAUTHORIZED, "credentials required: a Bearer token or X-API-Key"
            )
        if not principal.role.allows(call.required):
            raise AuthError(
                ErrorCode.FORBIDDEN,
                f"{call.method} {call.route} needs the {call.required} role; "
                f"{principal.actor} is {principal.role}",
            )

    def _limited_actor(self, call: _Call, principal: Principal | None) -> str | None:
        """Limits login attempts per address; answers the credential whose own limit
        this request counts against, if any."""
        if call.route == "/api/auth/login" and not self._logins.take(call.client_ip):
            raise AuthError(
                ErrorCode.RATE_LIMIT_EXCEEDED,
                "too many login attempts from this address",
                self._logins.retry_after(call.client_ip),
            )
        if principal is None or principal.kind == "anonymous" or call.required is PUBLIC:
            return None
        return principal.actor

    def _limit(self, actor: str) -> dict[str, str]:
        bucket = self._per_credential.take(actor)
        if bucket is None:
            raise AuthError(
                ErrorCode.RATE_LIMIT_EXCEEDED,
                f"too many requests for {actor}",
                self._per_credential.retry_after(actor),
            )
        return self._limit_headers(int(bucket.tokens))

    async def _limit_shared(self, actor: str) -> dict[str, str]:
        assert self._shared_limit is not None
        allowed, left, retry_after = await self._shared_limit.take(actor)
        if not allowed:
            raise AuthError(
                ErrorCode.RATE_LIMIT_EXCEEDED, f"too many requests for {actor}", retry_after
            )
        return self._limit_headers(left)

    def _limit_headers(self, left: int) -> dict[str, str]:
        return {
            "x-ratelimit-limit": f"{self._per_credential.rate:g}",
            "x-ratelimit-remaining": str(left),
        }

    async def _refuse(self, send: Send, websocket: bool, refused: AuthError) -> None:
        status = http_status(refused.code)
        if websocket:
            # Before the upgrade is accepted, so the handshake itself is refused (uvicorn
            # answers it 403); the close code says why to servers that pass it on.
            await send({"type": "websocket.close", "code": 4000 + status, "reason": ""})
            return
        body = msgspec.json.encode({"error": refused.code, "message": refused.message})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += _SECURITY_PAIRS
        if status == 429:
            retry_after = max(1, round(refused.retry_after_s + 0.5))
            headers.append((b"retry-after", str(retry_after).encode()))
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="veloz"'))
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": headers,
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # -- the audit trail ---------------------------------------------------------------

    def _audit(
        self, call: _Call, principal: Principal | None, params: dict[str, Any], result: str
    ) -> None:
        self._write_audit(
            AuditRecord(
                ts_ns=self._now_ns(),
                actor=principal.actor if principal else f"anonymous:{call.client_ip}",
                action=f"{call.method} {call.route}",
                target=str(call.scope.get("path", "")),
                params=params,
                result=result,
                client_ip=call.client_ip,
                request_id=request_id_of(call.scope),
            )
        )

    def _audit_refusal(self, call: _Call, principal: Principal | None, refused: AuthError) -> None:
        status = http_status(refused.code)
        if status not in (401, 403) and call.method not in MUTATING:
            return  # a throttled read is answered 429, not audited
        self._audit(call, principal, {}, f"{status} {refused.code}")

    def _write_audit(self, record: AuditRecord) -> None:
        if audit_log.isEnabledFor(logging.INFO):  # one per order: skip the encoding if unseen
            audit_log.info(
                "audit %s by %s from %s: %s %s",
                record.action,
                record.actor,
                record.client_ip,
                record.result,
                msgspec.json.encode(record.params, enc_hook=str).decode(),
            )
        if self._record_audit is not None:
            try:
                self._record_audit(record)
            except Exception:  # the request is answered regardless: the log line has it
                audit_log.exception("audit record of %s not kept", record.action)


def _params(body: bytes, scope: Scope) -> dict[str, Any]:
    """The request's parameters for the audit trail: the JSON or form body and the query,
    with secret fields replaced by ***."""
    params: dict[str, Any] = {}
    if query_string := scope.get("query_string", b""):
        query = parse_qs(query_string.decode("latin-1"))
        params.update({k: v[0] if len(v) == 1 else v for k, v in query.items()})
    if body:
        try:
            decoded = msgspec.json.decode(body)
        except msgspec.DecodeError:
            decoded = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
        if isinstance(decoded, dict):
            params.update(decoded)
    return {k: "***" if k.lower() in SECRET_PARAMS else _storable(v) for k, v in params.items()}


_PLAIN = frozenset({str, float, bool, type(None)})


def _storable(value: Any) -> Any:
    """`value` with integers too large for the stores' encodings (beyond 64 bits) as text:
    a client may send anything, and its audit record must still be kept."""
    if type(value) in _PLAIN:  # most of every order's fields, and bool before int
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    return value
