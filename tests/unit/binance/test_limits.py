"""The rate limiter keeps every window inside Binance's budgets (also under a long burst,
on a simulated clock), takes Binance's own counts from the headers, waits out a 429's
Retry-After and refuses every call during a 418 ban."""

import asyncio

import pytest

from veloz.binance.errors import RateLimited
from veloz.binance.limits import RateBudget, RateLimiter


class FakeTime:
    """Wall time that moves only when the limiter sleeps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        self.slept += seconds


WEIGHT = RateBudget(kind="REQUEST_WEIGHT", interval="MINUTE", interval_num=1, limit=6000)
ORDERS = RateBudget(kind="ORDERS", interval="SECOND", interval_num=10, limit=100)


def limiter(clock: FakeTime, share: float = 0.9) -> RateLimiter:
    return RateLimiter((WEIGHT, ORDERS), share=share, now=clock, sleep=clock.sleep)


async def test_a_ten_minute_burst_never_exceeds_the_budget_in_any_window():
    clock = FakeTime()
    limits = limiter(clock)
    per_minute: dict[int, int] = {}
    per_ten_seconds: dict[int, int] = {}
    # As fast as the limiter lets through: weight-20 calls, every third one an order.
    calls = 0
    while clock.now < 1_700_000_000.0 + 600:
        orders = 1 if calls % 3 == 0 else 0
        await limits.acquire(20, orders)
        minute, ten = int(clock.now // 60), int(clock.now // 10)
        per_minute[minute] = per_minute.get(minute, 0) + 20
        per_ten_seconds[ten] = per_ten_seconds.get(ten, 0) + orders
        calls += 1
    assert max(per_minute.values()) <= 6000 * 0.9
    assert max(per_ten_seconds.values()) <= 100 * 0.9
    assert calls > 2000  # it did let a lot through: about 5,400 weight a minute
    assert limits.waits > 0


class SimulatedBinance:
    """Binance's own count per fixed minute, as it reports it in X-MBX-USED-WEIGHT-1m,
    with another program on the same IP spending weight we never see ourselves: a burst
    at the start of every minute."""

    def __init__(self, clock: FakeTime, neighbour_burst: int) -> None:
        self.clock = clock
        self.neighbour_burst = neighbour_burst
        self.counted: dict[int, int] = {}

    def request(self, weight: int) -> dict[str, str]:
        minute = int(self.clock.now // 60)
        used = self.counted.get(minute, self.neighbour_burst) + weight
        self.counted[minute] = used
        return {"X-MBX-USED-WEIGHT-1m": str(used)}


async def test_a_burst_with_a_neighbour_on_the_ip_stays_inside_binances_own_count():
    clock = FakeTime()
    limits = limiter(clock)
    binance = SimulatedBinance(clock, neighbour_burst=2000)  # unseen but in the headers
    start = clock.now
    while clock.now < start + 600:
        await limits.acquire(10)
        sent_at = limits.now()
        headers = binance.request(10)
        clock.now += 0.001  # the round trip
        limits.observe(headers, sent_at=sent_at)
    assert max(binance.counted.values()) <= 6000
    assert sum(binance.counted.values()) > 10 * 5000  # and it kept going


async def test_concurrent_callers_share_one_budget():
    clock = FakeTime()
    limits = limiter(clock)
    granted: dict[int, int] = {}

    async def caller() -> None:
        for _ in range(100):
            await limits.acquire(30)
            minute = int(clock.now // 60)
            granted[minute] = granted.get(minute, 0) + 30

    await asyncio.gather(*(caller() for _ in range(5)))
    assert max(granted.values()) <= 5400
    assert sum(granted.values()) == 5 * 100 * 30


async def test_an_answer_from_the_previous_window_does_not_count_in_this_one():
    clock = FakeTime(1_700_000_039.9)  # 1_700_000_040 is a minute boundary
    limits = limiter(clock)
    await limits.acquire(10)
    sent_at = limits.now()
    clock.now += 0.2  # the answer arrives in the next minute
    limits.observe({"X-MBX-USED-WEIGHT-1m": "5300"}, sent_at=sent_at)
    assert limits.headroom()["REQUEST_WEIGHT_1m"] == 1.0
    limits.observe({"X-MBX-USED-WEIGHT-1m": "600"}, sent_at=limits.now())
    assert limits.headroom()["REQUEST_WEIGHT_1m"] == pytest.approx(0.9)


async def test_a_call_that_can_never_fit_is_refused():
    limits = limiter(FakeTime())
    with pytest.raises(ValueError, match="REQUEST_WEIGHT_1m"):
        await limits.acquire(6001)


async def test_binances_header_counts_raise_ours():
    clock = FakeTime(1_700_000_040.0)  # 40 s into a minute
    limits = limiter(clock)
    limits.observe({"X-MBX-USED-WEIGHT-1M": "5390", "x-mbx-order-count-10s": "3"})
    assert limits.headroom()["REQUEST_WEIGHT_1m"] == pytest.approx(1 - 5390 / 6000)
    await limits.acquire(10)  # 5400 is the cap: still fits
    await limits.acquire(10)  # does not: waits for the next minute
    assert clock.now == pytest.approx(1_700_000_040.0 + 20)


async def test_a_header_never_lowers_our_count():
    clock = FakeTime()
    limits = limiter(clock)
    for _ in range(10):
        await limits.acquire(100)
    limits.observe({"X-MBX-USED-WEIGHT-1M": "5"})
    assert limits.headroom()["REQUEST_WEIGHT_1m"] == pytest.approx(1 - 1000 / 6000)


async def test_429_waits_out_retry_after():
    clock = FakeTime()
    limits = limiter(clock)
    limits.back_off(30, banned=False)
    assert not limits.banned
    await limits.acquire(1)
    assert clock.slept == pytest.approx(30)
    await limits.acquire(1)  # over: no more waiting
    assert clock.slept == pytest.approx(30)


async def test_418_refuses_every_call_until_the_ban_ends():
    clock = FakeTime()
    limits = limiter(clock)
    limits.back_off(120, banned=True)
    assert limits.banned
    with pytest.raises(RateLimited) as refused:
        await limits.acquire(1)
    assert refused.value.banned and refused.value.retry_after_s == pytest.approx(120)
    assert clock.slept == 0  # refused at once, not held for two minutes
    clock.now += 121
    await limits.acquire(1)
    assert not limits.banned and limits.refusals == 1


def test_budgets_come_from_exchange_info():
    clock = FakeTime()
    limits = limiter(clock)
    limits.configure(
        [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 1200,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 6100,
            },
        ]
    )
    assert [b.name for b in limits.budgets] == [
        "REQUEST_WEIGHT_1m",
        "ORDERS_10s",
        "RAW_REQUESTS_5m",
    ]
    assert limits.budgets[0].limit == 1200


def test_share_must_be_a_fraction():
    with pytest.raises(ValueError):
        RateLimiter(share=0)
