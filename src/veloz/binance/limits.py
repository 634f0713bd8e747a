"""One rate limiter per Binance connection: it keeps each call inside the budgets Binance
publishes (request weight per IP, orders per account), so that Binance never answers 429,
and stops every call while a 429's `Retry-After` or a 418 ban lasts.

Binance counts in fixed windows that start on the interval's boundary (the minute, the
10 seconds, the day), so this counts the same way: what we sent in the current window,
raised to what Binance says it counted (`X-MBX-USED-WEIGHT-1m`, `X-MBX-ORDER-COUNT-10s`...)
whenever an answer carries it, since other programs on the same IP use the same budget.
A call that would go over waits for the next window; only a ban refuses outright (it may
last from two minutes to three days).

The clock is the wall clock (`time.time`), not a monotonic one: the windows must start
when Binance's do, on the minute of the epoch.
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from veloz.binance.errors import RateLimited

_INTERVAL_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86_400}
_LETTER = {"SECOND": "s", "MINUTE": "m", "HOUR": "h", "DAY": "d"}
_HEADER_KIND = {"x-mbx-used-weight-": "REQUEST_WEIGHT", "x-mbx-order-count-": "ORDERS"}


class RateBudget(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # REQUEST_WEIGHT, ORDERS, RAW_REQUESTS
    interval: str  # SECOND, MINUTE, HOUR, DAY
    interval_num: int
    limit: int

    @property
    def seconds(self) -> int:
        return _INTERVAL_SECONDS[self.interval] * self.interval_num

    @property
    def name(self) -> str:
        """e.g. REQUEST_WEIGHT_1m, ORDERS_10s: the interval as Binance's headers write it."""
        return f"{self.kind}_{self.interval_num}{_LETTER[self.interval]}"


# Binance's published spot limits (exchangeInfo replaces them once loaded).
DEFAULT_SPOT_BUDGETS = (
    RateBudget(kind="REQUEST_WEIGHT", interval="MINUTE", interval_num=1, limit=6000),
    RateBudget(kind="ORDERS", interval="SECOND", interval_num=10, limit=100),
    RateBudget(kind="ORDERS", interval="DAY", interval_num=1, limit=200_000),
    # Raised from 61,000 on 2026-04-02 (CHANGELOG.md).
    RateBudget(kind="RAW_REQUESTS", interval="MINUTE", interval_num=5, limit=300_000),
)


class _Window:
    __slots__ = ("budget", "cap", "start", "used")

    def __init__(self, budget: RateBudget, share: float) -> None:
        self.budget = budget
        self.cap = max(1, math.floor(budget.limit * share))
        self.start = 0.0
        self.used = 0

    def roll(self, now: float) -> None:
        start = now - now % self.budget.seconds
        if start != self.start:
            self.start, self.used = start, 0

    def end(self) -> float:
        return self.start + self.budget.seconds


class RateLimiter:
    """`share` is the fraction of each budget this process allows itself (a margin for
    what Binance counts that we do not see in time)."""

    def __init__(
        self,
        budgets: Sequence[RateBudget] = DEFAULT_SPOT_BUDGETS,
        *,
        share: float = 0.9,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self._share = share
        self._now = now
        self._sleep = sleep
        self._windows = [_Window(budget, share) for budget in budgets]
        self.banned_until: float | None = None
        self.backoff_until: float | None = None
        self.waits = 0  # calls that had to wait for a window
        self.refusals = 0  # calls refused while banned

    @property
    def budgets(self) -> list[RateBudget]:
        return [window.budget for window in self._windows]

    def configure(self, rate_limits: Sequence[Mapping[str, Any]]) -> None:
        """The budgets from exchangeInfo's `rateLimits`; what was used is kept."""
        used = {window.budget.name: window for window in self._windows}
        windows: list[_Window] = []
        for item in rate_limits:
            budget = RateBudget(
                kind=str(item["rateLimitType"]),
                interval=str(item["interval"]),
                interval_num=int(item["intervalNum"]),
                limit=int(item["limit"]),
            )
            window = _Window(budget, self._share)
            if (old := used.get(budget.name)) is not None:
                window.start, window.used = old.start, old.used
            windows.append(window)
        if windows:
            self._windows = windows

    async def acquire(self, weight: int, orders: int = 0) -> None:
        """Wait until a call of `weight` (placing `orders` orders) fits every budget, and
        count it. Raises RateLimited while banned."""
        while True:
            now = self._now()
            if self.banned_until is not None:
                if now < self.banned_until:
                    self.refusals += 1
                    raise RateLimited(
                        "rate limiter",
                        418,
                        None,
                        "IP banned by Binance; no call until the ban ends",
                        retry_after_s=self.banned_until - now,
                        banned=True,
                    )
                self.banned_until = None
            if self.backoff_until is not None and now < self.backoff_until:
                self.waits += 1
                await self._sleep(self.backoff_until - now)
                continue
            wait_until = 0.0
            for window in self._windows:
                window.roll(now)
                cost = self._cost(window.budget, weight, orders)
                if cost > window.budget.limit:
                    raise ValueError(f"a call costing {cost} never fits {window.budget.name}")
                # A call heavier than our share still goes alone in an empty window.
                if cost and window.used + cost > window.cap and window.used > 0:
                    wait_until = max(wait_until, window.end())
            if wait_until:
                self.waits += 1
                await self._sleep(wait_until - now)
                continue
            for window in self._windows:
                window.used += self._cost(window.budget, weight, orders)
            return

    @staticmethod
    def _cost(budget: RateBudget, weight: int, orders: int) -> int:
        if budget.kind == "REQUEST_WEIGHT":
            return weight
        if budget.kind == "ORDERS":
            return orders
        return 1  # RAW_REQUESTS

    def now(self) -> float:
        """The limiter's clock: what a caller passes back as `observe(sent_at=...)`."""
        return self._now()

    def observe(self, headers: Mapping[str, str], *, sent_at: float | None = None) -> None:
        """What Binance says it counted in the current windows (never lowers ours).

        `sent_at` (the limiter's `now()` when the request left): an answer to a request
        sent in an earlier window reports that window's count, not this one's, and is
        not applied to a window that has since begun.
        """
        now = self._now()
        for name, value in headers.items():
            lower = name.lower()
            for prefix, kind in _HEADER_KIND.items():
                if lower.startswith(prefix):
                    self._raise_to(kind, lower[len(prefix) :], value, now, sent_at)

    def _raise_to(
        self, kind: str, interval: str, value: str, now: float, sent_at: float | None
    ) -> None:
        try:
            counted = int(value)
        except ValueError:
            return
        for window in self._windows:
            budget = window.budget
            if budget.kind == kind and budget.name.lower() == f"{kind}_{interval}".lower():
                window.roll(now)
                if sent_at is None or sent_at >= window.start:
                    window.used = max(window.used, counted)

    def back_off(self, retry_after_s: float, banned: bool) -> None:
        """A 429 (`banned` False: wait) or 418 (refuse every call) for `retry_after_s`."""
        until = self._now() + max(retry_after_s, 1.0)
        if banned:
            self.banned_until = max(self.banned_until or 0.0, until)
        else:
            self.backoff_until = max(self.backoff_until or 0.0, until)

    @property
    def banned(self) -> bool:
        return self.banned_until is not None and self._now() < self.banned_until

    def headroom(self) -> dict[str, float]:
        """Per budget, the fraction of Binance's limit still unused in this window."""
        now = self._now()
        room: dict[str, float] = {}
        for window in self._windows:
            window.roll(now)
            room[window.budget.name] = max(0.0, 1 - window.used / window.budget.limit)
        return room
