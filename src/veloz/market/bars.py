"""One-minute OHLCV bars built from trades, per symbol: the open bar being built and a
bounded history of closed ones.

A bar closes when the first trade of a later minute arrives; minutes without trades
produce no bar. Trades older than the open bar cannot change a closed bar, so they are
counted in `late_trades` and otherwise ignored.

A source that makes its own bars (a replay, Binance's klines) is the authority for its
symbols: once one of its bars arrived, trades still show the bar being built, but the
closed bars are the source's, each minute once.
"""

import logging
from collections import deque

import msgspec

from veloz.model.market import Bar, TradeTick

logger = logging.getLogger(__name__)

BAR_INTERVAL = "1m"
BAR_INTERVAL_NS = 60_000_000_000
DEFAULT_BAR_HISTORY = 1440  # a day of minutes


class BarAggregator:
    def __init__(self, history: int = DEFAULT_BAR_HISTORY) -> None:
        if history <= 0:
            raise ValueError("bar history must be positive")
        self._history = history
        self._open: dict[str, Bar] = {}
        self._closed: dict[str, deque[Bar]] = {}
        # Symbols whose closed bars come from the source, not from trades.
        self._source_bars: set[str] = set()
        self.late_trades = 0

    def on_trade(self, trade: TradeTick) -> Bar | None:
        """Fold `trade` into its symbol's open bar; return the bar it closed, if any."""
        open_ns = trade.ts_ns // BAR_INTERVAL_NS * BAR_INTERVAL_NS
        current = self._open.get(trade.symbol)
        if current is None:
            self._open[trade.symbol] = _new_bar(trade, open_ns)
            return None
        if open_ns == current.ts_ns:
            _extend(current, trade)
            return None
        if open_ns < current.ts_ns:
            self.late_trades += 1
            logger.debug("late trade %s for closed bar ignored", trade.trade_id)
            return None
        self._open[trade.symbol] = _new_bar(trade, open_ns)
        if trade.symbol in self._source_bars:
            return None  # the source's own bar for that minute is the one kept
        current.closed = True
        self._closed_bars(trade.symbol).append(current)
        return current

    def on_bar(self, bar: Bar) -> bool:
        """Keep a closed bar a source made itself (a replay's, a kline); False if that
        minute is already kept (a repeat after a reconnect) or older than the newest."""
        self._source_bars.add(bar.symbol)
        closed = self._closed_bars(bar.symbol)
        if closed and closed[-1].ts_ns >= bar.ts_ns:
            return False
        closed.append(bar)
        current = self._open.get(bar.symbol)
        if current is not None and current.ts_ns <= bar.ts_ns:
            del self._open[bar.symbol]  # built from trades of the minute the source closed
        return True

    def current(self, symbol: str) -> Bar | None:
        """A copy of the bar still being built, so callers never see it change under them."""
        bar = self._open.get(symbol)
        return None if bar is None else msgspec.structs.replace(bar)

    def bars(self, symbol: str, limit: int | None = None) -> list[Bar]:
        """Up to `limit` most recent bars, oldest first, the open bar last."""
        bars = list(self._closed.get(symbol, ()))
        current = self.current(symbol)
        if current is not None:
            bars.append(current)
        if limit is None:
            return bars
        return bars[-limit:] if limit > 0 else []

    def _closed_bars(self, symbol: str) -> deque[Bar]:
        closed = self._closed.get(symbol)
        if closed is None:
            closed = self._closed[symbol] = deque(maxlen=self._history)
        return closed


def _new_bar(trade: TradeTick, open_ns: int) -> Bar:
    return Bar(
        symbol=trade.symbol,
        interval=BAR_INTERVAL,
        ts_ns=open_ns,
        open=trade.price,
        high=trade.price,
        low=trade.price,
        close=trade.price,
        volume=trade.size,
    )


def _extend(bar: Bar, trade: TradeTick) -> None:
    bar.high = max(bar.high, trade.price)
    bar.low = min(bar.low, trade.price)
    bar.close = trade.price
    bar.volume += trade.size
