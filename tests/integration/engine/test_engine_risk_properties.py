"""No interleaving of concurrent submits, partial fills and cancels lets the position, with
what open and in-flight orders could still add, exceed its limit: checked after every
journaled event, not only at the end."""

import asyncio
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.engine import engine_config, quote
from veloz.engine.bus import Journaled
from veloz.execution.venues.sim import SimVenueConfig
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OrderSide
from veloz.model.errors import CommandRejected
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import LoadedLimits, parse_limits
from veloz.runtime.live import LiveEngine

D = Decimal
LIMIT = D(1)
LIMITS = LoadedLimits(
    limits=parse_limits("defaults:\n  max_position_qty: 1\n"),
    source="test",
    loaded_at_ns=0,
    sha256=None,
)

Step = tuple[list[tuple[Any, ...]], int, str]
action = st.one_of(
    st.tuples(
        st.just("submit"),
        st.sampled_from(OrderSide),
        st.sampled_from(["0.05", "0.1", "0.25", "0.4"]),
        st.integers(-40, 40),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 30)),
)
step = st.tuples(
    st.lists(action, min_size=1, max_size=6),  # run concurrently
    st.integers(-60, 60),
    st.sampled_from(["0.05", "0.2", "5"]),
)  # then a quote


def worst_case(engine: LiveEngine) -> tuple[Decimal, Decimal]:
    position = engine.portfolio.position_qty("BTCUSDT")
    return (
        position + engine.oms.open_qty("BTCUSDT", OrderSide.BUY),
        position - engine.oms.open_qty("BTCUSDT", OrderSide.SELL),
    )


async def scenario(steps: list[Step], directory: Path) -> None:
    config = msgspec.structs.replace(
        engine_config(directory / "wal", risk=RiskConfig(limits=LIMITS)),
        venue=SimVenueConfig(latency_ms=0, starting_balances={"USDT": D(10**7), "BTC": D(100)}),
    )
    engine = LiveEngine(config)
    await engine.start()
    engine.market.on_data(quote(bid="50000", ask="50001", size="0.2"))
    breaches: list[str] = []

    def check(message: object) -> None:
        if isinstance(message, Journaled):
            long, short = worst_case(engine)
            if long > LIMIT or short < -LIMIT:
                breaches.append(f"after seq {message.seq}: long {long}, short {short}")

    engine.bus.subscribe(check)
    ids: list[str] = []
    try:
        for number, (actions, shift, size) in enumerate(steps):
            await asyncio.gather(
                *(act(engine, a, ids, f"{number}-{i}") for i, a in enumerate(actions))
            )
            bid = 50000 + shift * 10
            engine.market.on_data(quote(bid=str(bid), ask=str(bid + 1), size=size))
            await engine.journal.sync()  # type: ignore[union-attr]
            await asyncio.sleep(0)  # let the venue's reports of this step land
        assert not breaches, breaches[:3]
    finally:
        await engine.stop()


async def act(engine: LiveEngine, action: tuple[Any, ...], ids: list[str], coid: str) -> None:
    try:
        if action[0] == "submit":
            _, side, qty, offset = action
            price = D(50000 + offset * 10)
            await engine.submit(
                SubmitOrder(
                    symbol="BTCUSDT", side=side, qty=D(qty), price=price, client_order_id=coid
                )
            )
            ids.append(coid)
        elif ids:
            await engine.cancel(CancelOrder(client_order_id=ids[action[1] % len(ids)]))
    except CommandRejected as refusal:  # denials and cancels of final orders are expected
        assert refusal.code in ("risk_rejected", "order_final", "not_found"), refusal


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(step, min_size=1, max_size=8))
def test_no_interleaving_exceeds_the_position_limit(steps):
    directory = Path(tempfile.mkdtemp(prefix="veloz-risk-prop-"))
    try:
        asyncio.run(scenario(steps, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
