"""Authentication and roles through the API, in process: the route x role matrix generated
from the app's own routes, tokens (expiry, refresh rotation, revocation), lockout, API key
IP allowlists and expiry, rate-limit headers, and an audit row for each mutation."""

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import jwt
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute, WebSocketRoute

from tests.support.asgi import http_scope
from veloz.api.access import PUBLIC, ROUTE_ROLES, required_role, route_template
from veloz.auth.roles import Role
from veloz.auth.service import AuthConfig, AuthService, gateway_token
from veloz.config import Settings
from veloz.model.queries import AuditQuery
from veloz.persistence.service import HistoryConfig, HistoryService
from veloz.runtime.history import attach_history
from veloz.runtime.live import LiveEngine
from veloz.runtime.service import service_app

JWT_SECRET = "9f2c1e7a4b8d6f0e3a5c7b9d1f3e5a7c9b1d3f5e7a9c1b3d"
ADMIN_PASSWORD = "correct horse battery"
CLIENT = ("10.1.2.3", 40000)


@dataclass
class Clock:
    now: int = 1_800_000_000_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


@dataclass
class Secured:
    app: Litestar
    auth: AuthService
    history: HistoryService
    clock: Clock
    keys: dict[Role, str] = field(default_factory=dict)

    def client(self, address: tuple[str, int] = CLIENT) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=address)  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url="http://veloz.test")


async def secure(engine: LiveEngine, tmp_path, **limits: float) -> AsyncIterator[Secured]:
    clock = Clock()
    history = attach_history(HistoryConfig(url=f"sqlite:///{tmp_path / 'h.db'}"), engine)
    await history.start()
    auth = AuthService(
        AuthConfig(
            enabled=True,
            jwt_secret=JWT_SECRET,
            admin_password=ADMIN_PASSWORD,
            access_ttl_s=60,
            refresh_ttl_s=3600,
            max_failed_logins=3,
            lockout_s=300,
        ),
        history.store,
        clock,
    )
    await auth.start()
    rates = {"api_rate_limit": 1e6, "api_ip_rate_limit": 1e6, "login_rate_limit": 1e6} | limits
    settings = Settings(market_symbol="BTCUSDT,ETHUSDT", **rates)  # type: ignore[arg-type]
    app = service_app(engine, settings, history, auth=auth)
    secured = Secured(app, auth, history, clock)
    for role in Role:
        secured.keys[role] = (await auth.create_key(f"{role} key", role)).key
    yield secured
    await auth.stop()
    await history.stop()


@pytest.fixture
async def secured(engine: LiveEngine, tmp_path) -> AsyncIterator[Secured]:
    async for it in secure(engine, tmp_path):
        yield it


def concrete(path: str) -> str:
    """A route template with its parameters filled in."""
    return re.sub(
        r"\{(\w+)\}",
        lambda m: {"symbol": "BTCUSDT", "file_path": "index.html"}.get(m.group(1), "nothing"),
        path,
    )


def routes(app: Litestar) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            found.append(("WS", route_template(route.path)))
        elif isinstance(route, HTTPRoute):
            template = route_template(route.path)
            found += [(m, template) for m in sorted(route.methods) if m != "OPTIONS"]
    return found


def test_every_route_declares_its_role(secured: Secured):
    undeclared = [
        (method, path)
        for method, path in routes(secured.app)
        if (method, path) not in ROUTE_ROLES and not path.startswith("/schema")
    ]
    assert not undeclared, f"routes without a role in ROUTE_ROLES: {undeclared}"
    stale = set(ROUTE_ROLES) - set(routes(secured.app))
    assert not stale, f"ROUTE_ROLES names routes that do not exist: {stale}"
    assert required_role("POST", "/api/not-in-the-table") is Role.ADMIN  # fails closed


