"""The engine-wide order rate limit (`VELOZ_ORDER_RATE_LIMIT` orders/s): a token bucket
that refills continuously and holds at most one second's worth, so a burst of up to the
rate is allowed and a sustained flow is held to it."""

from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_s: float, now_ns: Callable[[], int]) -> None:
        if rate_per_s <= 0:
            raise ValueError("a rate limit must be positive")
        self._rate = rate_per_s
        self._capacity = rate_per_s
        self._tokens = rate_per_s
        self._now_ns = now_ns
        self._last_ns = now_ns()

    @property
    def rate_per_s(self) -> float:
        return self._rate

    @property
    def tokens(self) -> float:
        """Tokens left as of the last `take` (what a rate-limit header reports)."""
        return self._tokens

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self._now_ns()
        elapsed_s = max(0, now - self._last_ns) / 1e9
        self._last_ns = now
        self._tokens = min(self._capacity, self._tokens + elapsed_s * self._rate)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after_s(self) -> float:
        """How long until the next token."""
        return max(0.0, (1 - self._tokens) / self._rate)
