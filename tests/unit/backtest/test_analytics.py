"""Backtest statistics against vectors worked out by hand: CAGR, returns, volatility,
Sharpe, Sortino, drawdowns and their recovery, Calmar, round trips and their statistics,
the equity curve rebuilt from fills, and the inputs where a figure is not defined."""

import json
import math
from decimal import Decimal

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veloz.backtest.analytics import YEAR_NS, Statistics, analyse, backtest_statistics
from veloz.backtest.data import BarSeries
from veloz.backtest.equity_curve import EquityCurve, equity_curve
from veloz.backtest.round_trips import RoundTrip, round_trips

MINUTE = 60 * 10**9
DAY = 86_400 * 10**9
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


class F(msgspec.Struct, frozen=True):
    """A fill as the analytics read it (the fields of `FillRecord` they use)."""

    ts_ns: int
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    symbol: str = "BTCUSDT"
    fee_asset: str = "USDT"


def fill(ts_ns: int, side: str, qty: str, price: str, fee: str) -> F:
    return F(ts_ns, side, Decimal(qty), Decimal(price), Decimal(fee))


def curve(
    values: list[float], step: int = MINUTE, exposed: list[bool] | None = None
) -> EquityCurve:
    n = len(values)
    return EquityCurve(
        ts_ns=T0 + step * np.arange(n, dtype=np.int64),
        equity=np.array(values, dtype=np.float64),
        exposed=np.array(exposed if exposed is not None else [False] * n, dtype=np.bool_),
        quote_asset="USDT",
    )


def stats(values: list[float], step: int = MINUTE) -> Statistics:
    return analyse(curve(values, step), [])


def series(symbol: str, closes: list[float], step: int = MINUTE, start: int = T0) -> BarSeries:
    close = np.array(closes, dtype=np.float64)
    return BarSeries(
        symbol=symbol,
        source="test",
        ts_ns=start + step * np.arange(len(closes), dtype=np.int64),
        open=close.copy(),
        high=close.copy(),
        low=close.copy(),
        close=close,
        volume=np.ones(len(closes)),
    )


# -- returns --------------------------------------------------------------------------------


def test_cagr_of_64900_to_176000_over_three_years_of_365_days() -> None:
    result = stats([64_900.0, 176_000.0], step=3 * 365 * DAY)
    assert result.cagr == pytest.approx((176_000 / 64_900) ** (1 / 3) - 1, rel=1e-12)
    assert f"{result.cagr:.4f}" == "0.3945"
    assert result.total_return == pytest.approx(176_000 / 64_900 - 1, rel=1e-12)
    # The same growth sampled daily compounds to the same rate: CAGR follows calendar time.
    days = 3 * 365
    daily = [64_900.0 * (176_000 / 64_900) ** (k / days) for k in range(days + 1)]
    result = stats(daily, step=DAY)
    assert result.periods_per_year == 365.0
    assert result.cagr == pytest.approx((176_000 / 64_900) ** (1 / 3) - 1, rel=1e-9)


def test_returns_volatility_sharpe_and_sortino_by_hand() -> None:
    # Daily samples 100 -> 110 -> 99 -> 108.9: returns +10 %, -10 %, +10 %.
    # mean 1/30; sample std (ddof=1) sqrt((2 x (1/15)^2 + (2/15)^2) / 2) = 0.2 / sqrt(3);
    # downside deviation sqrt(mean(min(r, 0)^2)) = sqrt(0.01 / 3) = 0.1 / sqrt(3).
    result = stats([100.0, 110.0, 99.0, 108.9], step=DAY)
    assert result.interval_ns == DAY
    assert result.periods_per_year == 365.0
    assert result.total_return == pytest.approx(0.089, rel=1e-12)
    assert result.cagr == pytest.approx(1.089 ** (365 / 3) - 1, rel=1e-9)
    assert result.volatility == pytest.approx(0.2 / math.sqrt(3) * math.sqrt(365), rel=1e-12)
    assert result.sharpe == pytest.approx(math.sqrt(1095) / 6, rel=1e-12)  # 5.515...
    assert result.sortino == pytest.approx(math.sqrt(1095) / 3, rel=1e-12)  # 11.030...


