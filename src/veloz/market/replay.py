"""A market data source that replays bars from a file on a simulated clock: paper trading
over history, through the live runtime. Each bar moves the clock to its time and becomes
a quote at its close (no spread, deep, as the backtester sees the market) and then the
closed bar itself.

Between bars it waits until the engine has settled (`pace`): what the last bar caused
(orders, fills, their journal entries, the strategies hearing of them) is over before
the clock moves on, as it is in a backtest. So the same strategy on the same bars makes
the same orders here and in `veloz backtest run`.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from veloz.clock import SimulatedClock
from veloz.model.market import Bar, QuoteTick

logger = logging.getLogger(__name__)

# The depth a replayed price shows: bars carry no book, so an order trades whole.
_DEPTH = Decimal(10) ** 12

# One bar: time (UTC ns), open, high, low, close, volume.
BarRow = tuple[int, float, float, float, float, float]


class ReplayBarSource:
    def __init__(self, symbol: str, bars: Sequence[BarRow], clock: SimulatedClock) -> None:
        if not bars:
            raise ValueError(f"no bars to replay for {symbol}")
        self._symbol = symbol
        self._bars = bars
        self._clock = clock
        # Set by the runtime: waits until the engine has handled everything so far.
        self.pace: Callable[[], Awaitable[None]] | None = None
        self.replayed = 0

    async def run(self, publish: Callable[[QuoteTick | Bar], None], stop: asyncio.Event) -> None:
        logger.info("replaying %d bars of %s", len(self._bars), self._symbol)
        for ts_ns, open_, high, low, close, volume in self._bars:
            if stop.is_set():
                break
            self._clock.advance_to(ts_ns)
            price = Decimal(repr(close))
            publish(
                QuoteTick(
                    symbol=self._symbol,
                    bid=price,
                    ask=price,
                    bid_size=_DEPTH,
                    ask_size=_DEPTH,
                    ts_ns=ts_ns,
                )
            )
            publish(
                Bar(
                    symbol=self._symbol,
                    interval="1m",
                    ts_ns=ts_ns,
                    open=Decimal(repr(open_)),
                    high=Decimal(repr(high)),
                    low=Decimal(repr(low)),
                    close=price,
                    volume=Decimal(repr(volume)),
                    closed=True,
                )
            )
            self.replayed += 1
            if self.pace is not None:
                await self.pace()
            else:
                await asyncio.sleep(0)
        logger.info("replay of %s finished after %d bars", self._symbol, self.replayed)
