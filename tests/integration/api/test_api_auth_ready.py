"""Ready means the configured credentials work: until the bootstrap admin is written and
users and keys are loaded, `/health/ready` says `auth: loading`, a request with a
credential is answered 503 (never 401), and a login does that load itself first; a store
that was down at start is picked up within a second, not at the next 10 s reload."""

import asyncio
import time

import httpx

from veloz.auth.service import AuthConfig, AuthService
from veloz.config import Settings
from veloz.persistence.sqlite import SqliteStore
from veloz.runtime.live import LiveEngine
from veloz.runtime.service import service_app

JWT_SECRET = "9f2c1e7a4b8d6f0e3a5c7b9d1f3e5a7c9b1d3f5e7a9c1b3d"
ADMIN_PASSWORD = "correct horse battery"


def config(reload_s: float = AuthConfig.reload_s) -> AuthConfig:
    return AuthConfig(
        enabled=True, jwt_secret=JWT_SECRET, admin_password=ADMIN_PASSWORD, reload_s=reload_s
    )


def client(app) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://veloz.test")


async def login(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post("/api/auth/login", json={"user_id": "admin", "password": ADMIN_PASSWORD})


async def test_a_login_before_the_first_load_waits_for_it_instead_of_being_refused(
    engine: LiveEngine, tmp_path
):
    store = SqliteStore(str(tmp_path / "h.db"), time.time_ns)
    await store.connect()
    await store.migrate()
    auth = AuthService(config(), store, time.time_ns)  # not started: nothing loaded yet
    settings = Settings(market_symbol="BTCUSDT,ETHUSDT", login_rate_limit=1e6)
    async with client(service_app(engine, settings, auth=auth)) as http:
        ready = (await http.get("/health/ready")).json()
        assert ready["ok"] is False and ready["components"]["auth"]["status"] == "loading"
        early = await http.get("/api/account", headers={"X-API-Key": "vz_abc_def"})
        assert early.status_code == 503 and early.json()["error"] == "store_unavailable"
        # Many logins at once, the very first request the service gets: all work.
        answers = await asyncio.gather(*(login(http) for _ in range(5)))
        assert [a.status_code for a in answers] == [200] * 5
        ready = await http.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["components"]["auth"]["status"] == "ok"
        token = answers[0].json()["access_token"]
        me = await http.get("/api/account", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
    await store.close()


async def test_a_store_down_at_start_is_retried_within_a_second(engine: LiveEngine, tmp_path):
    store = SqliteStore(str(tmp_path / "h.db"), time.time_ns)  # not connected: unavailable
    auth = AuthService(config(reload_s=10.0), store, time.time_ns)
    await auth.start()
    try:
        assert not auth.ready and "not connected" in auth.load_error
        settings = Settings(market_symbol="BTCUSDT,ETHUSDT", login_rate_limit=1e6)
        async with client(service_app(engine, settings, auth=auth)) as http:
            refused = await login(http)
            assert refused.status_code == 503, refused.text  # the store is down, not 401
            await store.connect()
            await store.migrate()
            deadline = time.monotonic() + 2  # the next retry, far sooner than reload_s
            # The reloader's retry publishes nothing to await: watch its flag.
            while not auth.ready and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            assert auth.ready
            assert (await http.get("/health/ready")).status_code == 200
            assert (await login(http)).status_code == 200
    finally:
        await auth.stop()
        await store.close()