def test_a_one_minute_bar_is_525600_periods_a_year_from_the_median_interval() -> None:
    # One gap of an hour among one-minute steps does not change the period.
    ts = T0 + MINUTE * np.array([0, 1, 2, 62, 63, 64], dtype=np.int64)
    equity = np.array([100.0, 101.0, 100.5, 102.0, 101.0, 103.0])
    result = analyse(
        EquityCurve(ts_ns=ts, equity=equity, exposed=np.zeros(6, np.bool_), quote_asset="USDT"),
        [],
    )
    assert result.interval_ns == MINUTE
    assert result.periods_per_year == 525_600.0
    # CAGR over the 64 minutes that passed, not 5 periods.
    assert result.cagr == pytest.approx(1.03 ** (YEAR_NS / (64 * MINUTE)) - 1, rel=1e-9)


# -- drawdowns ------------------------------------------------------------------------------


def test_drawdown_of_cumulative_profits_from_a_start_of_1000() -> None:
    # docs/spec: trade profits [0, -500, 500, 10000, -1000] from 1000 -> equity
    # [1000, 500, 1000, 11000, 10000]. The largest absolute fall is 11000 -> 10000 (1000.0,
    # 1/11 = 0.090909... of its peak, never recovered); the largest relative one is
    # 1000 -> 500 (0.5), recovered two bars after its peak.
    profits = [0, -500, 500, 10_000, -1_000]
    values = [1_000.0 + float(sum(profits[: k + 1])) for k in range(len(profits))]
    assert values == [1000.0, 500.0, 1000.0, 11000.0, 10000.0]
    result = stats(values)
    assert result.max_drawdown_abs == 1000.0
    by_abs = result.drawdown_abs
    assert by_abs is not None
    assert by_abs.relative == pytest.approx(1 / 11, rel=1e-12)
    assert f"{by_abs.relative:.6f}" == "0.090909"
    assert (by_abs.peak, by_abs.trough) == (11000.0, 10000.0)
    assert (by_abs.peak_bar, by_abs.trough_bar, by_abs.recovery_bar) == (3, 4, None)
    assert not by_abs.recovered and by_abs.recovery_ns is None
    assert (by_abs.duration_bars, by_abs.duration_ns) == (1, MINUTE)  # to the last sample

    assert result.max_drawdown == 0.5
    deepest = result.drawdown
    assert deepest is not None
    assert deepest.absolute == 500.0
    assert (deepest.peak_bar, deepest.trough_bar, deepest.recovery_bar) == (0, 1, 2)
    assert deepest.recovered
    assert (deepest.peak_ns, deepest.trough_ns, deepest.recovery_ns) == (
        T0,
        T0 + MINUTE,
        T0 + 2 * MINUTE,
    )
    assert (deepest.decline_bars, deepest.decline_ns) == (1, MINUTE)
    assert (deepest.duration_bars, deepest.duration_ns) == (2, 2 * MINUTE)
    assert (result.longest_drawdown_bars, result.longest_drawdown_ns) == (2, 2 * MINUTE)
    # Tenfold in four minutes compounds past float64 over a year: no CAGR, no Calmar.
    assert result.cagr is None and result.calmar is None


def test_drawdown_duration_runs_from_the_last_peak_sample_to_the_recovery() -> None:
    # At the peak 120 for bars 1-2, down to 90 at bar 4, back at 120 on bar 6.
    result = stats([100.0, 120.0, 120.0, 100.0, 90.0, 110.0, 120.0, 125.0, 124.0], step=DAY)
    dd = result.drawdown
    assert dd is not None
    assert dd.relative == pytest.approx(0.25, rel=1e-12)
    assert dd.absolute == 30.0
    assert (dd.peak_bar, dd.trough_bar, dd.recovery_bar) == (2, 4, 6)
    assert (dd.decline_bars, dd.duration_bars) == (2, 4)
    assert (dd.decline_ns, dd.duration_ns) == (2 * DAY, 4 * DAY)
    assert result.longest_drawdown_bars == 4
    # Calmar: CAGR over the relative drawdown.
    assert result.cagr is not None
    assert result.calmar == pytest.approx(result.cagr / 0.25, rel=1e-12)


