"""The simulated market source: a seeded, reproducible random walk per symbol that emits
top-of-book quotes and trades on each instrument's price and size grid.

Paper trading and demos run on it, so it has to look like a venue (exact decimals on the
grid, a positive spread, trades at the touch) and be replayable from its seed.
"""

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec

from veloz.clock import Clock
from veloz.model.enums import OrderSide
from veloz.model.instruments import Instrument, default_instrument
from veloz.model.market import QuoteTick, TradeTick

logger = logging.getLogger(__name__)

DEFAULT_START_PRICES: dict[str, Decimal] = {
    "BTCUSDT": Decimal("50000"),
    "ETHUSDT": Decimal("3000"),
    "BNBUSDT": Decimal("600"),
    "SOLUSDT": Decimal("150"),
}
FALLBACK_START_PRICE = Decimal("100")

# Crypto trades around the clock, so a year of volatility is spread over every second of it.
_SECONDS_PER_YEAR = 365.25 * 24 * 60 * 60
_BPS = Decimal(10_000)
# Each side of the book shows between 0.2x and 2x the configured notional.
_DISPLAYED_SIZE_RANGE = (0.2, 2.0)
# A single trade takes 0.1% to 5% of the displayed notional, never more than the touch shows.
_TRADE_SIZE_RANGE = (0.001, 0.05)


class SimMarketConfig(msgspec.Struct, frozen=True, kw_only=True):
    symbols: tuple[str, ...] = ("BTCUSDT",)
    seed: int | None = None
    """VELOZ_SIM_SEED; None seeds from the clock (the effective seed is logged)."""
    tick_interval_ms: int = 200
    volatility: float = 0.6
    """Annualised sigma of the geometric random walk."""
    spread_bps: Decimal = Decimal("1")
    start_prices: dict[str, Decimal] = msgspec.field(default_factory=dict)
    displayed_notional: Decimal = Decimal("250000")
    """Typical quote value shown at the bid and at the ask."""
    mean_trades_per_tick: float = 0.5
    """Mean of the Poisson number of trades printed per symbol per tick."""

    def __post_init__(self) -> None:
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be a non-empty tuple without duplicates")
        if self.tick_interval_ms <= 0:
            raise ValueError("tick_interval_ms must be positive")
        if self.volatility < 0 or self.mean_trades_per_tick < 0:
            raise ValueError("volatility and mean_trades_per_tick must not be negative")
        if self.spread_bps < 0 or self.displayed_notional <= 0:
            raise ValueError("spread_bps must not be negative and displayed_notional positive")
        if any(price <= 0 for price in self.start_prices.values()):
            raise ValueError("start prices must be positive")

    def start_price(self, symbol: str) -> Decimal:
        if symbol in self.start_prices:
            return self.start_prices[symbol]
        return DEFAULT_START_PRICES.get(symbol, FALLBACK_START_PRICE)


class _SymbolPath:
    """One symbol's random walk. Its RNG is its own, so symbols never perturb each other."""

    def __init__(self, instrument: Instrument, start_price: Decimal, seed: int) -> None:
        self.instrument = instrument
        # Seeding from a string hashes it with SHA-512: stable across processes and
        # independent of PYTHONHASHSEED.
        self.rng = random.Random(f"{seed}/{instrument.symbol}")
        self.mid = float(start_price)
        self.trade_count = 0
        self.last_quote: QuoteTick | None = None


def sim_instruments(config: SimMarketConfig) -> dict[str, Instrument]:
    """The instruments the simulated market lists: increments scaled to each start price,
    as a venue would list them (`default_instrument`)."""
    return {
        symbol: default_instrument(symbol, config.start_price(symbol)) for symbol in config.symbols
    }


