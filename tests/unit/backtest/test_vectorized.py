"""The vectorised backtest against the event-driven one on synthetic bars: the same fills
(Decimal for Decimal, client order ids included), the same order and denial counts, the
equity curve within 1e-9 relative, and the sweep's metrics equal to analytics' figures;
the cases where the backtester refuses an order (a cash account short, a balance that
covers the notional but not the fee reserve, a notional below the minimum); the
event-driven fallback for what the kernels do not reproduce."""

from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.sweep_metrics import assert_same_metrics
from veloz.backtest.analytics import backtest_statistics
from veloz.backtest.data import BarSeries
from veloz.backtest.engine import (
    AccountType,
    BacktestConfig,
    BacktestEngine,
    FillModel,
    FillRecord,
)
from veloz.backtest.equity_curve import equity_curve
from veloz.backtest.run import BacktestOutcome, BacktestRequest, DataRef, PreparedBacktest, prepare
from veloz.backtest.vectorized import (
    VectorizedRun,
    evaluate_grid,
    metrics_from_statistics,
    run_vectorized,
    supports,
    sweep,
)
from veloz.model.errors import CommandRejected
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import LoadedLimits, RiskLimits, SymbolLimits
from veloz.strategy.host import StrategySpec

# Every test here but the fallback's must be answered by the kernels, not by the
# event-driven path they fall back to (which would agree with the backtester trivially).
pytestmark = pytest.mark.usefixtures("kernels_only")
MINUTE_NS = 60 * 10**9
T0 = 1_704_067_200 * 10**9
STRATEGIES: dict[str, dict[str, Any]] = {
    "ema_cross": {"fast": 3, "slow": 8, "qty": "0.1"},
    "rsi_reversion": {"period": 5, "oversold": 40, "overbought": 60, "qty": "0.1"},
    "bollinger_reversion": {"period": 6, "width": 1.0, "exit": "upper", "qty": "0.1"},
    "donchian_breakout": {"entry": 5, "exit": 3, "qty": "0.1"},
}


@pytest.fixture
def kernels_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("the kernels did not take this run")

    monkeypatch.setattr(sweep, "_event_run", refuse)
    monkeypatch.setattr(sweep, "_event_metrics", refuse)


def synthetic_bars(n: int = 600, seed: int = 7) -> BarSeries:
    """A random walk around 100 with prices on a 0.01 grid, one bar a minute."""
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.004, n))), 2)
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = rng.uniform(0, 0.003, n)
    return BarSeries(
        symbol="BTCUSDT",
        source="synthetic",
        ts_ns=T0 + np.arange(n, dtype=np.int64) * MINUTE_NS,
        open=open_,
        high=np.round(np.maximum(open_, close) * (1 + spread), 2),
        low=np.round(np.minimum(open_, close) * (1 - spread), 2),
        close=close,
        volume=np.ones(n),
    )


def prepared(
    strategy: str, params: dict[str, Any], series: BarSeries | None = None, **request: Any
) -> PreparedBacktest:
    bars = series or synthetic_bars()
    fields = {"fee_bps": "10", "balances": {"USDT": "1000"}, **request}
    base = BacktestRequest(
        strategy=strategy, data=[DataRef(symbol="BTCUSDT", source="synthetic")], params=params
    )
    full = msgspec.convert({**msgspec.to_builtins(base), **fields}, BacktestRequest, strict=False)
    return prepare(full, read_source=lambda _: bars)


def assert_same_run(prep: PreparedBacktest) -> tuple[BacktestOutcome, VectorizedRun]:
    outcome = prep.run()
    run = run_vectorized(prep)
    result = outcome.result
    assert run.fills == result.fills
    assert (run.orders, run.denied) == (result.orders, result.denied)
    curve = equity_curve(prep.bars, result.fills, prep.config.balances, prep.spec.symbol)
    np.testing.assert_allclose(run.equity, curve.equity, rtol=1e-9, atol=0)
    assert_same_metrics(run.metrics, metrics_from_statistics(outcome.summary["statistics"]))
    return outcome, run


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("account", ["cash", "margin"])
@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_the_kernels_trade_as_the_backtester(strategy: str, account: str, fill: str) -> None:
    # On a cash account, base to sell: ema_cross can go short of its own position.
    balances = {"USDT": "1000", "BTC": "0.2"} if account == "cash" else {"USDT": "1000"}
    prep = prepared(
        strategy,
        STRATEGIES[strategy],
        account=account,
        fill=fill,
        slippage_bps="3",
        balances=balances,
    )
    _outcome, run = assert_same_run(prep)
    assert len(run.fills) >= 10  # the comparison covers real trading


