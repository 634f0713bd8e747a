"""Portfolio risk maths against hand-computed vectors."""

from decimal import Decimal

import pytest

from veloz.risk.portfolio_risk import (
    equity_curve,
    exposures,
    historical_var,
    max_drawdown,
    returns,
)

D = Decimal


def test_drawdown_of_cumulative_profits_matches_the_reference_vector():
    # The vector: profits [0, -500, 500, 10000, -1000] from a start of 1000.
    curve = equity_curve(D(1000), [D(0), D(-500), D(500), D(10000), D(-1000)])
    assert curve == [D(1000), D(500), D(1000), D(11000), D(10000)]
    drawdown = max_drawdown(curve)
    assert drawdown.absolute == D(1000)
    assert float(drawdown.relative) == pytest.approx(0.0909090909)
    assert (drawdown.peak, drawdown.trough) == (D(11000), D(10000))
    assert (drawdown.peak_index, drawdown.trough_index) == (3, 4)


def test_no_fall_is_no_drawdown():
    assert max_drawdown([D(1), D(2), D(3)]).absolute == 0
    assert max_drawdown([]).absolute == 0


def test_historical_var_interpolates_the_loss_quantile():
    period = [-0.05, -0.02, 0.0, 0.01, 0.03]
    # 5th percentile over 5 returns: position 0.2 between -0.05 and -0.02 -> -0.044.
    assert historical_var(period, 0.95) == pytest.approx(0.044)
    assert historical_var(period, 0.99) == pytest.approx(0.0488)
    assert historical_var([0.01, 0.02], 0.95) == 0.0  # no losses, no VaR
    assert historical_var([], 0.95) == 0.0


def test_returns_of_an_equity_curve():
    assert returns([D(100), D(110), D(99)]) == pytest.approx([0.10, -0.10])


def test_leverage_and_concentration():
    result = exposures([D(30000), D(-10000)], D(20000))
    assert result.gross_leverage == D(2) and result.net_leverage == D(1)
    assert result.largest_share == D("0.75")
    assert result.hhi == D("0.625")  # 0.75^2 + 0.25^2
    assert exposures([], D(100)).gross_leverage == 0


def test_no_position_is_a_plain_zero_leverage_not_zero_with_an_exponent():
    flat = exposures([D("0.00")], D("100000.00000"))
    assert str(flat.gross_leverage) == "0" and str(flat.net_leverage) == "0"
    assert exposures([D("5000")], D("100000")).gross_leverage == D("0.05")
