"""Golden backtests on `tests/fixtures/backtest/golden_bars.csv`, checked by hand.

`ema_cross` with fast 2 (alpha 2/3) and slow 3 (alpha 1/2), qty 1, fee 10 bps in USDT:

    bar    close   fast EMA   slow EMA   signal
    00:00  100     100        100        (seeding; slow ready after 3 closes)
    00:03  100     100        100        ready; no cross (equal)
    00:04  110     106.667    105        cross up   -> target +1: BUY 1
    00:05  120     115.556    112.5
    00:06   90      98.519    101.25     cross down -> target -1: SELL 2
    00:07   80      86.173     90.625
    00:08  100      95.391     95.313    cross up   -> target +1: BUY 2
    00:09  110     105.130    102.656    (fast already above: no signal)
    00:10  109     107.710    105.828

Fill model `close` trades at the signal bar's close, `next_open` at the next bar's open
(00:05 opens at 112, 00:07 at 88, 00:09 at 101). A cash account holds no BTC to sell
short, so its SELL 2 is refused (it holds only the 1 it bought) and the later cross up
finds it already at +1. Equity is marked at the last close, 109.
"""

from decimal import Decimal
from pathlib import Path

import pytest

from veloz.backtest.data import load_bars
from veloz.backtest.engine import (
    AccountType,
    BacktestConfig,
    BacktestEngine,
    BarPath,
    FillModel,
)
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import LoadedLimits, RiskLimits, SymbolLimits
from veloz.strategy.host import StrategySpec

D = Decimal
FIXTURE = Path(__file__).parents[2] / "fixtures" / "backtest" / "golden_bars.csv"
T0 = 1_704_067_200_000_000_000  # 2024-01-01 00:00:00 UTC
MINUTE = 60_000_000_000