_COSTS = st.tuples(
    st.sampled_from(["cash", "margin"]),
    st.sampled_from(["close", "next_open"]),
    st.sampled_from(["0.05", "0.1", "3", "9.9"]),  # qty: up to the whole balance
    st.sampled_from(["0", "1.5", "25"]),  # slippage bps
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    strategy=st.sampled_from(sorted(STRATEGIES)),
    period=st.integers(1, 30),
    costs=_COSTS,
)
def test_any_bars_and_parameters_trade_as_the_backtester(
    seed: int, strategy: str, period: int, costs: tuple[str, str, str, str]
) -> None:
    account, fill, qty, slippage = costs
    by_strategy: dict[str, dict[str, Any]] = {
        "ema_cross": {"fast": period, "slow": period + 1 + seed % 20},
        "rsi_reversion": {"period": period + 1, "oversold": 30 + seed % 15, "overbought": 55},
        "bollinger_reversion": {"period": period + 1, "width": 0.5 + seed % 4 / 2},
        "donchian_breakout": {"entry": period, "exit": 1 + seed % 25},
    }
    prep = prepared(
        strategy,
        {**by_strategy[strategy], "qty": qty},
        synthetic_bars(n=300, seed=seed),
        account=account,
        fill=fill,
        slippage_bps=slippage,
        balances={"USDT": "1000", "BTC": "0.5"} if account == "cash" else {"USDT": "1000"},
    )
    assert_same_run(prep)


def test_a_cash_account_cannot_short_so_ema_cross_is_denied() -> None:
    _outcome, run = assert_same_run(prepared("ema_cross", STRATEGIES["ema_cross"], account="cash"))
    # Shorts are denied (no base), so is every flip (SELL 2 x qty, holding 1 x qty):
    # the first cross up buys and the position stays.
    assert [f.side for f in run.fills] == ["BUY"]
    assert run.denied > 10


def test_a_buy_the_fee_reserve_does_not_fit_is_rejected_by_the_exchange() -> None:
    # qty 9.9 at ~100 is ~990 USDT: the core's check (notional <= free quote) passes on
    # some bars where the exchange's (notional + fee reserve) does not.
    series = synthetic_bars(seed=11)
    hits = 0
    for balance in ("990", "995", "1000", "1005"):
        params = {**STRATEGIES["rsi_reversion"], "qty": "9.9"}
        prep = prepared("rsi_reversion", params, series, balances={"USDT": balance})
        outcome, _run = assert_same_run(prep)
        hits += outcome.result.orders - len(outcome.result.fills)
    assert hits > 0  # some order was taken by the core and refused by the exchange


def test_a_notional_below_the_minimum_is_denied() -> None:
    params = {**STRATEGIES["donchian_breakout"], "qty": "0.01"}  # ~1 USDT < 5 minimum
    _outcome, run = assert_same_run(prepared("donchian_breakout", params))
    assert run.fills == [] and run.denied > 0


def test_starting_base_balance_is_valued_and_sellable() -> None:
    prep = prepared(
        "ema_cross", STRATEGIES["ema_cross"], account="cash", balances={"USDT": "50", "BTC": "1"}
    )
    _outcome, run = assert_same_run(prep)
    # A flip from long to short sells twice the qty: BTC the strategy never bought.
    assert any(f.side == "SELL" and f.qty == Decimal("0.2") for f in run.fills)


def test_a_run_without_trades_has_flat_figures() -> None:
    params = {"entry": 5000, "exit": 3, "qty": "0.1"}  # more bars than the series has
    _outcome, run = assert_same_run(prepared("donchian_breakout", params))
    m = run.metrics
    assert (m.total_return, m.volatility, m.sharpe, m.sortino, m.calmar) == (0, 0, None, None, None)
    assert (m.max_drawdown, m.trades, m.fills, m.exposure) == (0, 0, 0, 0)


