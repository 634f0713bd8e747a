"""A local copy of one symbol's Binance order book: a REST snapshot plus the diff events of
the `<symbol>@depth` stream, applied exactly as Binance's "How to manage a local order book
correctly" prescribes.

The book is pure and synchronous (no I/O): the source feeds it diffs and snapshots and acts
on what it answers. Until a snapshot is applied, and again from a gap on, diffs are buffered
and the book is not synced; the source then fetches a snapshot. The rules, with `id` the
book's update id:

- a diff with `u <= id` is old (already in the snapshot or applied): ignored;
- a diff with `U > id + 1` means diffs were missed: the book is discarded (a gap);
- otherwise it is applied and `id` becomes `u`. Normally `U == id + 1`; a diff that starts
  before `id + 1` but ends after it (the first one after a snapshot, or a repeat from a
  second connection) is applied too, which is safe because a diff carries each level's new
  absolute quantity, not a change.

Prices and quantities are exact decimals; a quantity of zero removes the level.
"""

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum

import msgspec

Level = tuple[Decimal, Decimal]
"""(price, quantity)"""

# Diffs kept while waiting for a snapshot. Binance sends at most ten a second per symbol on
# @depth@100ms, so this is minutes of them; beyond it the oldest go and the snapshot that
# arrives is judged against what is left (it may then be too old and fetched again).
DEFAULT_MAX_BUFFERED = 10_000


class DepthDiff(msgspec.Struct, gc=False, frozen=True):
    """One `depthUpdate` event: the levels that changed between update ids U and u."""

    first_id: int = msgspec.field(name="U")
    last_id: int = msgspec.field(name="u")
    bids: list[Level] = msgspec.field(name="b")
    asks: list[Level] = msgspec.field(name="a")


class DiffResult(Enum):
    BUFFERED = "buffered"  # no snapshot yet: kept until one is applied
    APPLIED = "applied"
    OLD = "old"  # ended at or before the book's update id: ignored
    GAP = "gap"  # diffs were missed: the book is discarded, a new snapshot is needed


class SnapshotResult(Enum):
    SYNCED = "synced"
    TOO_OLD = "too_old"  # older than the first buffered diff: fetch another
    GAP = "gap"  # the buffered diffs themselves have a hole: fetch another


class _Side:
    """One side of the book: quantity by price, and the prices kept sorted ascending so the
    touch and the top levels cost no sort."""

    __slots__ = ("_levels", "_prices")

    def __init__(self) -> None:
        self._levels: dict[Decimal, Decimal] = {}
        self._prices: list[Decimal] = []

    def set(self, price: Decimal, qty: Decimal) -> None:
        levels = self._levels
        if qty:
            if price not in levels:
                insort(self._prices, price)
            levels[price] = qty
        elif price in levels:
            del levels[price]
            prices = self._prices
            del prices[bisect_left(prices, price)]

    def replace(self, levels: Iterable[Level]) -> None:
        self._levels = {price: qty for price, qty in levels if qty}
        self._prices = sorted(self._levels)

    def clear(self) -> None:
        self._levels = {}
        self._prices = []

    def lowest(self, n: int | None) -> list[Level]:
        prices = self._prices if n is None else self._prices[:n]
        return [(price, self._levels[price]) for price in prices]

    def highest(self, n: int | None) -> list[Level]:
        prices = self._prices[::-1] if n is None else self._prices[: -n - 1 : -1]
        return [(price, self._levels[price]) for price in prices]

    def __len__(self) -> int:
        return len(self._prices)


class OrderBook:
    def __init__(self, symbol: str, *, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        self.symbol = symbol
        self._bids = _Side()
        self._asks = _Side()
        self._update_id: int | None = None
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffered)

    @property
    def synced(self) -> bool:
        """True once a snapshot is applied and no gap has been seen since."""
        return self._update_id is not None

    @property
    def update_id(self) -> int | None:
        """The last update id applied; None while not synced."""
        return self._update_id

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        """Forget the book and everything buffered (a new connection: start over)."""
        self._discard()
        self._buffer.clear()

    def on_diff(self, diff: DepthDiff) -> DiffResult:
        update_id = self._update_id
        if update_id is None:
            self._buffer.append(diff)
            return DiffResult.BUFFERED
        if diff.last_id <= update_id:
            return DiffResult.OLD
        if diff.first_id > update_id + 1:
            self._discard()
            self._buffer.append(diff)  # the first diff the next snapshot is judged against
            return DiffResult.GAP
        bids, asks = self._bids, self._asks
        for price, qty in diff.bids:
            bids.set(price, qty)
        for price, qty in diff.asks:
            asks.set(price, qty)
        self._update_id = diff.last_id
        return DiffResult.APPLIED

    def apply_snapshot(
        self, last_update_id: int, bids: Iterable[Level], asks: Iterable[Level]
    ) -> SnapshotResult:
        """Set the book to a REST depth snapshot and apply the buffered diffs after it."""
        buffer = self._buffer
        if buffer and buffer[0].first_id > last_update_id + 1:
            # Diffs between the snapshot and the first buffered one are lost to us.
            return SnapshotResult.TOO_OLD
        self._bids.replace(bids)
        self._asks.replace(asks)
        self._update_id = last_update_id
        pending = list(buffer)
        buffer.clear()
        for index, diff in enumerate(pending):
            if self.on_diff(diff) is DiffResult.GAP:
                buffer.extend(pending[index + 1 :])
                return SnapshotResult.GAP
        return SnapshotResult.SYNCED

    def best_bid(self) -> Level | None:
        top = self._bids.highest(1)
        return top[0] if top else None

    def best_ask(self) -> Level | None:
        top = self._asks.lowest(1)
        return top[0] if top else None

    def bids(self, n: int | None = None) -> list[Level]:
        """The best `n` bid levels (all by default), best first."""
        return self._bids.highest(n)

    def asks(self, n: int | None = None) -> list[Level]:
        """The best `n` ask levels (all by default), best first."""
        return self._asks.lowest(n)

    def depth(self) -> tuple[int, int]:
        """How many bid and ask levels the book holds."""
        return len(self._bids), len(self._asks)

    def _discard(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._update_id = None