def test_a_drawdown_never_recovered_lasts_to_the_end() -> None:
    result = stats([100.0, 105.0, 95.0, 90.0, 92.0, 100.0])
    dd = result.drawdown
    assert dd is not None
    assert dd.peak == 105.0 and dd.trough == 90.0
    assert dd.relative == pytest.approx(15 / 105, rel=1e-12)
    assert not dd.recovered and dd.recovery_bar is None
    assert (dd.duration_bars, dd.duration_ns) == (4, 4 * MINUTE)
    assert result.longest_drawdown_bars == 4


# -- undefined figures ----------------------------------------------------------------------


def _finite_json(result: Statistics) -> dict[str, object]:
    text = json.dumps(result.to_json(), allow_nan=False)  # NaN or inf would raise here
    loaded: dict[str, object] = json.loads(text)
    return loaded


def test_a_single_bar_has_returns_but_no_rates() -> None:
    result = stats([1_000.0])
    assert result.samples == 1
    assert result.total_return == 0.0
    assert result.interval_ns is None and result.periods_per_year is None
    assert result.cagr is None  # no time passed
    assert (result.volatility, result.sharpe, result.sortino, result.calmar) == (None,) * 4
    assert result.max_drawdown == 0.0 and result.drawdown is None
    assert result.turnover == 0.0
    _finite_json(result)


def test_a_flat_curve_has_zero_volatility_and_no_sharpe() -> None:
    result = stats([500.0] * 10)
    assert result.total_return == 0.0 and result.cagr == 0.0
    assert result.volatility == 0.0
    assert result.sharpe is None  # mean / 0
    assert result.sortino is None  # no return below zero
    assert result.max_drawdown == 0.0 and result.max_drawdown_abs == 0.0
    assert result.drawdown is None and result.drawdown_abs is None
    assert result.calmar is None
    assert result.longest_drawdown_ns == 0
    _finite_json(result)


def test_constant_growth_has_zero_volatility_and_no_sharpe_or_sortino() -> None:
    result = stats([100.0, 200.0, 400.0, 800.0], step=DAY)  # +100 % exactly, every day
    assert result.volatility == 0.0
    assert result.sharpe is None and result.sortino is None
    assert result.calmar is None  # no drawdown
    assert result.cagr == pytest.approx(8.0 ** (365 / 3) - 1, rel=1e-9)


def test_all_negative_returns() -> None:
    # Halving every day: returns exactly -0.5, so no spread (Sharpe undefined) but a
    # downside deviation of 0.5: Sortino = -0.5 x 365 / (0.5 x sqrt(365)) = -sqrt(365).
    result = stats([800.0, 400.0, 200.0, 100.0], step=DAY)
    assert result.sharpe is None
    assert result.sortino == pytest.approx(-math.sqrt(365), rel=1e-12)
    assert result.max_drawdown == pytest.approx(0.875, rel=1e-12)
    dd = result.drawdown
    assert dd is not None and not dd.recovered and dd.duration_bars == 3
    assert result.cagr is not None and result.calmar == pytest.approx(result.cagr / 0.875)
    # Falling by different amounts: every ratio defined and negative.
    result = stats([100.0, 90.0, 72.0, 36.0], step=DAY)
    assert result.sharpe is not None and result.sharpe < 0
    assert result.sortino is not None and result.sortino < 0
    assert result.calmar is not None and result.calmar < 0


def test_an_equity_that_reaches_zero_has_no_returns_after_it() -> None:
    result = stats([100.0, 50.0, 0.0, 10.0])
    assert result.sharpe is None and result.volatility is None and result.sortino is None
    assert result.max_drawdown == 1.0
    assert result.total_return == pytest.approx(-0.9)
    _finite_json(result)


