"""The signal kernels bar for bar against the strategies' own indicators: the same
float64 values give the same signal codes, ties and warm-up included."""

import numpy as np
import pytest
from numpy.typing import NDArray

from veloz.backtest.vectorized import kernels as k
from veloz.strategy.builtin.bollinger_reversion import RollingBands
from veloz.strategy.builtin.donchian_breakout import RollingExtreme
from veloz.strategy.builtin.rsi_reversion import WilderRsi


def prices(n: int = 400, seed: int = 1) -> NDArray[np.float64]:
    """A random walk on a 0.5 grid: many equal closes, so ties are exercised."""
    rng = np.random.default_rng(seed)
    return 100 + np.cumsum(rng.choice([-0.5, 0.0, 0.5], n))


def codes_of(fill: object, n: int) -> list[int]:
    codes = np.full(n, -1, np.int8)
    fill(codes)  # type: ignore[operator]
    return codes.tolist()


@pytest.mark.parametrize(("fast", "slow"), [(1, 2), (3, 8), (10, 20)])
def test_ema_cross_codes_follow_the_strategy_recurrence(fast: int, slow: int) -> None:
    close = prices()
    fa, sa = 2.0 / (fast + 1), 2.0 / (slow + 1)
    expected, f, s = [], close[0], close[0]
    for i, c in enumerate(close.tolist()):
        pf, ps = f, s
        f, s = fa * c + (1.0 - fa) * pf, sa * c + (1.0 - sa) * ps
        code = 0
        if i >= slow and pf <= ps and f > s:
            code = k.LONG
        elif i >= slow and pf >= ps and f < s:
            code = k.SHORT
        expected.append(code)
    got = codes_of(lambda codes: k.ema_cross_signal(close, fast, slow, codes), len(close))
    assert got == expected
    assert k.LONG in got and k.SHORT in got


@pytest.mark.parametrize("period", [2, 5, 14])
def test_rsi_codes_follow_wilder_rsi(period: int) -> None:
    close = prices(seed=period)
    rsi = WilderRsi(period)
    expected = []
    for c in close.tolist():
        value = rsi.update(c)
        code = 0
        if value is not None:
            code = (k.ENTER if value < 35 else 0) | (k.LEAVE if value > 65 else 0)
        expected.append(code)
    got = codes_of(lambda codes: k.rsi_signal(close, period, 35.0, 65.0, codes), len(close))
    assert got == expected
    assert {k.ENTER, k.LEAVE} <= set(got)


def test_rsi_of_a_flat_market_is_50() -> None:
    close = np.full(50, 100.0)
    # 50 is neither below 50.5 (enter) nor above 49.5 (leave)... it is both.
    got = codes_of(lambda codes: k.rsi_signal(close, 5, 50.5, 60.0, codes), len(close))
    assert got == [0] * 5 + [k.ENTER] * 45


@pytest.mark.parametrize(
    ("period", "width", "upper"), [(3, 0.5, False), (6, 1.0, True), (20, 0.5, False)]
)
def test_bollinger_codes_follow_rolling_bands(period: int, width: float, upper: bool) -> None:
    close = prices(seed=period)
    bands = RollingBands(period)
    expected = []
    for c in close.tolist():
        value = bands.update(c)
        code = 0
        if value is not None:
            middle, std = value
            target = middle + width * std if upper else middle
            code = (k.ENTER if c < middle - width * std else 0) | (k.LEAVE if c >= target else 0)
        expected.append(code)
    got = codes_of(lambda codes: k.bollinger_signal(close, period, width, upper, codes), len(close))
    assert got == expected
    assert {k.ENTER, k.LEAVE} <= set(got)


@pytest.mark.parametrize("period", [1, 3, 20])
@pytest.mark.parametrize("maximum", [True, False])
def test_previous_extreme_is_the_rolling_extreme_of_the_bars_before(
    period: int, maximum: bool
) -> None:
    values = prices(seed=period + 10)
    extreme = RollingExtreme(period, maximum)
    expected = []
    for v in values.tolist():
        expected.append(extreme.value)
        extreme.push(v)
    got = k.previous_extreme(values, period, maximum)
    assert [None if np.isnan(g) else g for g in got.tolist()] == expected
