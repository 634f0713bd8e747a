"""The RiskEngine: the limits in force and the order-rate bucket, deciding for each new
order whether it may enter the book. It decides; the engine gathers the facts and acts."""

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec

from veloz.model.enums import TradingMode
from veloz.model.errors import DenialReason
from veloz.risk.checks import Check, Denial, Exposure, OrderIntent, checks_for, run_checks
from veloz.risk.limits import (
    LoadedLimits,
    RiskLimitsError,
    SymbolLimits,
    builtin_limits,
    load_limits,
)
from veloz.risk.portfolio_risk import historical_var, returns
from veloz.risk.rate import TokenBucket

# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
ACTIVE = TradingMode.ACTIVE


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True):
    # None: no engine-wide rate limit (the library default; the service sets
    # VELOZ_ORDER_RATE_LIMIT, 10/s unless configured).
    order_rate_limit: float | None = None
    # None: the built-in limits (a ±10 % price band, nothing else).
    limits: LoadedLimits | None = None
    # Where reloads read from (it may not exist yet); None: limits are fixed.
    limits_path: str | None = None
    # Reload on every change of that file (the service does; tests and backtests need not).
    watch: bool = False
    # Equity is sampled at most this often for the VaR return series, `equity_samples` kept.
    # None: a cash (spot) account, orders need free balances. A number: a margin account
    # whose net position may go short, worth up to this many times the equity.
    margin_leverage: Decimal | None = None
    equity_sample_interval_s: float = 60.0
    equity_samples: int = 1440


class RiskEngine:
    def __init__(self, config: RiskConfig, now_ns: Callable[[], int]) -> None:
        self._loaded = config.limits or builtin_limits()
        # Per symbol, its limits and the checks that can deny under them (`checks_for`),
        # worked out on the symbol's first order after each (re)load of the limits.
        self._plans: dict[str, tuple[SymbolLimits, tuple[Check, ...]]] = {}
        self._limits_path = config.limits_path
        self._bucket = (
            TokenBucket(config.order_rate_limit, now_ns) if config.order_rate_limit else None
        )
        self._sample_every_ns = int(config.equity_sample_interval_s * 1e9)
        self._equity: deque[tuple[int, Decimal]] = deque(maxlen=config.equity_samples)

    @property
    def loaded(self) -> LoadedLimits:
        return self._loaded

    def record_equity(self, ts_ns: int, equity: Decimal) -> None:
        """Keep an equity sample if the last one is at least the sample interval old."""
        if not self._equity or ts_ns - self._equity[-1][0] >= self._sample_every_ns:
            self._equity.append((ts_ns, equity))

    def value_at_risk(self, confidence: float) -> float:
        """Historical VaR of one sample interval, as a fraction of equity."""
        return historical_var(returns([equity for _, equity in self._equity]), confidence)

    @property
    def equity_sample_count(self) -> int:
        return len(self._equity)

    def equity_samples(self) -> list[tuple[int, Decimal]]:
        """The equity samples kept (`equity_sample_interval_s` apart at least), oldest first."""
        return list(self._equity)

    @property
    def equity_sample_interval_s(self) -> float:
        return self._sample_every_ns / 1e9

    @property
    def limits_path(self) -> Path | None:
        return Path(self._limits_path) if self._limits_path else None

    @property
    def rate_per_s(self) -> float | None:
        return self._bucket.rate_per_s if self._bucket is not None else None

    def reload(self) -> LoadedLimits:
        """Re-read the limits file; a file that does not validate raises RiskLimitsError and
        the limits in force stay. Decisions use new limits from the next order on."""
        if self._limits_path is None:
            raise RiskLimitsError("no risk limits file is configured (VELOZ_RISK_LIMITS_FILE)")
        self._loaded = load_limits(Path(self._limits_path))
        self._plans.clear()
        return self._loaded

    def check(self, order: OrderIntent, mode: TradingMode, exposure: Exposure) -> Denial | None:
        """Mode first (nothing else matters if trading is off), then the rate, then limits."""
        if mode is not ACTIVE:
            reason = (
                DenialReason.TRADING_HALTED
                if mode is TradingMode.HALTED
                else DenialReason.TRADING_DISABLED
            )
            return Denial(reason=reason, message=f"trading is {mode}")
        if self._bucket is not None and not self._bucket.take():
            return Denial(
                reason=DenialReason.RATE_LIMITED,
                message=f"more than {self._bucket.rate_per_s:g} orders/s; retry in "
                f"{self._bucket.retry_after_s():.3f} s",
            )
        symbol_limits, checks = self._plans.get(order.symbol) or self._plan(order.symbol)
        max_open_total = self._loaded.limits.max_open_orders
        return run_checks(checks, order, symbol_limits, max_open_total, exposure)

    def _plan(self, symbol: str) -> tuple[SymbolLimits, tuple[Check, ...]]:
        limits = self._loaded.limits
        symbol_limits = limits.for_symbol(symbol)
        checks = checks_for(symbol_limits, limits.max_open_orders)
        self._plans[symbol] = (symbol_limits, checks)
        return symbol_limits, checks
