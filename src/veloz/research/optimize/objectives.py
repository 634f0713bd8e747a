"""What an optimisation maximises: one figure of a backtest's `SweepMetrics`, with a
minimum number of closed trades below which a trial does not count.

Every objective is "higher is better". A trial without a score (too few trades, or the
figure undefined: a Sharpe ratio with no volatility, a Calmar ratio without a drawdown)
ranks below every scored one; Optuna is told it was pruned.
"""

from enum import StrEnum

from veloz.backtest.vectorized import SweepMetrics
from veloz.model.errors import CommandRejected


class Objective(StrEnum):
    SHARPE = "sharpe"  # annualised mean / std of per-bar returns
    SORTINO = "sortino"  # annualised mean / downside deviation
    CALMAR = "calmar"  # CAGR / maximum relative drawdown
    TOTAL_RETURN = "total_return"  # final / starting equity - 1

    @classmethod
    def named(cls, name: str) -> "Objective":
        try:
            return cls(name)
        except ValueError:
            allowed = ", ".join(member.value for member in cls)
            raise CommandRejected(f"unknown objective {name!r}: one of {allowed}") from None


def score(metrics: SweepMetrics | None, objective: Objective, min_trades: int) -> float | None:
    """The trial's score; None when it does not count."""
    if metrics is None or metrics.trades < min_trades:
        return None
    value: float | None = getattr(metrics, objective.value)
    return value


def better(candidate: float | None, incumbent: float | None) -> bool:
    """Whether `candidate` beats `incumbent` (a tie keeps the earlier trial)."""
    return candidate is not None and (incumbent is None or candidate > incumbent)
