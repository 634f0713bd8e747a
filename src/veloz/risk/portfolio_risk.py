"""Portfolio risk maths: drawdown, historical VaR, leverage and concentration. Pure
functions over equity series and position notionals; analytics, so floats are fine for
returns and VaR, while drawdown and leverage stay exact."""

import itertools
import math
from collections.abc import Sequence
from decimal import Decimal

import msgspec

ZERO = Decimal(0)


class Drawdown(msgspec.Struct, frozen=True, kw_only=True):
    """The largest fall from a running peak, in money, with that fall relative to its
    peak (at the point of the largest absolute fall, as freqtrade reports it)."""

    absolute: Decimal
    relative: Decimal
    peak: Decimal
    trough: Decimal
    peak_index: int
    trough_index: int


def equity_curve(start: Decimal, profits: Sequence[Decimal]) -> list[Decimal]:
    """Equity after each period's profit, starting from `start`."""
    curve, equity = [], start
    for profit in profits:
        equity += profit
        curve.append(equity)
    return curve


def max_drawdown(curve: Sequence[Decimal]) -> Drawdown:
    best = Drawdown(
        absolute=ZERO, relative=ZERO, peak=ZERO, trough=ZERO, peak_index=0, trough_index=0
    )
    if not curve:
        return best
    peak, peak_index = curve[0], 0
    for index, equity in enumerate(curve):
        if equity > peak:
            peak, peak_index = equity, index
        fall = peak - equity
        if fall > best.absolute:
            relative = fall / peak if peak > 0 else ZERO
            best = Drawdown(
                absolute=fall,
                relative=relative,
                peak=peak,
                trough=equity,
                peak_index=peak_index,
                trough_index=index,
            )
    return best


def returns(curve: Sequence[Decimal]) -> list[float]:
    """Simple period returns of an equity curve (periods from zero equity are skipped)."""
    return [float(b / a - 1) for a, b in itertools.pairwise(curve) if a > 0]


def historical_var(period_returns: Sequence[float], confidence: float) -> float:
    """The loss (a positive fraction) not exceeded with `confidence`: minus the
    (1 - confidence) quantile of the returns, linearly interpolated. 0 with no returns."""
    if not period_returns:
        return 0.0
    ordered = sorted(period_returns)
    position = (1 - confidence) * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    quantile = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return max(0.0, -quantile)


class Exposures(msgspec.Struct, frozen=True, kw_only=True):
    gross_leverage: Decimal
    net_leverage: Decimal
    largest_share: Decimal
    hhi: Decimal


def exposures(notionals: Sequence[Decimal], equity: Decimal) -> Exposures:
    """Gross and net leverage against equity; concentration as the largest position's share
    of gross exposure and the Herfindahl-Hirschman index of the shares."""
    gross = sum((abs(n) for n in notionals), ZERO)
    net = sum(notionals, ZERO)
    shares = [abs(n) / gross for n in notionals] if gross > 0 else []
    return Exposures(
        gross_leverage=_ratio(gross, equity),
        net_leverage=_ratio(net, equity),
        largest_share=max(shares, default=ZERO),
        hhi=sum((s * s for s in shares), ZERO),
    )


def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    """`part / whole`, and a plain 0 without a position: Decimal's 0 / 100000.00 is 0E+5,
    which the API would show as is."""
    if not part or whole <= 0:
        return ZERO
    return part / whole
