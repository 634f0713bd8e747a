"""Round trips: a backtest's fills grouped into trades, booked by the portfolio's own
average-cost `Position`, so a trade's PnL is exactly what the engine realised.

A round trip is one position episode of one symbol: it opens on the fill that takes the
position away from flat and closes on the fill that brings it back to flat. A fill that
flips the position (long 1, SELL 3) closes one round trip and opens the next with the
remainder, the fill's flow (and so its fee) shared between the two in proportion to the
quantity, as `Position` books it. A trade's PnL is the realised PnL of its episode: net of
every fee paid on its entries and exits. Within an episode that ends flat, average-cost and
FIFO matching give the same total, so the choice only shows in partial exits, which are not
reported apart. Money stays Decimal.
"""

from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import pairwise
from typing import Protocol

import msgspec

from veloz.model.instruments import split_symbol
from veloz.portfolio.positions import Position

ZERO = Decimal(0)


class Fill(Protocol):
    """What analytics read of a fill (`veloz.backtest.engine.FillRecord` is one)."""

    @property
    def ts_ns(self) -> int: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> str: ...  # "BUY" or "SELL"
    @property
    def qty(self) -> Decimal: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def fee(self) -> Decimal: ...
    @property
    def fee_asset(self) -> str: ...


class RoundTrip(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    side: str  # "long" or "short"
    entry_ns: int  # the fill that opened the position
    exit_ns: int  # the fill that brought it back to flat (or flipped it)
    qty: Decimal  # base quantity opened over the episode
    entry_price: Decimal  # volume-weighted price of the opening quantity, before fees
    exit_price: Decimal  # volume-weighted price of the closing quantity, before fees
    pnl: Decimal  # realised, net of all fees of the episode, in the quote asset
    fees: Decimal  # fees of the episode, valued in the quote asset

    @property
    def duration_ns(self) -> int:
        return self.exit_ns - self.entry_ns


def fill_flows(fill: Fill) -> tuple[Decimal, Decimal]:
    """`(base_delta, quote_delta)` of `fill` after its fee, as `veloz.portfolio` books it."""
    base, quote = split_symbol(fill.symbol)
    notional = fill.qty * fill.price
    if fill.side == "BUY":
        base_delta, quote_delta = fill.qty, -notional
    elif fill.side == "SELL":
        base_delta, quote_delta = -fill.qty, notional
    else:
        raise ValueError(f"fill side must be BUY or SELL, got {fill.side!r}")
    if fill.fee_asset == base:
        base_delta -= fill.fee
    elif fill.fee_asset == quote:
        quote_delta -= fill.fee
    return base_delta, quote_delta


def fee_in_quote(fill: Fill) -> Decimal:
    """The fee valued in the symbol's quote asset: a base fee at the fill price, a fee in a
    third asset as zero (as `veloz.portfolio.positions.fee_in_quote`)."""
    base, quote = split_symbol(fill.symbol)
    if fill.fee_asset == quote:
        return fill.fee
    if fill.fee_asset == base:
        return fill.fee * fill.price
    return ZERO


class _Episode:
    __slots__ = (
        "closed_notional",
        "closed_qty",
        "entry_ns",
        "fees",
        "opened_notional",
        "opened_qty",
        "realized_at_open",
        "side",
    )

    def __init__(self, entry_ns: int, side: str, realized_at_open: Decimal) -> None:
        self.entry_ns = entry_ns
        self.side = side
        self.realized_at_open = realized_at_open
        self.opened_qty = self.opened_notional = ZERO
        self.closed_qty = self.closed_notional = ZERO
        self.fees = ZERO


class RoundTripBook:
    """Feeds fills in order; `closed` holds the finished round trips, `open_symbols` the
    symbols whose position is not flat."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.closed: list[RoundTrip] = []
        self._open: dict[str, _Episode] = {}

    @property
    def open_symbols(self) -> list[str]:
        return sorted(self._open)

    def add(self, fill: Fill) -> None:
        if fill.qty <= 0:
            raise ValueError(f"fill quantity must be positive, got {fill.qty}")
        position = self.positions.get(fill.symbol)
        if position is None:
            position = self.positions[fill.symbol] = Position(symbol=fill.symbol)
        base_delta, quote_delta = fill_flows(fill)
        fee = fee_in_quote(fill)
        before = position.qty
        episode = self._open.get(fill.symbol)
        if base_delta == ZERO:
            # A base fee ate the whole fill: nothing opens or closes; the flow is spent.
            position.apply_flows(base_delta, quote_delta)
            if episode is not None:
                episode.fees += fee
            return
        flowed = abs(base_delta)
        closing = ZERO if before == ZERO or (before > 0) == (base_delta > 0) else flowed
        closing = min(closing, abs(before))
        opening = flowed - closing
        if episode is None:
            episode = self._start(fill, base_delta, position.realized_pnl)
        if closing:
            share = closing / flowed
            episode.closed_qty += closing
            episode.closed_notional += fill.price * fill.qty * share
            episode.fees += fee * share
        position.apply_flows(base_delta, quote_delta)
        after = position.qty
        if after == ZERO or (closing and (after > ZERO) != (before > ZERO)):
            self._finish(fill, episode, position.realized_pnl)
            if opening:
                episode = self._start(fill, base_delta, position.realized_pnl)
        if opening:
            share = opening / flowed
            episode.opened_qty += opening
            episode.opened_notional += fill.price * fill.qty * share
            episode.fees += fee * share

    def _start(self, fill: Fill, base_delta: Decimal, realized: Decimal) -> _Episode:
        episode = _Episode(fill.ts_ns, "long" if base_delta > 0 else "short", realized)
        self._open[fill.symbol] = episode
        return episode

    def _finish(self, fill: Fill, episode: _Episode, realized: Decimal) -> None:
        del self._open[fill.symbol]
        self.closed.append(
            RoundTrip(
                symbol=fill.symbol,
                side=episode.side,
                entry_ns=episode.entry_ns,
                exit_ns=fill.ts_ns,
                qty=episode.opened_qty,
                entry_price=episode.opened_notional / episode.opened_qty,
                exit_price=episode.closed_notional / episode.closed_qty,
                pnl=realized - episode.realized_at_open,
                fees=episode.fees,
            )
        )


def round_trips(fills: Iterable[Fill]) -> tuple[list[RoundTrip], list[str]]:
    """The closed round trips of `fills` (in the order they closed) and the symbols left
    with an open position."""
    book = RoundTripBook()
    for fill in fills:
        book.add(fill)
    return book.closed, book.open_symbols


def check_fill_order(fills: Sequence[Fill]) -> None:
    for previous, fill in pairwise(fills):
        if fill.ts_ns < previous.ts_ns:
            raise ValueError(
                f"fills must be in time order: a fill at {fill.ts_ns} follows one at "
                f"{previous.ts_ns}"
            )