def run(
    account: AccountType, fill: FillModel, strategy: str = "ema_cross", **params: str
) -> tuple[list[tuple[int, str, Decimal, Decimal, Decimal]], BacktestEngine, object]:
    bars = {"BTCUSDT": load_bars(FIXTURE, "BTCUSDT")}
    config = BacktestConfig(
        account=account, balances={"USDT": D(1000)}, fill=fill, path=BarPath.OHLC
    )
    spec = StrategySpec(
        strategy_id="golden",
        name=strategy,
        symbol="BTCUSDT",
        params=params
        or ({"fast": "2", "slow": "3", "qty": "1"} if strategy == "ema_cross" else {}),
    )
    engine = BacktestEngine(config, bars, [spec])
    result = engine.run()
    fills = [((f.ts_ns - T0) // MINUTE, f.side, f.qty, f.price, f.fee) for f in result.fills]
    return fills, engine, result


@pytest.mark.parametrize(
    ("fill", "expected", "equity"),
    [
        (
            FillModel.CLOSE,
            [
                (4, "BUY", D(1), D(110), D("0.11")),
                (6, "SELL", D(2), D(90), D("0.18")),
                (8, "BUY", D(2), D(100), D("0.2")),
            ],
            # 1000 - 110 - .11 + 180 - .18 - 200 - .2 = 869.51, plus 1 BTC at 109
            D("978.51"),
        ),
        (
            FillModel.NEXT_OPEN,
            [
                (5, "BUY", D(1), D(112), D("0.112")),
                (7, "SELL", D(2), D(88), D("0.176")),
                (9, "BUY", D(2), D(101), D("0.202")),
            ],
            # 1000 - 112 - .112 + 176 - .176 - 202 - .202 = 861.51, plus 1 BTC at 109
            D("970.51"),
        ),
    ],
)
def test_margin_account_goes_short(
    fill: FillModel, expected: list[tuple[int, str, Decimal, Decimal, Decimal]], equity: Decimal
) -> None:
    fills, engine, result = run(AccountType.MARGIN, fill)
    assert fills == expected
    assert result.final_equity == equity  # type: ignore[attr-defined]
    assert result.final_positions == {"BTCUSDT": D(1)}  # type: ignore[attr-defined]
    assert result.fees == sum(f[4] for f in expected)  # type: ignore[attr-defined]
    # Realised PnL is net of fees: closing fills, long 110 -> 90 (-20) and short 90 -> 100
    # (-10), less the fees of the trades closed (0.11, 0.18 and half of 0.2); the other
    # half of the last fee sits in the open position's cost (average 100.1).
    position = engine.core.portfolio.position("BTCUSDT")
    assert position is not None
    if fill is FillModel.CLOSE:
        assert (position.realized_pnl, position.avg_price) == (D("-30.39"), D("100.1"))
    else:  # 112 -> 88 (-24), 88 -> 101 (-13), fees 0.112 + 0.176 + 0.101
        assert (position.realized_pnl, position.avg_price) == (D("-37.389"), D("101.101"))


@pytest.mark.parametrize(
    ("fill", "expected", "equity"),
    [
        (FillModel.CLOSE, [(4, "BUY", D(1), D(110), D("0.11"))], D("998.89")),
        (FillModel.NEXT_OPEN, [(5, "BUY", D(1), D(112), D("0.112"))], D("996.888")),
    ],
)
def test_cash_account_cannot_sell_what_it_does_not_hold(
    fill: FillModel, expected: list[tuple[int, str, Decimal, Decimal, Decimal]], equity: Decimal
) -> None:
    fills, engine, result = run(AccountType.CASH, fill)
    assert fills == expected
    assert result.denied == 1  # type: ignore[attr-defined]
    assert result.final_equity == equity  # type: ignore[attr-defined]
    assert result.final_balances == {  # type: ignore[attr-defined]
        "BTC": D(1),
        "USDT": D(1000) - expected[0][3] - expected[0][4],
    }
    assert engine.core.stats.rejections["insufficient_balance"] == 1


def test_a_margin_account_can_add_to_a_short() -> None:
    """A SELL while already short holds nothing back: it must not be refused for the
    negative base balance the first short left."""
    fills, _, result = run(
        AccountType.MARGIN, FillModel.CLOSE, strategy="tests.support.strategies:Seller"
    )
    assert [(f[0], f[1], f[2], f[3]) for f in fills] == [
        (0, "SELL", D(1), D(100)),
        (1, "SELL", D(1), D(100)),
    ]
    assert result.final_positions == {"BTCUSDT": D(-2)}  # type: ignore[attr-defined]
    assert result.final_balances["BTC"] == D(-2)  # type: ignore[attr-defined]


def test_drawdown_limits_act_in_a_backtest() -> None:
    """With a critical drawdown level the core values the book on every price it is shown
    (as live): the long bought at 110 is worth 90 when the cross down comes at 00:06, more
    than 2 % below the peak, so trading turns READONLY and the SELL 2 is denied; the cross
    up at 00:08 finds the strategy still long and sends nothing. Without the limit the same
    run has three fills (above)."""
    limits = RiskLimits(
        defaults=SymbolLimits(price_band_pct=None),
        drawdown_warning_pct=None,
        drawdown_critical_pct=D(2),
    )
    config = BacktestConfig(
        account=AccountType.MARGIN,
        balances={"USDT": D(1000)},
        risk=RiskConfig(
            limits=LoadedLimits(limits=limits, source=None, loaded_at_ns=0, sha256=None),
            margin_leverage=D(1),
        ),
    )
    spec = StrategySpec(
        strategy_id="golden",
        name="ema_cross",
        symbol="BTCUSDT",
        params={"fast": "2", "slow": "3", "qty": "1"},
    )
    engine = BacktestEngine(config, {"BTCUSDT": load_bars(FIXTURE, "BTCUSDT")}, [spec])
    result = engine.run()
    assert [(f.side, f.qty, f.price) for f in result.fills] == [("BUY", D(1), D(110))]
    assert result.denied == 1
    assert engine.core.mode.value == "READONLY"
