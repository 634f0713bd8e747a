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
        # Runs before every order: the max() and min() below are written as comparisons,
        # which skip two builtin calls and pick the same operand max() and min() would.
        now = self._now_ns()
        elapsed_ns = now - self._last_ns
        elapsed_s = (elapsed_ns if elapsed_ns > 0 else 0) / 1e9  # max(0, elapsed_ns)
        self._last_ns = now
        tokens = self._tokens + elapsed_s * self._rate
        capacity = self._capacity
        tokens = tokens if tokens < capacity else capacity  # min(capacity, tokens)
        if tokens >= 1:
            self._tokens = tokens - 1
            return True
        self._tokens = tokens
        return False

    def retry_after_s(self) -> float:
        """How long until the next token."""
        return max(0.0, (1 - self._tokens) / self._rate)
