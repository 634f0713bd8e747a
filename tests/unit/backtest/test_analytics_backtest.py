"""The statistics of a real backtest, end to end: `ema_cross` on NautilusTrader's public BTC
1-minute bars, its equity curve rebuilt from the fills landing on the engine's final equity,
its fees and round trips adding up, and its curve statistics matching empyrical's."""

import json
from decimal import Decimal

import empyrical  # type: ignore[import-untyped]
import numpy as np
import pytest

from tests.support.sample_bars import sample_path
from veloz.backtest.analytics import backtest_statistics
from veloz.backtest.data import load_bars
from veloz.backtest.engine import AccountType, BacktestConfig, BacktestEngine
from veloz.backtest.equity_curve import equity_curve
from veloz.strategy.host import StrategySpec


def test_statistics_of_ema_cross_on_the_btc_sample() -> None:
    bars = {"BTCUSDT": load_bars(sample_path(), "BTCUSDT")}
    config = BacktestConfig(account=AccountType.MARGIN, balances={"USDT": Decimal(1_000_000)})
    spec = StrategySpec(
        strategy_id="stats",
        name="ema_cross",
        symbol="BTCUSDT",
        params={"fast": 10, "slow": 20, "qty": "0.001"},
    )
    result = BacktestEngine(config, bars, [spec]).run()
    fills = result.fills
    stats = backtest_statistics(bars, fills, config.balances)

    # The curve: one sample per bar, from the starting capital to the engine's final equity.
    curve = equity_curve(bars, fills, config.balances)
    n = len(bars["BTCUSDT"])
    assert stats.samples == len(curve.equity) == n == 45_031
    assert stats.start_equity == 1_000_000.0
    assert stats.end_equity == pytest.approx(float(result.final_equity), rel=1e-13)
    assert stats.total_return == pytest.approx(float(result.final_equity) / 1e6 - 1, rel=1e-9)
    assert (stats.interval_ns, stats.periods_per_year) == (60_000_000_000, 525_600.0)

    # Fees and fills as the engine counted them.
    trades = stats.trades
    assert trades.fees == result.fees
    assert trades.fills == len(fills) == 2_067
    assert trades.traded_notional == sum((f.qty * f.price for f in fills), Decimal(0))
    # ema_cross reverses its position on every fill after the first: each closes one round
    # trip and opens the next, and the last one stays open (final position -0.001).
    assert result.final_positions["BTCUSDT"] != 0
    assert (trades.trades, trades.open_trades) == (len(fills) - 1, 1)
    assert trades.wins + trades.losses + trades.breakeven == trades.trades
    # The closed round trips' PnL is every fill's net quote flow but the half of the last
    # fill that opened the position still held.
    flows = [(f.qty * f.price if f.side == "SELL" else -f.qty * f.price) - f.fee for f in fills]
    assert abs(trades.net_profit - (sum(flows, Decimal(0)) - flows[-1] / 2)) < Decimal("1e-18")
    assert trades.net_profit == trades.gross_profit - trades.gross_loss
    # Exposed from the first fill's bar on.
    first = int(np.searchsorted(curve.ts_ns, fills[0].ts_ns))
    assert stats.exposure == pytest.approx((n - first) / n, rel=1e-12)

    # The curve statistics, against empyrical on the same curve (no gap in the sample, so
    # calendar time and the period count agree).
    returns = curve.equity[1:] / curve.equity[:-1] - 1
    factor = 525_600
    assert stats.cagr == pytest.approx(empyrical.annual_return(returns, annualization=factor))
    assert stats.volatility == pytest.approx(
        empyrical.annual_volatility(returns, annualization=factor), rel=1e-9
    )
    assert stats.sharpe == pytest.approx(
        empyrical.sharpe_ratio(returns, annualization=factor), rel=1e-9
    )
    assert stats.sortino == pytest.approx(
        empyrical.sortino_ratio(returns, annualization=factor), rel=1e-9
    )
    assert stats.max_drawdown == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
    assert stats.calmar == pytest.approx(
        empyrical.calmar_ratio(returns, annualization=factor), rel=1e-6
    )
    dd = stats.drawdown
    assert dd is not None and dd.peak_bar <= dd.trough_bar
    assert dd.relative == stats.max_drawdown

    # The summary is plain JSON: no NaN or infinity, Decimals as strings.
    data = json.loads(json.dumps(stats.to_json(), allow_nan=False))
    assert data["trades"]["fees"] == str(result.fees)
    assert data["samples"] == n