def test_evaluate_grid_gives_each_set_what_run_vectorized_gives() -> None:
    series = synthetic_bars()
    config = BacktestConfig(account=AccountType.MARGIN, balances={"USDT": Decimal(1000)})
    sets = [
        {"fast": f, "slow": s, "qty": q}
        for f, s in ((2, 5), (3, 8), (4, 30))
        for q in ("0.1", "0.2")
    ]
    grid = evaluate_grid("ema_cross", sets, series, config)
    assert len(grid) == len(sets)
    for params, metrics in zip(sets, grid, strict=True):
        run = run_vectorized(prepared("ema_cross", params, series, account="margin", fee_bps="10"))
        assert metrics == run.metrics
    assert len({m.final_equity for m in grid}) == len(sets)  # the sets did differ


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_evaluate_grid_matches_the_event_driven_statistics(strategy: str) -> None:
    series = synthetic_bars(seed=3)
    config = BacktestConfig(
        account=AccountType.CASH,
        balances={"USDT": Decimal(1000)},
        fill=FillModel.NEXT_OPEN,
        slippage_bps=Decimal(2),
    )
    params = STRATEGIES[strategy]
    [metrics] = evaluate_grid(strategy, [params], series, config)
    event = prepared(strategy, params, series, fill="next_open", slippage_bps="2").run()
    assert_same_metrics(metrics, metrics_from_statistics(event.summary["statistics"]))


def test_what_the_kernels_do_not_reproduce_runs_event_driven(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.undo()  # this one falls back
    series = synthetic_bars()
    limits = RiskLimits(
        defaults=SymbolLimits(price_band_pct=None, max_qty=Decimal("0.1")),
        drawdown_warning_pct=None,
        drawdown_critical_pct=None,
    )
    risk = RiskConfig(limits=LoadedLimits(limits=limits, source=None, loaded_at_ns=0, sha256=None))
    config = BacktestConfig(account=AccountType.MARGIN, balances={"USDT": Decimal(1000)}, risk=risk)
    params = STRATEGIES["ema_cross"]
    [metrics] = evaluate_grid("ema_cross", [params], series, config)
    spec_fills = _event_fills("ema_cross", params, series, config)
    stats = backtest_statistics({"BTCUSDT": series}, spec_fills, config.balances, "BTCUSDT")
    assert metrics == metrics_from_statistics(stats)
    # With the limit a flip (SELL 0.2) is denied: fewer fills than without it.
    [free] = evaluate_grid(
        "ema_cross", [params], series, msgspec.structs.replace(config, risk=BacktestConfig().risk)
    )
    assert metrics.fills < free.fills


def test_only_the_built_in_signal_strategies_have_kernels() -> None:
    assert all(supports(name) for name in STRATEGIES)
    assert not supports("grid") and not supports("tests.support.strategies:Anything")


def test_a_bad_parameter_set_is_refused_before_anything_runs() -> None:
    config = BacktestConfig()
    with pytest.raises(CommandRejected, match="fast"):
        evaluate_grid(
            "ema_cross", [{"fast": 3, "slow": 8}, {"fast": 9, "slow": 8}], synthetic_bars(), config
        )


def test_metrics_from_statistics_reads_the_struct_and_its_json_alike() -> None:
    series = synthetic_bars()
    prep = prepared("ema_cross", STRATEGIES["ema_cross"], series, account="margin")
    result = prep.run().result
    stats = backtest_statistics(prep.bars, result.fills, prep.config.balances, "BTCUSDT")
    metrics = metrics_from_statistics(stats)
    assert metrics == metrics_from_statistics(stats.to_json())
    assert metrics.fills == len(result.fills)
    assert metrics.fees == float(result.fees)
    assert metrics.sharpe == stats.sharpe and metrics.trades == stats.trades.trades


def _event_fills(
    strategy: str, params: dict[str, Any], series: BarSeries, config: BacktestConfig
) -> list[FillRecord]:
    spec = StrategySpec(strategy_id=strategy, name=strategy, symbol="BTCUSDT", params=params)
    return BacktestEngine(config, {"BTCUSDT": series}, [spec]).run().fills
