"""The risk actions taken while trading: the circuit breaker (too many rejections or venue
errors, or too large a loss, within a window: HALTED for a cool-down) and the drawdown
levels (a warning, then READONLY above the critical level).

The monitor decides; the trading core carries out what it decides (a journaled mode
change) and publishes the alerts. Each method is told the mode in force, so a decision
made after an earlier one in the same moment sees its effect.
"""

from decimal import Decimal
from enum import StrEnum

import msgspec

from veloz.model.enums import TradingMode
from veloz.risk.breaker import CircuitBreaker
from veloz.risk.engine import RiskEngine


class AlertLevel(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class RiskAlert(msgspec.Struct, frozen=True, kw_only=True):
    """A risk threshold crossed (not journaled: what it led to, a mode change, is)."""

    level: AlertLevel
    kind: str  # what crossed it, e.g. "drawdown"
    value: Decimal
    threshold: Decimal
    message: str
    ts_ns: int


class ModeChange(msgspec.Struct, frozen=True):
    """Trading must move to `mode`, for `reason`."""

    mode: TradingMode
    reason: str


RiskAction = ModeChange | RiskAlert


class RiskMonitor:
    def __init__(self, risk: RiskEngine) -> None:
        self._risk = risk
        self.breaker = CircuitBreaker()
        self._drawdown_warned = False

    def on_rejection(self, ts_ns: int, mode: TradingMode) -> list[RiskAction]:
        """An order refused by risk or rejected by the venue."""
        limits = self._risk.loaded.limits.breaker
        return self._halt(self.breaker.note_rejection(ts_ns, limits), mode)

    def on_venue_error(self, ts_ns: int, mode: TradingMode) -> list[RiskAction]:
        limits = self._risk.loaded.limits.breaker
        return self._halt(self.breaker.note_venue_error(ts_ns, limits), mode)

    def on_equity(self, ts_ns: int, equity: Decimal, mode: TradingMode) -> list[RiskAction]:
        """A new valuation: the breaker's loss window."""
        limits = self._risk.loaded.limits.breaker
        return self._halt(self.breaker.note_equity(ts_ns, equity, limits), mode)

    def on_drawdown(self, ts_ns: int, drawdown: Decimal, mode: TradingMode) -> list[RiskAction]:
        """Warn once per crossing of the warning level; above the critical level stop new
        orders (READONLY; cancels still work). `drawdown` is a fraction of the peak."""
        limits = self._risk.loaded.limits
        warning, critical = limits.drawdown_warning_pct, limits.drawdown_critical_pct
        if warning is None and critical is None:  # no drawdown levels: nothing to decide
            self._drawdown_warned = False
            return []
        percent = drawdown * 100
        actions: list[RiskAction] = []
        if critical is not None and percent >= critical and mode is TradingMode.ACTIVE:
            message = f"drawdown {percent:.2f}% is above the critical {critical}%"
            actions = [
                _drawdown_alert(AlertLevel.CRITICAL, percent, critical, message, ts_ns),
                ModeChange(TradingMode.READONLY, message),
            ]
        elif warning is not None and percent >= warning and not self._drawdown_warned:
            message = f"drawdown {percent:.2f}% is above the warning {warning}%"
            actions = [_drawdown_alert(AlertLevel.WARNING, percent, warning, message, ts_ns)]
        self._drawdown_warned = warning is not None and percent >= warning
        return actions

    def on_clock(self, ts_ns: int, mode: TradingMode) -> list[RiskAction]:
        """A tripped breaker whose cool-down is over closes, and HALTED trading resumes.
        Only HALTED: a mode an operator or the journal set stays as it is."""
        if not self.breaker.cooled_down(ts_ns):
            return []
        self.breaker.reset()
        if mode is not TradingMode.HALTED:
            return []
        return [ModeChange(TradingMode.ACTIVE, "circuit breaker cooled down")]

    def reset_breaker(self) -> None:
        """An admin closes the breaker."""
        self.breaker.reset()

    @staticmethod
    def _halt(trip_reason: str | None, mode: TradingMode) -> list[RiskAction]:
        if trip_reason is None or mode is TradingMode.HALTED:
            return []
        return [ModeChange(TradingMode.HALTED, f"circuit breaker: {trip_reason}")]


def _drawdown_alert(
    level: AlertLevel, value: Decimal, threshold: Decimal, message: str, ts_ns: int
) -> RiskAlert:
    return RiskAlert(
        level=level, kind="drawdown", value=value, threshold=threshold, message=message, ts_ns=ts_ns
    )
