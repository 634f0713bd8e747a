"""Per-asset balances with funds locked for open orders.

Used twice on purpose: the portfolio keeps the engine's view of the account, and the
simulated venue keeps the venue's own, exactly as a real exchange would.
"""

from collections.abc import Iterable, Mapping, ValuesView
from decimal import Decimal

from veloz.model.account import Balance
from veloz.model.enums import OrderSide
from veloz.model.errors import ErrorCode, VelozError
from veloz.model.instruments import Instrument

ZERO = Decimal(0)
# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
BUY = OrderSide.BUY


class InsufficientBalance(VelozError):
    code = ErrorCode.INSUFFICIENT_BALANCE


class BalanceBook:
    def __init__(self, totals: Mapping[str, Decimal] | None = None) -> None:
        self._balances: dict[str, Balance] = {}
        for asset, total in (totals or {}).items():
            self.set_total(asset, total)

    # Every change of a balance starts with `self._balances.get(asset) or self._get(asset)`:
    # the dict lookup inline (a Balance is always true), the call only for a new asset.
    def _get(self, asset: str) -> Balance:
        balance = self._balances.get(asset)
        if balance is None:
            balance = self._balances[asset] = Balance(asset=asset, free=ZERO)
        return balance

    def free(self, asset: str) -> Decimal:
        balance = self._balances.get(asset)
        return balance.free if balance else ZERO

    def locked(self, asset: str) -> Decimal:
        balance = self._balances.get(asset)
        return balance.locked if balance else ZERO

    def total(self, asset: str) -> Decimal:
        balance = self._balances.get(asset)
        return balance.total if balance else ZERO

    def set_total(self, asset: str, total: Decimal) -> None:
        """Set what the asset adds up to; locks stay, free absorbs the difference."""
        balance = self._get(asset)
        balance.free = total - balance.locked

    def can_lock(self, asset: str, amount: Decimal) -> bool:
        return self.free(asset) >= amount

    def lock(self, asset: str, amount: Decimal, *, allow_overdraft: bool = False) -> None:
        """Move `amount` from free to locked.

        The venue refuses an overdraft; the engine's own view may be told to allow one
        (`allow_overdraft`) because its view can lag the venue's and it must still record
        what the venue accepted.
        """
        balance = self._balances.get(asset) or self._get(asset)
        if amount > balance.free and not allow_overdraft:
            raise InsufficientBalance(
                f"{asset}: need {amount} free, have {balance.free} (locked {balance.locked})"
            )
        balance.free -= amount
        balance.locked += amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        balance = self._balances.get(asset) or self._get(asset)
        locked = balance.locked
        if locked < amount:  # min(amount, locked)
            amount = locked
        balance.locked = locked - amount
        balance.free += amount

    def settle(self, asset: str, delta: Decimal, *, release: Decimal = ZERO) -> None:
        """Apply a trade's effect on one asset: release `release` from locked into free,
        then add `delta` (negative for what was paid) to free."""
        balance = self._balances.get(asset) or self._get(asset)
        if not release:  # the other asset of a trade, or a margin account: nothing held
            balance.free += delta
            return
        locked = balance.locked
        if locked < release:  # min(release, locked)
            release = locked
        balance.locked = locked - release
        balance.free += release + delta

    def live(self) -> ValuesView[Balance]:
        """Every balance itself, not a copy, for valuing the account on every quote and
        fill; the caller only reads them."""
        return self._balances.values()

    def snapshot(self) -> list[Balance]:
        return [
            Balance(asset=b.asset, free=b.free, locked=b.locked)
            for b in sorted(self._balances.values(), key=lambda b: b.asset)
        ]

    def restore(self, balances: Iterable[Balance]) -> None:
        self._balances = {
            b.asset: Balance(asset=b.asset, free=b.free, locked=b.locked) for b in balances
        }

    def assets(self) -> list[str]:
        return sorted(self._balances)


def order_lock(
    instrument: Instrument, side: OrderSide, qty: Decimal, price: Decimal
) -> tuple[str, Decimal]:
    """What an open order holds back: the quote it may pay (BUY) or the base it may
    deliver (SELL). `price` is the limit price, or the reference price of a market order."""
    if side is BUY:
        return instrument.quote_asset, qty * price
    return instrument.base_asset, qty
