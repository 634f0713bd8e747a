"""The per-credential rate limit shared by every gateway replica: one token bucket per
credential in Redis (`<stream>:limit:<actor>`), taken atomically by a Lua script, so a
credential gets `VELOZ_API_RATE_LIMIT` requests a second across all replicas, not per
replica.

Redis down: each replica falls back to its own in-process bucket at the same rate (a
credential may then get up to the rate times the replicas) rather than refusing
everyone or letting everything through; it is logged once per outage.
"""

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from veloz.risk.rate import TokenBucket

logger = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV: rate per second, burst, now in ms. Answers {allowed, tokens
# left (floor), ms until the next token}. The bucket expires once it would be full anyway.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1])
local at = tonumber(held[2])
if tokens == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
local wait = 0
if tokens < 1 then
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
return {allowed, math.floor(tokens), wait}
"""


class RedisRateLimit:
    def __init__(self, redis: Redis, prefix: str, rate: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self.rate = rate
        self._script = redis.register_script(_TAKE)
        self._local: dict[str, TokenBucket] = {}
        self._failing = False
        self.fallbacks = 0

    async def take(self, key: str) -> tuple[bool, int, float]:
        try:
            allowed, left, wait_ms = await self._script(
                keys=[f"{self._prefix}:limit:{key}"],
                args=[self.rate, max(1.0, self.rate), int(time.time() * 1000)],
            )
        except (RedisError, OSError) as exc:
            return self._take_here(key, exc)
        if self._failing:
            logger.info("gateway: rate limits shared through Redis again")
            self._failing = False
        return bool(allowed), int(left), int(wait_ms) / 1000

    def _take_here(self, key: str, exc: Exception) -> tuple[bool, int, float]:
        if not self._failing:
            logger.warning("gateway: rate limits kept per replica while Redis fails: %s", exc)
            self._failing = True
        self.fallbacks += 1
        bucket = self._local.get(key)
        if bucket is None:
            bucket = self._local[key] = TokenBucket(self.rate, time.monotonic_ns)
        allowed = bucket.take()
        return allowed, int(bucket.tokens), bucket.retry_after_s()
