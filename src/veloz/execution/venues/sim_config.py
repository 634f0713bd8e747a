"""The simulated venue's settings, shared by the synchronous exchange (`sim_exchange.py`)
and the asyncio venue that wraps it (`sim.py`)."""

from decimal import Decimal

import msgspec

from veloz.execution.venues.sim_matching import FeeAssetMode


def _default_balances() -> dict[str, Decimal]:
    return {"USDT": Decimal("100000")}


class SimVenueConfig(msgspec.Struct, frozen=True, kw_only=True):
    """`latency_ms` delays every submit and cancel, in the venue's clock time (0 still
    answers on a later loop iteration; the synchronous exchange ignores it).
    `fee_asset="received"` charges fees in the asset received (Binance's default),
    `"quote"` always in the quote asset. `order_history_limit` bounds how many final
    orders are remembered for `query()` and duplicate detection."""

    latency_ms: float = 1.0
    maker_fee_bps: Decimal = Decimal("10")
    taker_fee_bps: Decimal = Decimal("10")
    slippage_bps: Decimal = Decimal("0")
    fee_asset: FeeAssetMode = "received"
    starting_balances: dict[str, Decimal] = msgspec.field(default_factory=_default_balances)
    order_history_limit: int = 100_000
    # A margin account (backtests): the net position may go short and linear PnL settles
    # in the quote asset, so no funds are locked and balances may go negative.
    margin: bool = False
