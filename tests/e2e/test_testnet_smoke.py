"""A smoke test against Binance's real spot testnet, for an operator with testnet keys:

    VELOZ_BINANCE_API_KEY=... VELOZ_BINANCE_API_SECRET=... \\
        .venv/bin/pytest tests/e2e/test_testnet_smoke.py -p no:cacheprovider

It starts the engine on the testnet's streams and venue, places a BTCUSDT limit buy far
below the market, sees Binance acknowledge it under our client order id, cancels it, and
stops. It needs the internet, so it never runs in CI (and is skipped without keys)."""

import asyncio
import os
import uuid
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest

from tests.support.engine import NO_LIMITS, wait_for
from veloz.binance.endpoints import TESTNET
from veloz.binance.signing import Credentials, signer_for
from veloz.journal.writer import JournalConfig
from veloz.market.sim import SimMarketConfig
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus
from veloz.runtime.binance import BinanceConfig
from veloz.runtime.live import EngineConfig, LiveEngine

KEY = os.environ.get("VELOZ_BINANCE_API_KEY")
SECRET = os.environ.get("VELOZ_BINANCE_API_SECRET")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not KEY or not SECRET or bool(os.environ.get("CI")),
        reason="needs VELOZ_BINANCE_API_KEY/SECRET of a spot testnet account (never in CI)",
    ),
]


async def test_an_order_round_trip_on_the_spot_testnet(tmp_path: Path) -> None:
    assert KEY and SECRET
    engine = LiveEngine(
        EngineConfig(
            journal=JournalConfig(directory=str(tmp_path / "wal")),
            market_source="binance_ws",
            execution_mode="binance_testnet_spot",
            market=SimMarketConfig(symbols=("BTCUSDT",)),
            binance=BinanceConfig(
                endpoints=TESTNET, credentials=Credentials(KEY, signer_for(SECRET))
            ),
            risk=NO_LIMITS,
        )
    )
    await engine.start()
    try:
        for _ in range(300):
            if engine.market.quote("BTCUSDT") is not None:
                break
            await asyncio.sleep(0.1)
        quote = engine.market.quote("BTCUSDT")
        assert quote is not None, "no BTCUSDT quote from the testnet in 30 s"
        instrument = engine.instruments["BTCUSDT"]
        # Half the bid: it rests, and its notional (about 0.0002 BTC) clears the minimum.
        price = (quote.bid / 2).quantize(instrument.price_increment, ROUND_DOWN)
        qty = (
            max(instrument.min_qty, (Decimal(10) / price)).quantize(
                instrument.size_increment, ROUND_DOWN
            )
            + instrument.size_increment
        )
        coid = f"smoke-{uuid.uuid4().hex[:12]}"
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT", side=OrderSide.BUY, qty=qty, price=price, client_order_id=coid
            )
        )
        await wait_for(lambda: status(engine, coid) is OrderStatus.ACCEPTED, engine, 30)
        await engine.cancel(CancelOrder(client_order_id=coid))
        await wait_for(lambda: status(engine, coid) is OrderStatus.CANCELLED, engine, 30)
    finally:
        await engine.stop()


def status(engine: LiveEngine, client_order_id: str) -> OrderStatus | None:
    order = engine.oms.get(client_order_id)
    return order.status if order is not None else None