def policy(method: str, path: str) -> Role | None:
    """The security policy in words (the issue's), to hold the table to."""
    if path.startswith(("/health", "/metrics", "/schema")) or not path.startswith(("/api", "/ws")):
        return PUBLIC
    if path in ("/api/auth/login", "/api/auth/refresh", "/api/auth/logout"):
        return PUBLIC
    if path.startswith(
        ("/api/admin", "/api/auth/keys", "/api/auth/users", "/api/config", "/api/audit")
    ):
        return Role.ADMIN
    if method == "POST" and path in ("/api/order", "/api/cancel", "/api/cancel_all"):
        return Role.TRADER
    if path.startswith("/api/strategies") and method in ("POST", "DELETE"):
        return Role.TRADER  # strategies place orders: managing them is a trader's business
    if path.startswith(("/api/backtests", "/api/optimizations")) and method in ("POST", "DELETE"):
        return Role.TRADER  # research jobs use the machine: running them is a trader's business
    if method in ("GET", "WS"):
        return Role.VIEWER  # reads and the streams
    return Role.ADMIN


def test_the_table_follows_the_policy(secured: Secured):
    for method, path in routes(secured.app):
        assert required_role(method, path) == policy(method, path), (method, path)


async def test_route_role_matrix(secured: Secured):
    checked = 0
    async with secured.client() as client:
        for method, path in routes(secured.app):
            required = required_role(method, path)
            if method == "WS":
                continue  # WebSockets: tests/e2e/test_security.py, against a real server
            url = concrete(path)
            # These never end: only refusals are checked here.
            streaming = path in ("/api/stream", "/api/internal/feed")

            async def call(key: str | None, method: str = method, url: str = url) -> int:
                headers = {"X-API-Key": key} if key else {}
                answer = await client.request(
                    method, url, headers=headers, json={} if method in ("POST", "DELETE") else None
                )
                return answer.status_code

            if required is PUBLIC:
                assert await call(None) not in (401, 403), (method, path)
                checked += 1
                continue
            assert await call(None) == 401, (method, path)
            for role in Role:
                if role.allows(required):
                    if not streaming:
                        assert await call(secured.keys[role]) not in (401, 403), (
                            method,
                            path,
                            role,
                        )
                else:
                    assert await call(secured.keys[role]) == 403, (method, path, role)
            checked += 1
    assert checked > 40