@pytest.mark.parametrize(
    ("ts", "values", "message"),
    [
        ([0, 1, 1], [1.0, 2.0, 3.0], "strictly increasing"),
        ([0, 2, 1], [1.0, 2.0, 3.0], "strictly increasing"),
        ([0, 1], [1.0, float("nan")], "NaN or infinite"),
        ([0, 1], [0.0, 1.0], "must start positive"),
        ([0, 1], [-5.0, 1.0], "must start positive"),
    ],
)
def test_a_bad_curve_is_refused(ts: list[int], values: list[float], message: str) -> None:
    bad = EquityCurve(
        ts_ns=np.array(ts, dtype=np.int64),
        equity=np.array(values),
        exposed=np.zeros(len(ts), np.bool_),
        quote_asset="USDT",
    )
    with pytest.raises(ValueError, match=message):
        analyse(bad, [])


def test_an_empty_curve_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        curve([])


# -- round trips and trade statistics -------------------------------------------------------

# Round trips (10 bps fees):
#   1. long 1 @ 100 -> sell 1 @ 110: 10 - 0.10 - 0.11 = +9.79
#   2. long 1 @ 100 -> SELL 2 @ 90 flips: the closing half -10 - 0.10 - 0.09 = -10.19
#   3. short 1 @ 90 (the other half, fee 0.09) -> buy 1 @ 80: 10 - 0.09 - 0.08 = +9.83
#   4. long 2 @ 100 -> sell 1 @ 105, sell 1 @ 95: 5 - 5 - 0.2 - 0.105 - 0.095 = -0.40
FILLS = [
    fill(T0 + 1 * MINUTE, "BUY", "1", "100", "0.10"),
    fill(T0 + 2 * MINUTE, "SELL", "1", "110", "0.11"),
    fill(T0 + 3 * MINUTE, "BUY", "1", "100", "0.10"),
    fill(T0 + 4 * MINUTE, "SELL", "2", "90", "0.18"),
    fill(T0 + 5 * MINUTE, "BUY", "1", "80", "0.08"),
    fill(T0 + 6 * MINUTE, "BUY", "2", "100", "0.20"),
    fill(T0 + 7 * MINUTE, "SELL", "1", "105", "0.105"),
    fill(T0 + 8 * MINUTE, "SELL", "1", "95", "0.095"),
]


