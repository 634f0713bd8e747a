"""The live engine wired to the fake Binance, as `VELOZ_MARKET_SOURCE=binance_ws` with
`VELOZ_EXECUTION_MODE=binance_testnet_spot` (URLs pointed at the fake) or `sim_engine`
(paper trading): filters from exchangeInfo before replay, quotes from the streams, orders
journaled then placed under our client order id, fills applied, a restart that picks up
what happened while the engine was down, orphans reported, bad keys refused at start."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tests.support.engine import NO_LIMITS, wait_for_status
from tests.support.fake_binance import FakeBinance, Fault
from tests.support.processes import free_port
from veloz.binance.errors import BinanceError
from veloz.binance.signing import Credentials, HmacSigner, signer_for
from veloz.journal.writer import JournalConfig
from veloz.market.sim import SimMarketConfig
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.errors import CommandRejected
from veloz.runtime.binance import BinanceConfig
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import EngineConfig, LiveEngine, StartRefused

D = Decimal
KEY, SECRET = "engine-key", "engine-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    binance = FakeBinance(KEY, SECRET, ("BTCUSDT",), balances={"USDT": "10000", "BTC": "1"})
    await binance.start()
    binance.set_book("BTCUSDT", bids=[("50000", "2")], asks=[("50001", "2")])
    yield binance
    await binance.stop()


def config(
    fake: FakeBinance, wal_dir: Path, *, trade: bool = True, secret: str = SECRET
) -> EngineConfig:
    return EngineConfig(
        journal=JournalConfig(directory=str(wal_dir)),
        market_source="binance_ws",
        execution_mode="binance_testnet_spot" if trade else "sim_engine",
        market=SimMarketConfig(symbols=("BTCUSDT",)),
        binance=BinanceConfig(
            endpoints=fake.endpoints(),
            credentials=Credentials(KEY, HmacSigner(secret)) if trade else None,
            reconnect_delay_ms=50,
        ),
        risk=NO_LIMITS,
        drain_timeout_s=1.0,
    )


async def quoted(engine: LiveEngine, fake: FakeBinance) -> None:
    """Wait for the first quote from the streams (the book changes until one arrives: a
    stream carries only changes)."""
    for n in range(250):
        if engine.market.quote("BTCUSDT") is not None:
            return
        fake.set_book("BTCUSDT", bids=[("50000", f"2.{n + 1:03d}")], asks=[("50001", "2")])
        await asyncio.sleep(0.02)
    raise AssertionError("no quote from the fake's streams within 5 s")


def limit_buy(coid: str, price: str = "49000", qty: str = "0.01") -> SubmitOrder:
    return SubmitOrder(
        symbol="BTCUSDT", side=OrderSide.BUY, qty=D(qty), price=D(price), client_order_id=coid
    )


async def test_an_order_is_journaled_placed_under_our_id_and_filled(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        instrument = engine.instruments["BTCUSDT"]
        assert instrument.status == "TRADING"  # from the fake's exchangeInfo
        assert engine.portfolio.balances()  # seeded from Binance's account
        await quoted(engine, fake)
        # Off the tick: rounded before it is journaled, so Binance sees a valid price.
        await engine.submit(limit_buy("eng-1", price="49000.019"))
        await wait_for_status(engine, "eng-1", OrderStatus.ACCEPTED)
        placed = fake.order("eng-1")
        assert placed.price == D("49000.01") and placed.orig_qty == D("0.01")
        await fake.fill("eng-1", D("0.004"))
        await fake.fill("eng-1", D("0.006"))
        await wait_for_status(engine, "eng-1", OrderStatus.FILLED)
        order = engine.oms.get("eng-1")
        assert order is not None and order.executed_qty == D("0.01")
        assert len(order.trade_ids) == 2  # each fill once, from the REST answer or the stream
        position = engine.portfolio.position("BTCUSDT")
        assert position is not None and position.qty == D("0.01") - order.fee
    finally:
        await engine.stop()


async def test_fills_made_while_the_engine_was_down_are_applied_once_at_restart(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    await quoted(engine, fake)
    await engine.submit(limit_buy("down-1"))
    await wait_for_status(engine, "down-1", OrderStatus.ACCEPTED)
    await engine.stop()

    await fake.fill("down-1", D("0.01"))  # while nobody listens

    again = LiveEngine(config(fake, wal_dir))
    await again.start()
    try:
        order = again.oms.get("down-1")
        assert order is not None and order.status is OrderStatus.FILLED
        assert order.executed_qty == D("0.01") and len(order.trade_ids) == 1
        assert len(fake.orders) == 1  # reconciled by query, never sent again
        # NautilusTrader's four invariants: order state, filled quantity, average price
        # and position match the venue.
        at_venue = fake.order("down-1")
        assert (at_venue.status, at_venue.executed_qty) == ("FILLED", order.executed_qty)
        (trade,) = fake.trades
        assert order.avg_price == trade.price
        position = again.portfolio.position("BTCUSDT")
        assert position is not None
        assert position.qty == trade.qty - trade.commission  # the fee is paid in BTC
        assert {b.asset: b.total for b in again.portfolio.balances()} == {
            asset: balance.free + balance.locked for asset, balance in fake.balances.items()
        }
    finally:
        await again.stop()


async def test_an_order_placed_by_hand_is_reported_as_an_orphan(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        await quoted(engine, fake)
        # Someone places an order straight at Binance, then the stream reconnects.
        await engine.submit(limit_buy("ours-1"))
        await wait_for_status(engine, "ours-1", OrderStatus.ACCEPTED)
        foreign = engine.binance
        assert foreign is not None and foreign.trade_rest is not None
        await foreign.trade_rest.signed(
            "POST",
            "/api/v3/order",
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": "48000",
                "newClientOrderId": "by-hand",
            },
            orders=1,
        )
        await engine.reconcile_with_venue()
        found = await LocalEngineClient(engine).orphans()
        assert [o.client_order_id for o in found.orders] == ["by-hand"]
        assert found.orders[0].price == D("48000") and found.orders[0].side is OrderSide.BUY
        assert engine.oms.get("by-hand") is None
    finally:
        await engine.stop()


async def test_paper_trading_fills_on_the_simulated_venue_at_binances_prices(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir, trade=False))
    await engine.start()
    try:
        await quoted(engine, fake)
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=D("0.01"),
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                client_order_id="paper-1",
            )
        )
        await wait_for_status(engine, "paper-1", OrderStatus.FILLED)
        order = engine.oms.get("paper-1")
        assert order is not None and order.avg_price == D("50001")  # the fake's ask
        assert not fake.orders  # nothing reached Binance
    finally:
        await engine.stop()


async def test_a_refused_key_stops_the_start_with_one_clear_permanent_error(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir, secret="wrong-secret"))
    with pytest.raises(StartRefused) as refused:
        await engine.start()
    await engine.stop()
    assert refused.value.permanent
    assert "wrong-secret" not in str(refused.value) and "-1022" in str(refused.value)


async def test_a_symbol_binance_does_not_list_stops_the_start(fake, wal_dir):
    unlisted = msgspec.structs.replace(
        config(fake, wal_dir), market=SimMarketConfig(symbols=("BTCUSDT", "DOGEUSDT"))
    )
    engine = LiveEngine(unlisted)
    with pytest.raises(StartRefused, match="does not list DOGEUSDT") as refused:
        await engine.start()
    await engine.stop()
    assert refused.value.permanent and "BTCUSDT" not in str(refused.value)


async def test_an_order_refused_by_binance_is_rejected_with_its_message(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        await quoted(engine, fake)
        # A withdrawal at Binance the engine has not reconciled yet: our balance check
        # passes, Binance's refuses with -2010.
        await fake.deposit("USDT", D("-9990"))
        await engine.submit(limit_buy("broke-1"))
        await wait_for_status(engine, "broke-1", OrderStatus.REJECTED)
        order = engine.oms.get("broke-1")
        assert order is not None and "insufficient balance" in order.reason.lower()
    finally:
        await engine.stop()


async def test_bad_input_is_refused_before_anything_reaches_binance(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        await quoted(engine, fake)
        before = len(fake.requests)
        with pytest.raises(CommandRejected, match="LOT_SIZE"):
            await engine.submit(limit_buy("tiny-1", qty="0.000000001"))
        assert not [r for r in fake.requests[before:] if r.path == "/api/v3/order"]
    finally:
        await engine.stop()


async def test_after_the_user_stream_comes_back_the_engine_reconciles(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        await quoted(engine, fake)
        runs = engine.reconciliation.runs
        await engine.submit(limit_buy("gap-1"))
        await wait_for_status(engine, "gap-1", OrderStatus.ACCEPTED)
        await fake.drop_user_stream(abrupt=True)
        await fake.fill("gap-1", D("0.01"))  # while the stream is down
        await wait_for_status(engine, "gap-1", OrderStatus.FILLED)  # by polling or stream
        for _ in range(250):
            if engine.reconciliation.runs > runs:
                break
            await asyncio.sleep(0.02)
        assert engine.reconciliation.runs > runs
        order = engine.oms.get("gap-1")
        assert order is not None and len(order.trade_ids) == 1
    finally:
        await engine.stop()


async def test_refreshed_filters_reach_the_engine_in_place(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        await quoted(engine, fake)
        market = fake.markets["BTCUSDT"]
        market.rules = dataclasses.replace(market.rules, status="BREAK", step_size=D("0.001"))
        assert engine.binance is not None
        await engine.binance.load_instruments()  # what the hourly refresh does
        assert engine.instruments["BTCUSDT"].size_increment == D("0.001")
        with pytest.raises(CommandRejected) as refused:
            await engine.submit(limit_buy("break-1"))
        assert refused.value.code == "trading_disabled" and "BREAK" in refused.value.message
    finally:
        await engine.stop()


async def test_a_ban_shows_in_readiness_and_refuses_orders_without_losing_them(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        await quoted(engine, fake)
        fake.fail_next("/api/v3/order", Fault.BAN_418)
        await engine.submit(limit_buy("ban-1"))
        await wait_for_status(engine, "ban-1", OrderStatus.REJECTED)
        order = engine.oms.get("ban-1")
        assert order is not None and "banned" in order.reason.lower()
        ready = await LocalEngineClient(engine).readiness("BTCUSDT")
        assert not ready.ok and ready.components["venue"].status == "banned"
        # Later orders are refused at once, without a call to Binance.
        calls = len(fake.requests)
        await engine.submit(limit_buy("ban-2"))
        await wait_for_status(engine, "ban-2", OrderStatus.REJECTED)
        assert not [r for r in fake.requests[calls:] if r.path == "/api/v3/order"]
    finally:
        await engine.stop()


async def test_a_revoked_key_shows_in_readiness(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        await quoted(engine, fake)
        fake.replace_key(secret="rotated-by-someone-else")
        with pytest.raises(BinanceError):
            await engine.reconcile_with_venue()  # any signed call
        ready = await LocalEngineClient(engine).readiness("BTCUSDT")
        venue = ready.components["venue"]
        assert not ready.ok and venue.status == "unauthorized"
        assert "-1022" in venue.detail and SECRET not in venue.detail
        fake.replace_key(secret=SECRET)  # back: the next signed call clears it
        await engine.reconcile_with_venue()
        ready = await LocalEngineClient(engine).readiness("BTCUSDT")
        assert ready.components["venue"].status != "unauthorized"
    finally:
        await engine.stop()


async def test_an_ed25519_key_trades_as_an_hmac_one_does(wal_dir):
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    public = (
        private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    )
    ed_fake = FakeBinance(KEY, symbols=("BTCUSDT",), ed25519_public_key_pem=public)
    await ed_fake.start()
    engine_config = msgspec.structs.replace(
        config(ed_fake, wal_dir),
        binance=BinanceConfig(
            endpoints=ed_fake.endpoints(),
            credentials=Credentials(KEY, signer_for(pem)),
            reconnect_delay_ms=50,
        ),
    )
    engine = LiveEngine(engine_config)
    await engine.start()
    try:
        await quoted(engine, ed_fake)
        await engine.submit(limit_buy("ed-1"))
        await wait_for_status(engine, "ed-1", OrderStatus.ACCEPTED)
        await ed_fake.fill("ed-1", D("0.01"))  # reaches us over the user data stream
        await wait_for_status(engine, "ed-1", OrderStatus.FILLED)
        assert engine.binance is not None and engine.binance.venue_stats() is not None
        assert engine.binance.trading is not None
        assert engine.binance.trading.stats.user_stream_connected
    finally:
        await engine.stop()
        await ed_fake.stop()


async def test_ping_measures_the_venue_and_says_when_it_is_unreachable(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        client = LocalEngineClient(engine)
        calls = len([r for r in fake.requests if r.path == "/api/v3/ping"])
        ping = await client.ping_venue()
        assert ping.ok and ping.venue == "binance_testnet_spot" and ping.latency_ms > 0
        assert len([r for r in fake.requests if r.path == "/api/v3/ping"]) == calls + 1
        fake.fail_next("/api/v3/ping", Fault.HTTP_503)
        with pytest.raises(CommandRejected) as unreachable:
            await client.ping_venue()
        assert unreachable.value.code == "venue_unreachable"
    finally:
        await engine.stop()


async def test_with_auto_cancel_an_orphan_is_cancelled_at_binance(fake, wal_dir):
    cancelling = msgspec.structs.replace(config(fake, wal_dir), auto_cancel_orphaned=True)
    engine = LiveEngine(cancelling)
    await engine.start()
    try:
        assert engine.binance is not None and engine.binance.trade_rest is not None
        await engine.binance.trade_rest.signed(
            "POST",
            "/api/v3/order",
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": "60000",
                "newClientOrderId": "by-hand-sell",
            },
            orders=1,
        )
        await engine.reconcile_with_venue()
        found = await LocalEngineClient(engine).orphans()
        assert found.orphans_cancelled_total == 1
        assert fake.order("by-hand-sell").status == "CANCELED"
        assert engine.oms.get("by-hand-sell") is None
    finally:
        await engine.stop()


async def test_an_unreachable_binance_stops_the_start_as_worth_retrying(fake, wal_dir):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = msgspec.structs.replace(
        config(fake, wal_dir),
        binance=BinanceConfig(
            endpoints=msgspec.structs.replace(fake.endpoints(), rest=closed, trade_rest=closed),
            credentials=Credentials(KEY, HmacSigner(SECRET)),
        ),
    )
    engine = LiveEngine(unreachable)
    with pytest.raises(StartRefused, match="cannot load the symbols' filters") as refused:
        await engine.start()
    await engine.stop()
    assert not refused.value.permanent  # exit 75: a supervisor may try again


async def test_the_book_route_shows_the_depth_the_streams_keep(fake, wal_dir):
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    try:
        await quoted(engine, fake)
        fake.set_book(  # sent to us as depth diffs
            "BTCUSDT",
            bids=[("50000", "1"), ("49999", "2"), ("49998", "3")],
            asks=[("50001", "1"), ("50002", "2")],
        )
        await fake.publish_depth("BTCUSDT", bids=[("49997", "4")])  # one more level
        client = LocalEngineClient(engine)
        expected = [D("50000"), D("49999"), D("49998"), D("49997")]
        for _ in range(250):
            book = await client.book("BTCUSDT", depth=10)
            if [p for p, _ in book.bids] == expected:
                break
            await asyncio.sleep(0.02)
        assert [p for p, _ in book.bids] == expected
        assert [p for p, _ in book.asks] == [D("50001"), D("50002")]
        top = await client.book("BTCUSDT", depth=3)
        assert [p for p, _ in top.bids] == expected[:3] and top.depth == 3
    finally:
        await engine.stop()


async def test_one_line_at_start_says_which_venue_and_account_it_trades(fake, wal_dir, caplog):
    caplog.set_level("INFO", logger="veloz.runtime.binance")
    engine = LiveEngine(config(fake, wal_dir))
    await engine.start()
    await engine.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "veloz.runtime.binance"]
    trading = [line for line in lines if line.startswith("trading on Binance")]
    assert len(trading) == 1
    assert (
        "binance_testnet_spot (testnet, no real money) as account 354937868 (SPOT)" in (trading[0])
    )
    assert KEY not in trading[0] and SECRET not in trading[0]
