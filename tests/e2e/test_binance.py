"""`veloz engine` as an operator runs it against Binance (here the fake, on loopback):
VELOZ_MARKET_SOURCE=binance_ws, VELOZ_EXECUTION_MODE=binance_testnet_spot, every URL set.

The scenario the issue names: the engine is killed with SIGKILL after an order was sent and
before Binance's answer came back (the fake holds the answer; the order is placed). After
a restart exactly one order exists at Binance and ours matches it; a fill made while the
engine was down appears once. Around it: readiness, metrics and the orphans route as an
operator reads them."""

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_binance import FakeBinance, Fault
from tests.support.processes import free_port, start_veloz, veloz_env

pytestmark = pytest.mark.slow

KEY, SECRET = "e2e-key", "e2e-secret-0f3a9c"
D = Decimal


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    binance = FakeBinance(KEY, SECRET, ("BTCUSDT",), balances={"USDT": "10000", "BTC": "1"})
    await binance.start()
    ticking = asyncio.get_running_loop().create_task(_tick(binance))
    yield binance
    ticking.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ticking
    await binance.stop()


async def _tick(fake: FakeBinance) -> None:
    """A market that moves: the book's size changes every 50 ms, so quotes stay fresh."""
    n = 0
    while True:
        n += 1
        fake.set_book("BTCUSDT", bids=[("50000", f"2.{n % 1000:03d}")], asks=[("50001", "2")])
        await asyncio.sleep(0.05)


def engine_env(fake: FakeBinance, wal_dir: Path, port: int) -> dict[str, str]:
    return veloz_env(
        wal_dir,
        VELOZ_PORT=str(port),
        VELOZ_HOST="127.0.0.1",
        VELOZ_MARKET_SYMBOL="BTCUSDT",
        VELOZ_MARKET_SOURCE="binance_ws",
        VELOZ_EXECUTION_MODE="binance_testnet_spot",
        VELOZ_BINANCE_BASE_URL=fake.rest_url,
        VELOZ_BINANCE_TRADE_BASE_URL=fake.rest_url,
        VELOZ_BINANCE_WS_BASE_URL=fake.streams_url,
        VELOZ_BINANCE_WS_API_URL=fake.ws_api_url,
        VELOZ_BINANCE_API_KEY=KEY,
        VELOZ_BINANCE_API_SECRET=SECRET,
        VELOZ_WS_RECONNECT_DELAY="50",
        VELOZ_LOG_LEVEL="info",
    )


class Engine:
    def __init__(self, fake: FakeBinance, wal_dir: Path) -> None:
        self.port = free_port()
        self.log = wal_dir.parent / f"engine-{self.port}.log"
        self.env = engine_env(fake, wal_dir, self.port)
        self.process: subprocess.Popen[bytes] | None = None
        self.api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = start_veloz(
                ["engine"], self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        for _ in range(600):
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(httpx.TransportError):
                if (await self.api.get("/health/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"engine not ready in 30 s:\n{self.log.read_text()[-3000:]}")

    async def get(self, path: str) -> Any:
        answer = await self.api.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def order_state(self, coid: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.get(f"/api/order_state?client_order_id={coid}")
        return body

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def stop(self) -> None:
        await self.api.aclose()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def until(condition: Any, what: str, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_killed_between_sent_and_answered_then_restarted(fake, tmp_path):
    wal_dir = tmp_path / "wal"
    first = Engine(fake, wal_dir)
    await first.start()
    try:
        ready = await first.get("/health/ready")
        assert ready["components"]["venue"]["status"] == "connected"
        # Binance places the order but its answer never comes back before the kill.
        fake.fail_next("/api/v3/order", Fault.TIMEOUT, apply=True)
        placed = await first.api.post(
            "/api/order",
            json={
                "side": "BUY",
                "symbol": "BTCUSDT",
                "qty": "0.01",
                "price": "49000",
                "client_order_id": "kill-1",
            },
        )
        assert placed.status_code == 200, placed.text
        assert placed.json()["status"] == "PENDING_NEW"

        async def at_binance() -> bool:
            return any(o.client_order_id == "kill-1" for o in fake.orders.values())

        await until(at_binance, "the order to reach the fake")
        first.kill()
    finally:
        await first.api.aclose()

    await fake.fill("kill-1", D("0.004"))  # while the engine is down

    second = Engine(fake, wal_dir)
    await second.start()
    try:
        at_venue = [o for o in fake.orders.values() if o.client_order_id == "kill-1"]
        assert len(at_venue) == 1  # resolved by query, never sent again
        state = await second.order_state("kill-1")
        assert state["status"] == "PARTIALLY_FILLED", state
        assert state["venue_order_id"] == str(at_venue[0].order_id)
        assert D(str(state["executed_qty"])) == D("0.004")

        await fake.fill("kill-1", D("0.006"))

        async def filled() -> bool:
            return bool((await second.order_state("kill-1"))["status"] == "FILLED")

        await until(filled, "the second fill through the user data stream")
        state = await second.order_state("kill-1")
        assert D(str(state["executed_qty"])) == D("0.01")

        async def both_fills_listed() -> bool:
            trades = (await second.get("/api/trades"))["trades"]
            return len([t for t in trades if t["client_order_id"] == "kill-1"]) == 2

        # /api/trades reads the history store, which follows the journal write-behind.
        await until(both_fills_listed, "both fills in /api/trades, each once")

        metrics = (await second.api.get("/metrics")).text
        assert 'veloz_websocket_connected{source="binance_ws"} 1.0' in metrics
        assert "veloz_user_stream_connected 1.0" in metrics
        assert 'veloz_exchange_requests_total{endpoint="/api/v3/order"}' in metrics
        assert "veloz_exchange_banned 0.0" in metrics
        orphans = await second.get("/api/execution/orphans")
        assert orphans["count"] == 0 and orphans["reconciliations"] >= 1
        assert SECRET not in second.log.read_text() and KEY not in second.log.read_text()
    finally:
        await second.stop()


async def test_bad_keys_stop_the_start_with_one_line_and_exit_78(fake, tmp_path):
    engine = Engine(fake, tmp_path / "wal")
    engine.env["VELOZ_BINANCE_API_SECRET"] = "not-the-secret"
    with engine.log.open("ab") as log:
        process = start_veloz(
            ["engine"], engine.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    code = await asyncio.to_thread(process.wait, 30)
    await engine.api.aclose()
    output = engine.log.read_text()
    assert code == 78, output[-2000:]
    refusal = [line for line in output.splitlines() if line.startswith("veloz: ")]
    assert len(refusal) == 1 and "-1022" in refusal[0], output[-2000:]
    assert "not-the-secret" not in output