def test_round_trips_by_hand() -> None:
    closed, still_open = round_trips(FILLS)
    assert still_open == []
    assert [t.pnl for t in closed] == [
        Decimal("9.79"),
        Decimal("-10.19"),
        Decimal("9.83"),
        Decimal("-0.400"),
    ]
    assert [t.side for t in closed] == ["long", "long", "short", "long"]
    assert [(t.entry_ns - T0) // MINUTE for t in closed] == [1, 3, 4, 6]
    assert [(t.exit_ns - T0) // MINUTE for t in closed] == [2, 4, 5, 8]
    assert [t.qty for t in closed] == [1, 1, 1, 2]
    assert [t.entry_price for t in closed] == [100, 100, 90, 100]
    assert [t.exit_price for t in closed] == [110, 90, 80, 100]
    assert [t.fees for t in closed] == [
        Decimal("0.21"),
        Decimal("0.19"),
        Decimal("0.17"),
        Decimal("0.400"),
    ]
    assert closed[3].duration_ns == 2 * MINUTE


def test_trade_statistics_by_hand() -> None:
    t = analyse(curve([10_000.0] * 9), FILLS).trades
    assert (t.fills, t.trades, t.open_trades) == (8, 4, 0)
    assert (t.wins, t.losses, t.breakeven) == (2, 2, 0)
    assert t.win_rate == 0.5
    assert t.gross_profit == Decimal("19.62")
    assert t.gross_loss == Decimal("10.59")
    assert t.net_profit == Decimal("9.03")
    assert t.profit_factor == pytest.approx(19.62 / 10.59, rel=1e-12)
    assert t.average_win == Decimal("9.81")
    assert t.average_loss == Decimal("-5.295")
    assert t.expectancy == Decimal("2.2575")
    assert t.average_duration_ns == (1 + 1 + 1 + 2) * MINUTE // 4
    assert t.traded_notional == Decimal(100 + 110 + 100 + 180 + 80 + 200 + 105 + 95)
    assert t.fees == Decimal("0.970")


def test_an_open_position_is_not_a_trade_and_a_breakeven_is_neither_win_nor_loss() -> None:
    fills = [
        fill(T0, "BUY", "1", "100", "0"),
        fill(T0 + MINUTE, "SELL", "1", "100", "0"),  # breakeven
        fill(T0 + 2 * MINUTE, "SELL", "0.5", "100", "0.05"),  # opens a short, never closed
    ]
    t = analyse(curve([1_000.0] * 3), fills).trades
    assert (t.trades, t.open_trades, t.wins, t.losses, t.breakeven) == (1, 1, 0, 0, 1)
    assert t.win_rate == 0.0
    assert t.profit_factor is None  # no loss to divide by
    assert t.average_win is None and t.average_loss is None
    assert t.expectancy == Decimal(0)


def test_no_trades() -> None:
    result = analyse(curve([1_000.0, 1_000.0]), [])
    t = result.trades
    assert (t.fills, t.trades, t.open_trades, t.wins, t.losses) == (0, 0, 0, 0, 0)
    assert t.win_rate is None and t.profit_factor is None and t.expectancy is None
    assert t.average_duration_ns is None
    assert t.fees == Decimal(0) and t.traded_notional == Decimal(0)
    assert result.exposure == 0.0 and result.turnover == 0.0
    assert result.to_json()["trades"]["fees"] == "0"


def test_fills_out_of_order_or_malformed_are_refused() -> None:
    with pytest.raises(ValueError, match="time order"):
        analyse(curve([1.0, 1.0]), [FILLS[1], FILLS[0]])
    with pytest.raises(ValueError, match="BUY or SELL"):
        round_trips([fill(T0, "HOLD", "1", "1", "0")])
    with pytest.raises(ValueError, match="positive"):
        round_trips([fill(T0, "BUY", "0", "1", "0")])


_sides = st.sampled_from(["BUY", "SELL"])
_qty = st.integers(min_value=1, max_value=5).map(Decimal)
_price = st.integers(min_value=50, max_value=150).map(Decimal)
_fee = st.integers(min_value=0, max_value=20).map(lambda n: Decimal(n) / 100)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_sides, _qty, _price, _fee), min_size=1, max_size=30))
def test_round_trips_add_up_to_the_cash_flows_whatever_the_matching(
    trades: list[tuple[str, Decimal, Decimal, Decimal]],
) -> None:
    """Close whatever is left at the end; then the round trips' PnL sums to the quote flows
    (sells minus buys minus fees), which no matching method can change, and each round trip
    opens from flat or from a flip."""
    fills = [F(T0 + k * MINUTE, s, q, p, f) for k, (s, q, p, f) in enumerate(trades)]
    net = sum((f.qty if f.side == "BUY" else -f.qty for f in fills), Decimal(0))
    if net:
        side = "SELL" if net > 0 else "BUY"
        fills.append(F(T0 + len(fills) * MINUTE, side, abs(net), Decimal(100), Decimal("0.01")))
    closed, still_open = round_trips(fills)
    assert still_open == []
    flows = sum(
        ((f.qty * f.price if f.side == "SELL" else -f.qty * f.price) - f.fee for f in fills),
        Decimal(0),
    )
    # Equal up to the 28-digit rounding of the average-cost shares (cost x closed / held).
    assert abs(sum((t.pnl for t in closed), Decimal(0)) - flows) < Decimal("1e-20")
    fees = sum((t.fees for t in closed), Decimal(0)) - sum((f.fee for f in fills), Decimal(0))
    assert abs(fees) < Decimal("1e-20")
    assert all(isinstance(t, RoundTrip) and t.qty > 0 for t in closed)
    exits = [t.exit_ns for t in closed]
    assert exits == sorted(exits)


