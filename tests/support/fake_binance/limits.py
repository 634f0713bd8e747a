"""The fake's rate limits, counted per IP as Binance does: request weight per minute (its
`X-MBX-USED-WEIGHT-1m` header on every answer), orders per 10 s and per day
(`X-MBX-ORDER-COUNT-10s`/`-1d`), 429 with `Retry-After` past the budget and a 418 ban for a
client that keeps sending after 429s."""

from collections import defaultdict
from dataclasses import dataclass, field

from tests.support.fake_binance.wire import Refusal

_DAY_MS = 86_400_000
_TEN_S_MS = 10_000


@dataclass
class RateLimits:
    weight_limit: int = 6000
    orders_limit_10s: int = 100
    orders_limit_1d: int = 200_000
    # Binance's minute; tests may shorten it so that a 429 is over in a moment.
    weight_window_ms: int = 60_000
    # How many requests refused with 429 in one window before the IP is banned, and for how long.
    ban_after_429s: int = 3
    ban_s: int = 120
    # Weight used per window (keyed by window start in ms), for assertions.
    used_weight: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    orders: list[int] = field(default_factory=list)  # placement times, ms
    refused_429: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    banned_until_ms: int | None = None

    def window(self, now_ms: int) -> int:
        return now_ms - now_ms % self.weight_window_ms

    def current_weight(self, now_ms: int) -> int:
        return self.used_weight.get(self.window(now_ms), 0)

    def admit(self, weight: int, now_ms: int) -> None:
        """Count a request; refuse it with 429 past the budget, 418 while banned."""
        if self.banned_until_ms is not None and now_ms < self.banned_until_ms:
            raise self._banned(now_ms)
        self.banned_until_ms = None
        start = self.window(now_ms)
        self.used_weight[start] += weight
        if self.used_weight[start] <= self.weight_limit:
            return
        self.refused_429[start] += 1
        if self.refused_429[start] > self.ban_after_429s:
            self.banned_until_ms = now_ms + self.ban_s * 1000
            raise self._banned(now_ms)
        retry = -(-(start + self.weight_window_ms - now_ms) // 1000)
        raise RateRefusal(
            -1003,
            f"Too much request weight used; current limit is {self.weight_limit} request "
            "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
            "polling the API.",
            429,
            retry_after_s=max(1, retry),
        )

    def _banned(self, now_ms: int) -> "RateRefusal":
        assert self.banned_until_ms is not None
        return RateRefusal(
            -1003,
            f"Way too much request weight used; IP banned until {self.banned_until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            418,
            retry_after_s=max(1, -(-(self.banned_until_ms - now_ms) // 1000)),
        )

    def admit_order(self, now_ms: int) -> None:
        ten_s, day = self.order_counts(now_ms)
        if ten_s >= self.orders_limit_10s:
            raise RateRefusal(
                -1015,
                f"Too many new orders; current limit is {self.orders_limit_10s} orders per "
                "10 SECOND.",
                429,
                retry_after_s=10,
            )
        if day >= self.orders_limit_1d:
            raise RateRefusal(
                -1015,
                f"Too many new orders; current limit is {self.orders_limit_1d} orders per 1 DAY.",
                429,
                retry_after_s=86_400,
            )

    def count_order(self, now_ms: int) -> None:
        self.orders.append(now_ms)

    def order_counts(self, now_ms: int) -> tuple[int, int]:
        ten_s_start = now_ms - now_ms % _TEN_S_MS
        day_start = now_ms - now_ms % _DAY_MS
        return (
            sum(1 for t in self.orders if t >= ten_s_start),
            sum(1 for t in self.orders if t >= day_start),
        )

    def headers(self, now_ms: int) -> dict[str, str]:
        ten_s, day = self.order_counts(now_ms)
        return {
            "X-MBX-USED-WEIGHT-1m": str(self.current_weight(now_ms)),
            "X-MBX-ORDER-COUNT-10s": str(ten_s),
            "X-MBX-ORDER-COUNT-1d": str(day),
        }

    def rate_limits(self, now_ms: int) -> list[dict[str, object]]:
        """The WebSocket API's `rateLimits` array (and exchangeInfo's, without counts)."""
        ten_s, day = self.order_counts(now_ms)
        return [
            _limit("REQUEST_WEIGHT", "MINUTE", 1, self.weight_limit, self.current_weight(now_ms)),
            _limit("ORDERS", "SECOND", 10, self.orders_limit_10s, ten_s),
            _limit("ORDERS", "DAY", 1, self.orders_limit_1d, day),
        ]


def _limit(kind: str, interval: str, num: int, limit: int, count: int) -> dict[str, object]:
    return {
        "rateLimitType": kind,
        "interval": interval,
        "intervalNum": num,
        "limit": limit,
        "count": count,
    }


class RateRefusal(Refusal):
    """A 429 or 418, which carries `Retry-After`."""

    def __init__(self, code: int, msg: str, status: int, *, retry_after_s: int) -> None:
        super().__init__(code, msg, status)
        self.retry_after_s = retry_after_s
