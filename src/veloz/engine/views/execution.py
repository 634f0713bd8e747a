"""What the last reconciliation with the venue found: orders open there that the journal
does not know (orphans) and balances that differed from ours."""

from decimal import Decimal

import msgspec

from veloz.model.enums import OrderSide, OrderStatus


class OrphanOrder(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: OrderSide | None
    qty: Decimal | None
    price: Decimal | None
    status: OrderStatus
    executed_qty: Decimal


class BalanceMismatch(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    journal: Decimal
    venue: Decimal


class Orphans(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    # When the newest reconciliation ran (start, then after every venue reconnect).
    reconciled_ns: int | None
    reconciliations: int
    # Orphans are cancelled when VELOZ_AUTO_CANCEL_ORPHANED is on, else only reported.
    auto_cancel: bool
    count: int
    orders: list[OrphanOrder]
    orphans_found_total: int
    orphans_cancelled_total: int
    # Corrected to the venue's figure when found (journaled as a balance correction).
    balance_mismatches: list[BalanceMismatch]
