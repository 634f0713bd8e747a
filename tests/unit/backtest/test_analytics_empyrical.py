"""Every statistic empyrical-reloaded also computes, cross-checked on random equity curves:
an independent implementation (a test dependency only) with the same conventions, given
our periods per year as its `annualization`."""

import empyrical  # type: ignore[import-untyped]
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from veloz.backtest.analytics import YEAR_NS, Statistics, analyse
from veloz.backtest.equity_curve import EquityCurve

T0 = 1_640_991_660_000_000_000
INTERVALS = {
    "1m": 60 * 10**9,  # 525,600 periods a year
    "1h": 3_600 * 10**9,  # 8,760
    "1d": 86_400 * 10**9,  # 365
}


def _curve(equity: np.ndarray, interval_ns: int) -> EquityCurve:
    n = len(equity)
    return EquityCurve(
        ts_ns=T0 + interval_ns * np.arange(n, dtype=np.int64),
        equity=equity.astype(np.float64),
        exposed=np.zeros(n, dtype=np.bool_),
        quote_asset="USDT",
    )


def _check_against_empyrical(result: Statistics, equity: np.ndarray, interval_ns: int) -> None:
    returns = equity[1:] / equity[:-1] - 1.0
    factor = YEAR_NS / interval_ns
    assert result.periods_per_year == pytest.approx(factor, rel=1e-15)
    rel = 1e-9

    # CAGR is compared as growth factors (1 + CAGR): both sides raise a product of many
    # floats to a power of up to 525,600 / periods, so they agree to relative precision on
    # that scale, not on a CAGR near zero.
    # Each of the n returns carries ~1 ulp into the product, and the power factor / n
    # multiplies that: about factor x eps in all.
    growth_rel = rel + 16 * factor * np.finfo(np.float64).eps
    expected_cagr = empyrical.annual_return(returns, annualization=factor)
    assert expected_cagr == pytest.approx(empyrical.cagr(returns, annualization=factor))
    if np.isfinite(expected_cagr):
        assert result.cagr is not None
        assert 1 + result.cagr == pytest.approx(1 + expected_cagr, rel=growth_rel)
    else:  # past float64: empyrical's inf is our None
        assert result.cagr is None or result.cagr > 1e300
    expected_vol = empyrical.annual_volatility(returns, annualization=factor)
    expected = empyrical.sharpe_ratio(returns, annualization=factor)
    spread, size = np.ptp(returns), np.abs(returns).max()
    if spread == 0:  # no spread: empyrical's inf or NaN is our None
        assert expected_vol == 0.0 and not np.isfinite(expected)
    if spread <= 16 * np.finfo(np.float64).eps * size:
        # Returns equal to their last few digits: the std is rounding noise (empyrical
        # returns a Sharpe ratio near 1e15 there).
        assert result.volatility == 0.0 and result.sharpe is None
    elif spread > 1e-5 * size:
        # Below that the mean and std are computed to fewer than 9 digits by either side.
        assert result.volatility == pytest.approx(expected_vol, rel=rel)
        assert result.sharpe == pytest.approx(expected, rel=rel)
    expected = empyrical.sortino_ratio(returns, annualization=factor)
    if np.isfinite(expected):
        assert result.sortino == pytest.approx(expected, rel=rel)
    else:  # no return below zero: empyrical's inf is our None
        assert result.sortino is None
    # empyrical's drawdown is negative; ours is the fraction lost. empyrical rebuilds the
    # curve as a product of (1 + r): that drifts from the curve by ~1e-16 per step.
    dd_slack = 1e-10
    expected_dd = -empyrical.max_drawdown(returns)
    assert result.max_drawdown == pytest.approx(expected_dd, rel=rel, abs=dd_slack)
    expected = empyrical.calmar_ratio(returns, annualization=factor)
    if not np.isfinite(expected):
        assert result.calmar is None
    elif result.max_drawdown > 1e-9:
        # CAGR / drawdown: the error of each part, carried through the quotient. Tight
        # for any real drawdown; a drawdown near rounding level is compared loosely.
        dd = result.max_drawdown
        slack = abs(expected) * (rel + dd_slack / dd) + growth_rel * (1 + abs(expected_cagr)) / dd
        assert result.calmar == pytest.approx(expected, abs=slack)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("interval", sorted(INTERVALS))
def test_random_curves_match_empyrical(seed: int, interval: str) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 3_000))
    drift = rng.normal(0.0, 2e-4)
    spread = rng.uniform(1e-5, 2e-2)
    returns = rng.normal(drift, spread, size=n - 1)
    equity = 10_000.0 * np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    result = analyse(_curve(equity, INTERVALS[interval]), [])
    assert result.sharpe is not None and result.sortino is not None
    _check_against_empyrical(result, equity, INTERVALS[interval])


# empyrical warns where a growth factor overflows; VeloZ reports None there.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(
    arrays(
        np.float64,
        st.integers(min_value=3, max_value=200),
        elements=st.floats(min_value=-0.5, max_value=0.5, allow_nan=False),
    ),
    st.sampled_from(sorted(INTERVALS.values())),
)
def test_any_curve_matches_empyrical(returns: np.ndarray, interval_ns: int) -> None:
    """Hypothesis' curves include flat stretches, all-negative and all-positive runs."""
    equity = 1_000.0 * np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    result = analyse(_curve(equity, interval_ns), [])
    _check_against_empyrical(result, equity, interval_ns)