class SimMarketSource:
    def __init__(
        self,
        config: SimMarketConfig,
        clock: Clock,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        """`instruments` must list every configured symbol; by default `sim_instruments`."""
        self._config = config
        self._clock = clock
        listed = instruments if instruments is not None else sim_instruments(config)
        self._seed = config.seed if config.seed is not None else clock.time_ns()
        self._step_sigma = config.volatility * math.sqrt(
            config.tick_interval_ms / 1000 / _SECONDS_PER_YEAR
        )
        self._half_spread = config.spread_bps / _BPS / 2
        self._paths = {
            symbol: _SymbolPath(
                listed[symbol],
                config.start_price(symbol),
                self._seed,
            )
            for symbol in config.symbols
        }

    @property
    def seed(self) -> int:
        """The effective seed; pass it back as `SimMarketConfig.seed` to replay this run."""
        return self._seed

    def instruments(self) -> dict[str, Instrument]:
        return {symbol: path.instrument for symbol, path in self._paths.items()}

    def last_quote(self, symbol: str) -> QuoteTick | None:
        """The latest quote for `symbol`, None before the first step. KeyError if unknown."""
        return self._paths[symbol].last_quote

    def step(self, ts_ns: int) -> list[QuoteTick | TradeTick]:
        """Advance every symbol by one tick: per symbol a quote, then the trades it printed."""
        emitted: list[QuoteTick | TradeTick] = []
        for path in self._paths.values():
            quote = self._next_quote(path, ts_ns)
            path.last_quote = quote
            emitted.append(quote)
            emitted.extend(self._trades_at(path, quote))
        return emitted

    async def run(
        self, publish: Callable[[QuoteTick | TradeTick], None], stop: asyncio.Event
    ) -> None:
        """Step every tick interval until `stop` is set.

        Deadlines are absolute on the loop's monotonic clock so sleep error does not
        accumulate; if the loop falls behind, missed ticks are skipped rather than
        replayed in a burst, because a burst of stale quotes is worse than a gap.
        """
        logger.info(
            "sim market source started: symbols=%s seed=%d tick_interval_ms=%d",
            ",".join(self._paths),
            self._seed,
            self._config.tick_interval_ms,
        )
        loop = asyncio.get_running_loop()
        interval_s = self._config.tick_interval_ms / 1000
        deadline = loop.time()
        while not stop.is_set():
            for item in self.step(self._clock.time_ns()):
                publish(item)
            deadline = _next_deadline(deadline, interval_s, loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await stop.wait()
        logger.info("sim market source stopped")

    def _next_quote(self, path: _SymbolPath, ts_ns: int) -> QuoteTick:
        path.mid *= math.exp(self._step_sigma * path.rng.gauss(0.0, 1.0))
        increment = path.instrument.price_increment
        mid = Decimal(path.mid)
        half_spread = mid * self._half_spread
        # The bid stays a positive price and the ask at least one increment above it,
        # whatever the configured spread or however far the walk has wandered.
        bid = max(_to_grid(mid - half_spread, increment, ROUND_FLOOR), increment)
        ask = max(_to_grid(mid + half_spread, increment, ROUND_CEILING), bid + increment)
        return QuoteTick(
            symbol=path.instrument.symbol,
            bid=bid,
            ask=ask,
            bid_size=self._displayed_size(path, bid),
            ask_size=self._displayed_size(path, ask),
            ts_ns=ts_ns,
        )

    def _displayed_size(self, path: _SymbolPath, price: Decimal) -> Decimal:
        notional = float(self._config.displayed_notional) * path.rng.uniform(*_DISPLAYED_SIZE_RANGE)
        return self._size_for(path.instrument, notional, price)

    def _trades_at(self, path: _SymbolPath, quote: QuoteTick) -> list[TradeTick]:
        trades = []
        for _ in range(_poisson(path.rng, self._config.mean_trades_per_tick)):
            aggressor = OrderSide.BUY if path.rng.random() < 0.5 else OrderSide.SELL
            # A buyer lifts the ask, a seller hits the bid.
            price, shown = (
                (quote.ask, quote.ask_size)
                if aggressor is OrderSide.BUY
                else (quote.bid, quote.bid_size)
            )
            notional = float(self._config.displayed_notional) * path.rng.uniform(*_TRADE_SIZE_RANGE)
            path.trade_count += 1
            trades.append(
                TradeTick(
                    symbol=quote.symbol,
                    trade_id=f"sim-{quote.symbol}-{path.trade_count}",
                    price=price,
                    size=min(self._size_for(path.instrument, notional, price), shown),
                    aggressor=aggressor,
                    ts_ns=quote.ts_ns,
                )
            )
        return trades

    @staticmethod
    def _size_for(instrument: Instrument, notional: float, price: Decimal) -> Decimal:
        increment = instrument.size_increment
        return max(_to_grid(Decimal(notional) / price, increment, ROUND_FLOOR), increment)


def _to_grid(value: Decimal, increment: Decimal, rounding: str) -> Decimal:
    steps = (value / increment).to_integral_value(rounding=rounding)
    # Quantizing an on-grid value is exact; it only fixes the scale, so 50000 prints as
    # 50000.00 like the venue would send it.
    return (steps * increment).quantize(increment)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: cheap and exact for the small means a tick sees.
    threshold = math.exp(-mean)
    count = 0
    product = rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def _next_deadline(previous: float, interval_s: float, now: float) -> float:
    deadline = previous + interval_s
    if deadline <= now:
        missed = math.floor((now - deadline) / interval_s) + 1
        deadline += missed * interval_s
    return deadline
