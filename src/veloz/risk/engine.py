"""The RiskEngine: the limits in force and the order-rate bucket, deciding for each new
order whether it may enter the book. It decides; the engine gathers the facts and acts."""

from collections.abc import Callable

import msgspec

from veloz.model.enums import TradingMode
from veloz.risk.checks import Denial, Exposure, OrderIntent, pre_trade
from veloz.risk.limits import LoadedLimits, builtin_limits
from veloz.risk.rate import TokenBucket


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True):
    # None: no engine-wide rate limit (the library default; the service sets
    # VELOZ_ORDER_RATE_LIMIT, 10/s unless configured).
    order_rate_limit: float | None = None
    # None: the built-in limits (a ±10 % price band, nothing else).
    limits: LoadedLimits | None = None


class RiskEngine:
    def __init__(self, config: RiskConfig, now_ns: Callable[[], int]) -> None:
        self._loaded = config.limits or builtin_limits()
        self._bucket = (
            TokenBucket(config.order_rate_limit, now_ns) if config.order_rate_limit else None
        )

    @property
    def loaded(self) -> LoadedLimits:
        return self._loaded

    def replace_limits(self, loaded: LoadedLimits) -> None:
        """Swap the limits in force (a reload); decisions use them from the next order on."""
        self._loaded = loaded

    def check(self, order: OrderIntent, mode: TradingMode, exposure: Exposure) -> Denial | None:
        """Mode first (nothing else matters if trading is off), then the rate, then limits."""
        if mode is not TradingMode.ACTIVE:
            reason = "trading_halted" if mode is TradingMode.HALTED else "trading_disabled"
            return Denial(reason=reason, message=f"trading is {mode}")
        if self._bucket is not None and not self._bucket.take():
            return Denial(
                reason="rate_limited",
                message=f"more than {self._bucket.rate_per_s:g} orders/s; retry in "
                f"{self._bucket.retry_after_s():.3f} s",
            )
        limits = self._loaded.limits
        return pre_trade(order, limits.for_symbol(order.symbol), limits.max_open_orders, exposure)
