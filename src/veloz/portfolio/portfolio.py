"""The engine's view of the account: balances with funds locked per open order, positions
and PnL per symbol, equity in a valuation asset and its peak.

`Portfolio` is driven by the same events the order manager accepted, in journal order, and
replay calls the same methods, so its state (everything `snapshot()` returns) is a
deterministic function of the event stream. Marks are the exception on purpose: they are
market data, not journaled, and only feed valuations (unrealised PnL, equity, its peak).
"""

from collections.abc import Mapping
from decimal import Decimal

import msgspec

from veloz.model.account import Balance, PositionView
from veloz.model.enums import OrderSide
from veloz.model.errors import ErrorCode, VelozError
from veloz.model.events import OrderFilled
from veloz.model.instruments import Instrument
from veloz.model.orders import Order
from veloz.portfolio.balances import BalanceBook, order_lock
from veloz.portfolio.positions import Position, fee_in_quote, fill_flows

ZERO = Decimal(0)
ONE = Decimal(1)


class OrderLock(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """Funds an open order still holds back. `price` is what the lock was computed at (the
    limit price, or a market order's reference price) so that each fill releases exactly
    its share; it is None only for a SELL without a price, whose lock is in base units."""

    asset: str
    remaining: Decimal
    price: Decimal | None


class PortfolioState(msgspec.Struct, kw_only=True):
    """Everything a checkpoint needs to rebuild a `Portfolio` without replaying from zero."""

    balances: list[Balance]
    positions: list[Position]
    locks: dict[str, OrderLock]
    peak_equity: Decimal


class Portfolio:
    """Applies accepted order events to balances, locks and positions; values them at marks."""

    def __init__(
        self, instruments: Mapping[str, Instrument], valuation_asset: str = "USDT"
    ) -> None:
        self._instruments = instruments
        self.valuation_asset = valuation_asset
        self._book = BalanceBook()
        self._positions: dict[str, Position] = {}
        self._locks: dict[str, OrderLock] = {}
        self._marks: dict[str, Decimal] = {}
        self.peak_equity = ZERO

    # -- events -------------------------------------------------------------------------

    def on_submitted(self, order: Order) -> None:
        """Lock the funds a new order may use. The engine records what it decided even if
        its view says funds are short: the venue is the one that rejects."""
        if order.client_order_id in self._locks:
            raise VelozError(
                f"order {order.client_order_id} already holds a lock",
                code=ErrorCode.DUPLICATE_CLIENT_ORDER_ID,
            )
        price = _lock_price(order)
        asset, amount = order_lock(
            self._instrument(order.symbol), order.side, order.order_qty, price or ZERO
        )
        self._book.lock(asset, amount, allow_overdraft=True)
        self._locks[order.client_order_id] = OrderLock(asset=asset, remaining=amount, price=price)

    def on_fill(
        self, order: Order, fill: OrderFilled, strategy_position: Position | None = None
    ) -> Decimal:
        """Settle a fill: release the filled share of the order's lock, move both assets at
        the actual price, charge the fee, and update the position, and `strategy_position`
        (the placing strategy's own) by the same flows. Returns the PnL the fill realised
        in the account's position (zero if it only added to the position)."""
        instrument = self._instrument(order.symbol)
        base, quote = instrument.base_asset, instrument.quote_asset
        lock_asset, released = self._release_for_fill(instrument, order, fill)
        base_delta, quote_delta = fill_flows(instrument, fill)
        book = self._book
        book.settle(base, base_delta, release=released if base == lock_asset else ZERO)
        book.settle(quote, quote_delta, release=released if quote == lock_asset else ZERO)
        if fill.fee and fill.fee_asset != base and fill.fee_asset != quote:  # not in (base, quote)
            book.settle(fill.fee_asset, -fill.fee)
        # `Position.apply_fill` with the flows just worked out for the balances, for both
        # positions: working them out costs more than booking them.
        fee = fee_in_quote(instrument, fill)
        if strategy_position is not None:
            strategy_position.apply_flows(base_delta, quote_delta)
            strategy_position.fees += fee
        position = self._position(order.symbol)
        realized_before = position.realized_pnl
        position.apply_flows(base_delta, quote_delta)
        position.fees += fee
        return position.realized_pnl - realized_before

    def on_final(self, order: Order) -> None:
        """The order is FILLED, CANCELLED, REJECTED or EXPIRED: free what it still holds."""
        lock = self._locks.pop(order.client_order_id, None)
        if lock is not None and lock.remaining:  # a filled order has released it all
            self._book.unlock(lock.asset, lock.remaining)

    def on_balance_set(self, asset: str, total: Decimal) -> None:
        self._book.set_total(asset, total)

    # -- valuation ----------------------------------------------------------------------

    def mark(self, symbol: str, price: Decimal) -> None:
        self._marks[symbol] = price

    def equity(self) -> Decimal:
        """Total balances valued in the valuation asset; assets without a mark are left out
        (see `unvalued_assets`)."""
        # `_asset_price` written out: this runs on every quote and every fill.
        equity, valuation, marks = ZERO, self.valuation_asset, self._marks
        for balance in self._book.live():
            asset = balance.asset
            if asset == valuation:  # priced at one: counted as it is
                equity += balance.free + balance.locked
                continue
            price = marks.get(asset + valuation)
            if price is not None:
                equity += (balance.free + balance.locked) * price
        return equity

    def unvalued_assets(self) -> list[str]:
        """Assets held (non-zero total) that `equity` cannot value for want of a mark."""
        return [
            b.asset
            for b in self._book.snapshot()
            if b.total != 0 and self._asset_price(b.asset) is None
        ]

    def update_equity(self) -> Decimal:
        """Current equity, raising `peak_equity` if it is a new high."""
        equity = self.equity()
        if equity > self.peak_equity:  # max(peak_equity, equity)
            self.peak_equity = equity
        return equity

    def drawdown(self, equity: Decimal | None = None) -> Decimal:
        """Fraction of the peak lost, in [0, 1] while equity is non-negative; `equity` if
        the caller has just computed it."""
        equity = self.equity() if equity is None else equity
        peak = self.peak_equity
        if equity > peak:  # max(peak_equity, equity)
            peak = equity
        return ZERO if peak <= ZERO else (peak - equity) / peak

    # -- views --------------------------------------------------------------------------

    def balances(self) -> list[Balance]:
        return self._book.snapshot()

    def positions(self) -> list[PositionView]:
        return [self._view(p) for _, p in sorted(self._positions.items())]

    def position_qty(self, symbol: str) -> Decimal:
        position = self._positions.get(symbol)
        return position.qty if position is not None else ZERO

    def realized_pnl(self, symbol: str) -> Decimal:
        position = self._positions.get(symbol)
        return position.realized_pnl if position is not None else ZERO

    def free(self, asset: str) -> Decimal:
        return self._book.free(asset)

    def position(self, symbol: str) -> PositionView | None:
        position = self._positions.get(symbol)
        return None if position is None else self._view(position)

    def locked_for(self, client_order_id: str) -> OrderLock | None:
        return self._locks.get(client_order_id)

    # -- checkpoints --------------------------------------------------------------------

    def snapshot(self) -> PortfolioState:
        return PortfolioState(
            balances=self._book.snapshot(),
            positions=[msgspec.structs.replace(p) for _, p in sorted(self._positions.items())],
            locks=dict(sorted(self._locks.items())),
            peak_equity=self.peak_equity,
        )

    def restore(self, state: PortfolioState) -> None:
        """Replace all journaled state with `state`; marks are market data and stay."""
        self._book.restore(state.balances)
        self._positions = {p.symbol: msgspec.structs.replace(p) for p in state.positions}
        self._locks = dict(state.locks)
        self.peak_equity = state.peak_equity

    # -- internals ----------------------------------------------------------------------

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            raise VelozError(f"no instrument for symbol {symbol}", code=ErrorCode.UNKNOWN_SYMBOL)
        return instrument

    def _position(self, symbol: str) -> Position:
        position = self._positions.get(symbol)
        if position is None:
            position = self._positions[symbol] = Position(symbol=symbol)
        return position

    def _release_for_fill(
        self, instrument: Instrument, order: Order, fill: OrderFilled
    ) -> tuple[str, Decimal]:
        """Take the fill's share of the order's lock off the order's record: what the same
        quantity locked at submission. Returns `(asset, amount)` to release in the book."""
        lock = self._locks.get(order.client_order_id)
        if lock is None:
            return "", ZERO
        asset, share = order_lock(instrument, order.side, fill.qty, lock.price or ZERO)
        remaining = lock.remaining
        amount = remaining if remaining < share else share  # min(share, remaining)
        self._locks[order.client_order_id] = OrderLock(
            asset=lock.asset, remaining=remaining - amount, price=lock.price
        )
        return asset, amount

    def _asset_price(self, asset: str) -> Decimal | None:
        if asset == self.valuation_asset:
            return ONE
        return self._marks.get(asset + self.valuation_asset)

    def _view(self, position: Position) -> PositionView:
        mark = self._marks.get(position.symbol)
        # Without a mark the position is shown at cost: no unrealised PnL is invented.
        notional = position.cost if mark is None else position.notional(mark)
        unrealized = ZERO if mark is None else position.unrealized_pnl(mark)
        return PositionView(
            symbol=position.symbol,
            qty=position.qty,
            avg_price=position.avg_price,
            mark_price=mark,
            notional=notional,
            unrealized_pnl=unrealized,
            realized_pnl=position.realized_pnl,
            fees=position.fees,
        )


def _lock_price(order: Order) -> Decimal | None:
    price = order.limit_price if order.limit_price is not None else order.reference_price
    if price is None and order.side is OrderSide.BUY:
        # A BUY's lock is priced; guessing one would lock an amount replay cannot reproduce.
        raise VelozError(
            f"order {order.client_order_id}: a BUY needs a limit or reference price to lock funds",
            code=ErrorCode.BAD_PARAMS,
        )
    return price