# -- the equity curve rebuilt from the fills ------------------------------------------------


def test_equity_curve_from_bars_balances_and_fills() -> None:
    bars = {"BTCUSDT": series("BTCUSDT", [100.0, 110.0, 90.0, 100.0])}
    fills = [
        fill(T0 + MINUTE, "BUY", "1", "110", "0.11"),
        fill(T0 + 2 * MINUTE, "SELL", "1", "90", "0.09"),
    ]
    c = equity_curve(bars, fills, {"USDT": Decimal(1000)})
    # 1000 | USDT 889.89 + 1 BTC x 110 | USDT 979.80 | unchanged
    assert c.equity.tolist() == pytest.approx([1000.0, 999.89, 979.80, 979.80], rel=1e-15)
    assert c.exposed.tolist() == [False, True, False, False]
    assert c.quote_asset == "USDT"
    result = analyse(c, fills)
    assert result.exposure == 0.25
    assert result.turnover == pytest.approx(200 / np.mean([1000.0, 999.89, 979.80, 979.80]))
    assert result.trades.net_profit == Decimal("-20.20")
    assert result.end_equity - result.start_equity == pytest.approx(-20.20, rel=1e-12)


def test_the_first_sample_is_the_starting_capital_and_a_short_is_valued_on_margin() -> None:
    # A short of 2 BTC sold on the first bar, at its close: its fee shows in the first return.
    bars = {"BTCUSDT": series("BTCUSDT", [100.0, 90.0, 120.0])}
    fills = [fill(T0, "SELL", "2", "100", "0.20")]
    c = equity_curve(bars, fills, {"USDT": Decimal(1000)})
    # USDT 1199.80 and BTC -2: 1199.80 - 180 = 1019.80; 1199.80 - 240 = 959.80
    assert c.equity.tolist() == pytest.approx([1000.0, 1019.80, 959.80], rel=1e-15)
    assert c.exposed.tolist() == [True, True, True]


def test_other_assets_are_valued_at_their_own_symbols_latest_close() -> None:
    btc = series("BTCUSDT", [100.0, 100.0, 100.0, 100.0])
    # ETH bars start one minute later and come every two minutes.
    eth = series("ETHUSDT", [10.0, 20.0], step=2 * MINUTE, start=T0 + MINUTE)
    balances = {"USDT": Decimal(1000), "ETH": Decimal(2), "XYZ": Decimal(5)}
    c = equity_curve({"BTCUSDT": btc, "ETHUSDT": eth}, [], balances)
    # ETH at its first close before it trades, then 10, 10, 20. XYZ has no price: left out.
    assert c.equity.tolist() == [1020.0, 1020.0, 1020.0, 1040.0]
    assert not c.exposed.any()


def test_equity_curve_bad_input() -> None:
    bars = {"BTCUSDT": series("BTCUSDT", [100.0])}
    with pytest.raises(ValueError, match="no bars for ETHUSDT"):
        equity_curve(bars, [], {"USDT": Decimal(1)}, symbol="ETHUSDT")
    with pytest.raises(ValueError, match="needs bars"):
        equity_curve({}, [], {})
    with pytest.raises(ValueError, match="time order"):
        equity_curve(bars, [FILLS[2], FILLS[1]], {"USDT": Decimal(1)})
    with pytest.raises(ValueError, match="must start positive"):
        backtest_statistics(bars, [], {})


def test_to_json_is_plain_data_with_decimals_as_strings() -> None:
    result = analyse(curve([10_000.0, 10_010.0, 9_990.0]), FILLS[:2])
    data = _finite_json(result)
    trades = data["trades"]
    assert isinstance(trades, dict)
    assert trades["fees"] == "0.21" and trades["net_profit"] == "9.79"
    assert data["sharpe"] == result.sharpe
    assert msgspec.convert(result.to_json(), Statistics) == result
