"""The vectorised path against the event-driven backtester on NautilusTrader's 45,031
BTC 1-minute bars: for five parameter sets of each of the four kernel strategies, the
same fills (time, side, qty, price, fee, fee asset, order id), the equity curve within
1e-9 relative, the figures within 1e-9 of analytics', and `evaluate_grid` giving each set
exactly what `run_vectorized` gives."""

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from tests.support.sample_bars import sample_path
from tests.support.sweep_metrics import assert_same_metrics
from veloz.backtest.data import BarSeries, load_bars
from veloz.backtest.engine import AccountType
from veloz.backtest.equity_curve import equity_curve
from veloz.backtest.run import BacktestRequest, DataRef, PreparedBacktest, prepare
from veloz.backtest.vectorized import (
    evaluate_grid,
    metrics_from_statistics,
    run_vectorized,
    sweep,
)

PARAM_SETS: dict[str, list[dict[str, Any]]] = {
    "ema_cross": [
        {"fast": 10, "slow": 20},
        {"fast": 2, "slow": 3},
        {"fast": 5, "slow": 60},
        {"fast": 30, "slow": 31},
        {"fast": 50, "slow": 200, "qty": "0.01"},
    ],
    "rsi_reversion": [
        {"period": 14},
        {"period": 2, "oversold": 10, "overbought": 90},
        {"period": 7, "oversold": 25, "overbought": 60},
        {"period": 30, "oversold": 45, "overbought": 55},
        {"period": 100, "oversold": 48, "overbought": 52, "qty": "0.05"},
    ],
    "bollinger_reversion": [
        {"period": 20},
        {"period": 2, "width": 0.5},
        {"period": 50, "width": 1.5, "exit": "upper"},
        {"period": 10, "width": 2.5},
        {"period": 200, "width": 1.0, "exit": "upper", "qty": "0.05"},
    ],
    "donchian_breakout": [
        {"entry": 20, "exit": 10},
        {"entry": 1, "exit": 1},
        {"entry": 60, "exit": 30},
        {"entry": 5, "exit": 100},
        {"entry": 240, "exit": 60, "qty": "0.05"},
    ],
}
CASES = [(s, p) for s, sets in PARAM_SETS.items() for p in sets]
ACCOUNTS = {
    "margin": {"account": AccountType.MARGIN, "balances": {"USDT": Decimal(10_000)}},
    # Starting BTC to sell: ema_cross can go short of its own position on a cash account.
    "cash": {
        "account": AccountType.CASH,
        "balances": {"USDT": Decimal(10_000), "BTC": Decimal("0.1")},
    },
}


@pytest.fixture(autouse=True)
def kernels_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels must answer: not the event-driven path they can fall back to."""

    def refuse(*_: object) -> None:
        raise AssertionError("the kernels did not take this run")

    monkeypatch.setattr(sweep, "_event_run", refuse)
    monkeypatch.setattr(sweep, "_event_metrics", refuse)


@pytest.fixture(scope="module")
def sample() -> BarSeries:
    return load_bars(sample_path(), "BTCUSDT")


def prepared(
    sample: BarSeries, strategy: str, params: dict[str, Any], **costs: Any
) -> PreparedBacktest:
    request = BacktestRequest(
        strategy=strategy,
        data=[DataRef(symbol="BTCUSDT", source="sample")],
        params=params,
        fee_bps=Decimal(10),
        **costs,
    )
    return prepare(request, read_source=lambda _: sample)


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
@pytest.mark.parametrize(("strategy", "params"), CASES)
def test_the_same_fills_curve_and_figures_as_the_backtester(
    sample: BarSeries, strategy: str, params: dict[str, Any], account: str
) -> None:
    prep = prepared(sample, strategy, params, **ACCOUNTS[account])
    outcome = prep.run()
    run = run_vectorized(prep)
    assert run.fills == outcome.result.fills
    assert (run.orders, run.denied) == (outcome.result.orders, outcome.result.denied)
    curve = equity_curve(prep.bars, outcome.result.fills, prep.config.balances, "BTCUSDT")
    np.testing.assert_allclose(run.equity, curve.equity, rtol=1e-9, atol=0)
    assert_same_metrics(run.metrics, metrics_from_statistics(outcome.summary["statistics"]))


@pytest.mark.parametrize("strategy", sorted(PARAM_SETS))
def test_evaluate_grid_equals_run_vectorized_set_by_set(sample: BarSeries, strategy: str) -> None:
    sets = PARAM_SETS[strategy]
    costs = {
        "account": AccountType.MARGIN,
        "balances": {"USDT": Decimal(10_000)},
        "slippage_bps": Decimal(1),
    }
    config = prepared(sample, strategy, sets[0], **costs).config
    grid = evaluate_grid(strategy, sets, sample, config)
    singles = [run_vectorized(prepared(sample, strategy, p, **costs)).metrics for p in sets]
    assert grid == singles
    assert all(m.fills > 0 for m in grid)