async def test_login_refresh_rotation_and_logout(secured: Secured):
    async with secured.client() as client:
        bad = await client.post(
            "/api/auth/login", json={"user_id": "admin", "password": "nope-nope-nope"}
        )
        assert bad.status_code == 401 and ADMIN_PASSWORD not in bad.text
        login = await client.post(
            "/api/auth/login", json={"user_id": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        pair = login.json()
        assert pair["token_type"] == "Bearer" and pair["expires_in"] == 60
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        assert (await client.get("/api/config", headers=bearer)).status_code == 200
        me = (await client.get("/api/auth/me", headers=bearer)).json()
        assert me == {"kind": "user", "name": "admin", "role": "admin"}

        secured.clock.advance(61)  # the access token expires...
        assert (await client.get("/api/account", headers=bearer)).status_code == 401
        refreshed = await client.post(
            "/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 200  # ...the refresh token still works, once
        again = await client.post(
            "/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert again.status_code == 401
        new = refreshed.json()
        fresh = {"Authorization": f"Bearer {new['access_token']}"}
        assert (await client.get("/api/account", headers=fresh)).status_code == 200

        out = await client.post("/api/auth/logout", json={"refresh_token": new["refresh_token"]})
        assert out.json() == {"ok": True, "changed": True}
        after = await client.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]})
        assert after.status_code == 401


async def test_forged_and_other_secret_tokens_are_refused(secured: Secured):
    forged = jwt.encode({"sub": "admin", "role": "admin", "exp": 4_000_000_000}, "x" * 40, "HS256")
    async with secured.client() as client:
        for token in (forged, "not-a-jwt", "vz_nothing_here"):
            answer = await client.get("/api/account", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith(
                "Bearer"
            )


async def test_repeated_failures_lock_the_user_out(secured: Secured):
    async with secured.client() as client:
        for _ in range(3):
            wrong = await client.post(
                "/api/auth/login", json={"user_id": "admin", "password": "wrong-password-1"}
            )
            assert wrong.status_code == 401
        locked = await client.post(
            "/api/auth/login", json={"user_id": "admin", "password": ADMIN_PASSWORD}
        )
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert locked.json()["error"] == "locked_out"
        secured.clock.advance(301)
        assert (
            await client.post(
                "/api/auth/login", json={"user_id": "admin", "password": ADMIN_PASSWORD}
            )
        ).status_code == 200


async def test_login_attempts_are_rate_limited_per_address(engine, tmp_path):
    async for secured in secure(engine, tmp_path, login_rate_limit=2):
        async with secured.client() as client:
            codes = [
                (
                    await client.post(
                        "/api/auth/login", json={"user_id": "x", "password": "y" * 12}
                    )
                ).status_code
                for _ in range(4)
            ]
        assert codes[:2] == [401, 401] and codes[-1] == 429


async def test_api_keys_honour_their_ip_allowlist_expiry_and_revocation(secured: Secured):
    key = await secured.auth.create_key("office", Role.TRADER, allowed_ips=["10.1.2.0/24"])
    expiring = await secured.auth.create_key(
        "soon", Role.VIEWER, expires_ns=secured.clock.now + 10**9
    )
    async with secured.client() as inside, secured.client(("192.0.2.9", 5)) as outside:
        assert (await inside.get("/api/account", headers={"X-API-Key": key.key})).status_code == 200
        refused = await outside.get("/api/account", headers={"X-API-Key": key.key})
        assert (
            refused.status_code == 403
            and "192.0.2.9" in refused.text
            and key.key not in refused.text
        )
        assert (
            await inside.get("/api/account", headers={"X-API-Key": expiring.key})
        ).status_code == 200
        secured.clock.advance(2)
        assert (
            await inside.get("/api/account", headers={"X-API-Key": expiring.key})
        ).status_code == 401
        admin = {"X-API-Key": secured.keys[Role.ADMIN]}
        assert (
            await inside.delete(f"/api/auth/keys/{key.key_id}", headers=admin)
        ).status_code == 200
        assert (await inside.get("/api/account", headers={"X-API-Key": key.key})).status_code == 401
        listed = (await inside.get("/api/auth/keys", headers=admin)).json()
        assert key.key not in str(listed) and all("key_hash" not in k for k in listed["keys"])


async def test_rate_limits_per_credential_answer_429_with_headers(engine, tmp_path):
    async for secured in secure(engine, tmp_path, api_rate_limit=3):
        headers = {"X-API-Key": secured.keys[Role.VIEWER]}
        async with secured.client() as client:
            answers = [await client.get("/api/account", headers=headers) for _ in range(5)]
        assert answers[0].headers["x-ratelimit-limit"] == "3"
        assert answers[0].headers["x-ratelimit-remaining"] == "2"
        assert answers[-1].status_code == 429 and int(answers[-1].headers["retry-after"]) >= 1
        assert answers[0].headers["x-content-type-options"] == "nosniff"
        async with secured.client() as client:
            assert (await client.get("/api/account")).status_code == 401
            metrics = (await client.get("/metrics")).text
        assert 'veloz_api_refused_total{code="rate_limit_exceeded"} 2.0' in metrics
        assert 'veloz_api_refused_total{code="unauthorized"} 1.0' in metrics


async def test_every_mutation_leaves_an_audit_row_without_secrets(secured: Secured):
    async with secured.client() as client:
        trader = {"X-API-Key": secured.keys[Role.TRADER], "X-Request-ID": "audit-1"}
        placed = await client.post(
            "/api/order",
            headers=trader,
            json={"side": "BUY", "symbol": "BTCUSDT", "qty": 0.01, "price": 40000},
        )
        assert placed.status_code == 200, placed.text
        await client.post("/api/auth/login", json={"user_id": "admin", "password": ADMIN_PASSWORD})
        await client.post("/api/admin/readonly", headers={"X-API-Key": secured.keys[Role.VIEWER]})
        assert await secured.history.flush_audit()
        rows = await secured.history.store.audit_log(AuditQuery(limit=50))
        logs = (
            await client.get("/api/audit/logs", headers={"X-API-Key": secured.keys[Role.ADMIN]})
        ).json()
    by_action = {r.action: r for r in rows}
    order = by_action["POST /api/order"]
    assert (
        order.actor.startswith("key:") and order.result == "200" and order.request_id == "audit-1"
    )
    assert order.params["symbol"] == "BTCUSDT" and order.client_ip == CLIENT[0]
    assert by_action["POST /api/auth/login"].params["password"] == "***"
    assert by_action["POST /api/admin/readonly"].result == "403 forbidden"
    assert ADMIN_PASSWORD not in str(rows) and logs["count"] == len(rows)


async def test_a_mutation_is_audited_before_the_client_sees_its_answer(secured: Secured):
    """A kill -9 right after the answer must not lose the record of what was done."""
    body = b'{"side":"BUY","symbol":"BTCUSDT","qty":0.01,"price":40000}'
    scope = http_scope(
        "POST",
        "/api/order",
        (b"content-type", b"application/json"),
        (b"x-api-key", secured.keys[Role.TRADER].encode()),
        (b"x-request-id", b"audit-first"),
        client=CLIENT,
    )
    audited_at_answer: list[list[str]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            assert await secured.history.flush_audit()
            rows = await secured.history.store.audit_log(AuditQuery(limit=50))
            audited_at_answer.append([r.result for r in rows if r.request_id == "audit-first"])

    await secured.app(scope, receive, send)  # type: ignore[arg-type]
    assert audited_at_answer == [["200"]]


async def test_a_body_the_stores_cannot_encode_is_still_answered_and_audited(secured: Secured):
    huge = 244790983969211518917017600  # beyond 64 bits: msgpack and the stores refuse it
    async with secured.client() as client:
        answer = await client.post(
            "/api/order",
            headers={"X-API-Key": secured.keys[Role.TRADER], "X-Request-ID": "huge-1"},
            content=b'{"side":"BUY","symbol":"BTCUSDT","qty":0.01,"price":40000,"junk":[%d]}'
            % huge,
        )
    assert answer.status_code == 400, answer.text
    assert await secured.history.flush_audit()
    rows = await secured.history.store.audit_log(AuditQuery(limit=50))
    [row] = [r for r in rows if r.request_id == "huge-1"]
    assert row.result == "400" and row.params["junk"] == [str(huge)]


async def test_the_gateway_header_means_something_only_from_a_trusted_proxy(engine, tmp_path):
    """A gateway counts and audits what it forwards; the engine then neither counts nor
    audits it again, but only for a peer in VELOZ_TRUSTED_PROXIES showing the token
    derived from the JWT secret."""
    limits = {"api_rate_limit": 1, "trusted_proxies": "10.1.2.0/24"}
    async for secured in secure(engine, tmp_path, **limits):  # type: ignore[arg-type]
        token = gateway_token(secured.auth.config)
        assert token and JWT_SECRET not in token
        key = secured.keys[Role.VIEWER]
        viewer = {"X-API-Key": key, "X-Veloz-Gateway": token}
        forged = {"X-API-Key": secured.keys[Role.TRADER], "X-Veloz-Gateway": "gw-1"}
        async with secured.client() as gateway, secured.client(("10.9.9.9", 1)) as stranger:
            codes = [(await gateway.get("/api/account", headers=viewer)).status_code for _ in "abc"]
            assert codes == [200, 200, 200]
            # A trusted peer without the token (a client through the proxy) is counted.
            codes = [(await gateway.get("/api/account", headers=forged)).status_code for _ in "ab"]
            assert codes == [200, 429]
            forwarded = await gateway.post(
                "/api/admin/readonly", headers=viewer | {"X-Request-ID": "from-gateway"}
            )
            assert forwarded.status_code == 403  # the role is checked again all the same
            codes = [(await stranger.get("/api/account", headers=viewer)).status_code for _ in "ab"]
            assert codes == [200, 429]
            await stranger.post("/api/admin/readonly", headers=viewer | {"X-Request-ID": "other"})
            # A key another replica made since this one last read the store: from a gateway
            # (which knew it), the engine reads users and keys again once.
            replica = AuthService(secured.auth.config, secured.history.store, secured.clock)
            late = {"X-API-Key": (await replica.create_key("late", Role.VIEWER)).key}
            assert (await stranger.get("/api/positions", headers=late)).status_code == 401
            secured.clock.advance(2)
            known = await gateway.get("/api/positions", headers=late | {"X-Veloz-Gateway": token})
            assert known.status_code == 200, known.text
        assert await secured.history.flush_audit()
        ids = {r.request_id for r in await secured.history.store.audit_log(AuditQuery(limit=50))}
        assert "other" in ids and "from-gateway" not in ids


async def test_requests_per_address_are_limited_before_any_credential(engine, tmp_path):
    async for secured in secure(engine, tmp_path, api_ip_rate_limit=2):
        async with secured.client() as client, secured.client(("10.9.9.9", 1)) as other:
            codes = [(await client.get("/api/account")).status_code for _ in range(3)]
            assert codes == [401, 401, 429]  # no credential needed to be throttled
            assert (await other.get("/api/account")).status_code == 401  # another address
            assert (await client.get("/health")).status_code == 200  # probes are never limited


async def test_the_client_address_comes_through_trusted_proxies_only(engine, tmp_path):
    async for secured in secure(engine, tmp_path):
        key = await secured.auth.create_key("office", Role.VIEWER, allowed_ips=["203.0.113.7/32"])
        forwarded = {"X-API-Key": key.key, "X-Forwarded-For": "203.0.113.7"}
        # Not from a trusted proxy: the header is ignored, the peer address counts.
        async with secured.client(("10.0.0.5", 1)) as client:
            assert (await client.get("/api/account", headers=forwarded)).status_code == 403
    async for secured in secure(engine, tmp_path / "proxied"):
        secured.app = service_app(
            engine,
            Settings(market_symbol="BTCUSDT,ETHUSDT", trusted_proxies="10.0.0.0/24"),
            secured.history,
            auth=secured.auth,
        )
        key = await secured.auth.create_key("office", Role.VIEWER, allowed_ips=["203.0.113.7/32"])
        chain = {"X-API-Key": key.key, "X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.0.0.9"}
        async with secured.client(("10.0.0.5", 1)) as client:
            answer = await client.get("/api/account", headers=chain)
            assert answer.status_code == 200, answer.text  # the last hop no proxy of ours added


async def test_cors_allows_only_the_configured_origins(engine, tmp_path):
    async for secured in secure(engine, tmp_path):
        secured.app = service_app(
            engine,
            Settings(market_symbol="BTCUSDT", cors_origins="https://desk.example.com"),
            secured.history,
            auth=secured.auth,
        )
        preflight = {"Access-Control-Request-Method": "GET"}
        async with secured.client() as client:
            allowed = await client.options(
                "/api/account", headers=preflight | {"Origin": "https://desk.example.com"}
            )
            assert allowed.headers["access-control-allow-origin"] == "https://desk.example.com"
            other = await client.get("/health", headers={"Origin": "https://evil.example.net"})
            assert "access-control-allow-origin" not in other.headers


async def test_users_are_created_once_and_disabled_users_cannot_log_in(secured: Secured):
    admin = {"X-API-Key": secured.keys[Role.ADMIN]}
    body = {"user_id": "ana", "role": "trader", "password": "ana-password-long"}
    async with secured.client() as client:
        assert (await client.post("/api/auth/users", headers=admin, json=body)).status_code == 201
        again = await client.post("/api/auth/users", headers=admin, json=body | {"role": "admin"})
        assert again.status_code == 400 and "exists already" in again.text
        listed = (await client.get("/api/auth/users", headers=admin)).json()["users"]
        assert {u["user_id"]: u["role"] for u in listed}["ana"] == "trader"
        login = {"user_id": "ana", "password": "ana-password-long"}
        assert (await client.post("/api/auth/login", json=login)).status_code == 200
        disabled = await client.post("/api/auth/users/ana/disable", headers=admin)
        assert disabled.status_code == 200
        assert (await client.post("/api/auth/login", json=login)).status_code == 401
