"""The fake's one account: balances (free/locked, exact Decimals), orders and the trades
that fill them. MARKET orders and crossing LIMIT orders take the book's levels at once;
resting LIMIT orders wait until the book crosses them or a test fills them by hand. Each
change emits the user data events Binance sends (`executionReport`,
`outboundAccountPosition`, `balanceUpdate`) and the market events it causes."""

import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from itertools import count

from tests.support.fake_binance import wire
from tests.support.fake_binance.market import Level, PublicTrade, StreamEvent, SymbolMarket
from tests.support.fake_binance.orders import NewOrder
from tests.support.fake_binance.wire import fmt

_ZERO = Decimal(0)
_COMMISSION_QUANTUM = Decimal("0.00000001")
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass
class Balance:
    free: Decimal
    locked: Decimal = _ZERO


@dataclass(kw_only=True)
class FakeOrder:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    orig_qty: Decimal
    price: Decimal  # 0 for MARKET, as Binance reports it
    orig_quote_order_qty: Decimal = _ZERO
    executed_qty: Decimal = _ZERO
    cummulative_quote_qty: Decimal = _ZERO
    status: str = "NEW"
    time_ms: int
    update_time_ms: int
    expiry_reason: str | None = None
    locked: Decimal = _ZERO  # what this order still holds locked: quote (BUY) or base (SELL)

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_working(self) -> bool:
        return self.is_open and self.type != "MARKET"

    def _common(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
        }

    def _state(self) -> dict[str, object]:
        state: dict[str, object] = {
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "origQuoteOrderQty": fmt(self.orig_quote_order_qty),
            "cummulativeQuoteQty": fmt(self.cummulative_quote_qty),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
        }
        return state

    def ack_json(self) -> dict[str, object]:
        return {**self._common(), "transactTime": self.time_ms}

    def result_json(self) -> dict[str, object]:
        result = {
            **self.ack_json(),
            **self._state(),
            "workingTime": self.time_ms,
            "selfTradePreventionMode": "NONE",
        }
        if self.expiry_reason:
            result["expiryReason"] = self.expiry_reason
        return result

    def query_json(self) -> dict[str, object]:
        result = {
            **self._common(),
            **self._state(),
            "stopPrice": fmt(_ZERO),
            "icebergQty": fmt(_ZERO),
            "time": self.time_ms,
            "updateTime": self.update_time_ms,
            "isWorking": self.is_working,
            "workingTime": self.time_ms,
            "selfTradePreventionMode": "NONE",
        }
        if self.expiry_reason:
            result["expiryReason"] = self.expiry_reason
        return result

    def cancel_json(self, cancel_client_id: str, transact_ms: int) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "origClientOrderId": self.client_order_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_client_id,
            "transactTime": transact_ms,
            **self._state(),
            "selfTradePreventionMode": "NONE",
        }


@dataclass(frozen=True, kw_only=True)
class FakeTrade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_maker: bool

    def fill_json(self) -> dict[str, object]:
        return {
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "commission": fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.trade_id,
        }

    def json(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "quoteQty": fmt(self.quote_qty),
            "commission": fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time_ms,
            "isBuyer": self.side == "BUY",
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }


def new_client_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


@dataclass
class Account:
    markets: dict[str, SymbolMarket]
    balances: dict[str, Balance]
    now_ms: Callable[[], int]
    user_event: Callable[[dict[str, object]], None]
    market_events: Callable[[list[StreamEvent]], None]
    commission_rate: Decimal = Decimal("0.001")
    orders: dict[int, FakeOrder] = field(default_factory=dict)
    trades: list[FakeTrade] = field(default_factory=list)
    trade_ids: "count[int]" = field(default_factory=lambda: count(1))
    _order_ids: "count[int]" = field(default_factory=lambda: count(1))
    _execution_ids: "count[int]" = field(default_factory=lambda: count(1))

    # -- lookups ---------------------------------------------------------------------

    def open_orders(self, symbol: str | None = None) -> list[FakeOrder]:
        return [
            o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)
        ]

    def by_client_id(self, client_order_id: str) -> FakeOrder | None:
        """The open order with this id, else the latest one that had it."""
        found = [o for o in self.orders.values() if o.client_order_id == client_order_id]
        open_ = [o for o in found if o.is_open]
        chosen = open_ or found
        return chosen[-1] if chosen else None

    def balance(self, asset: str) -> Balance:
        return self.balances.setdefault(asset, Balance(_ZERO))

    # -- placing ---------------------------------------------------------------------

    def place(self, new: NewOrder) -> tuple[FakeOrder, list[FakeTrade]]:
        market = self.markets[new.symbol]
        client_id = new.client_order_id or new_client_id()
        if any(o.client_order_id == client_id for o in self.open_orders()):
            raise wire.DUPLICATE_ORDER
        plan = self._plan(market, new)
        if new.type == "LIMIT_MAKER" and plan:
            raise wire.WOULD_TAKE
        self._check_funds(market, new, plan)
        now = self.now_ms()
        qty = new.quantity if new.quantity is not None else sum((q for _, q in plan), _ZERO)
        order = FakeOrder(
            symbol=new.symbol,
            order_id=next(self._order_ids),
            client_order_id=client_id,
            side=new.side,
            type=new.type,
            time_in_force=new.time_in_force,
            orig_qty=qty,
            price=new.price or _ZERO,
            orig_quote_order_qty=new.quote_order_qty or _ZERO,
            time_ms=now,
            update_time_ms=now,
        )
        self.orders[order.order_id] = order
        if order.type != "MARKET":
            self._lock(market, order)
        self.user_event(self.report(order, "NEW"))
        self._position(market)
        if new.time_in_force == "FOK" and sum((q for _, q in plan), _ZERO) < qty:
            self._expire(order, "UNFILLED_FOK_ORDER_EXPIRED")
            return order, []
        fills = self._take(market, order, plan)
        if order.is_open and (order.type == "MARKET" or order.time_in_force == "IOC"):
            reason = (
                "INSUFFICIENT_LIQUIDITY"
                if order.type == "MARKET"
                else "UNFILLED_IOC_QUANTITY_EXPIRED"
            )
            self._expire(order, reason)
        return order, fills

    def _plan(self, market: SymbolMarket, new: NewOrder) -> list[Level]:
        """The levels a new order would take, best first, and how much of each."""
        levels = market.sorted_asks() if new.side == "BUY" else market.sorted_bids()
        plan: list[Level] = []
        left_qty = new.quantity
        left_quote = new.quote_order_qty
        step = market.rules.step_size
        for price, available in levels:
            if new.price is not None and (
                price > new.price if new.side == "BUY" else price < new.price
            ):
                break
            if left_quote is not None:
                take = min(available, (left_quote / price).quantize(step, rounding=ROUND_DOWN))
                left_quote -= take * price
            else:
                assert left_qty is not None
                take = min(available, left_qty)
                left_qty -= take
            if take <= 0:
                break
            plan.append((price, take))
        return plan

    def _check_funds(self, market: SymbolMarket, new: NewOrder, plan: list[Level]) -> None:
        rules = market.rules
        if new.side == "BUY":
            if new.type == "MARKET":
                needed = sum((p * q for p, q in plan), _ZERO)
            else:
                assert new.price is not None and new.quantity is not None
                needed = new.price * new.quantity
            if self.balance(rules.quote_asset).free < needed:
                raise wire.INSUFFICIENT_BALANCE
        else:
            needed = new.quantity if new.quantity is not None else sum((q for _, q in plan), _ZERO)
            if self.balance(rules.base_asset).free < needed:
                raise wire.INSUFFICIENT_BALANCE

    def _lock(self, market: SymbolMarket, order: FakeOrder) -> None:
        rules = market.rules
        if order.side == "BUY":
            asset, amount = rules.quote_asset, order.price * order.orig_qty
        else:
            asset, amount = rules.base_asset, order.orig_qty
        balance = self.balance(asset)
        balance.free -= amount
        balance.locked += amount
        order.locked = amount

    def _release(self, market: SymbolMarket, order: FakeOrder) -> None:
        rules = market.rules
        balance = self.balance(rules.quote_asset if order.side == "BUY" else rules.base_asset)
        balance.free += order.locked
        balance.locked -= order.locked
        order.locked = _ZERO

    def _take(self, market: SymbolMarket, order: FakeOrder, plan: list[Level]) -> list[FakeTrade]:
        """Take `plan`'s levels off the book as taker: fills, public trades, one diff."""
        if not plan:
            return []
        book = market.asks if order.side == "BUY" else market.bids
        fills = [self._execute(market, order, q, p, maker=False) for p, q in plan]
        changes = [(p, book[p] - q) for p, q in plan]
        self._book_changed(market, changes, order.side)
        return fills

    def _book_changed(self, market: SymbolMarket, changes: list[Level], taker_side: str) -> None:
        now = self.now_ms()
        if taker_side == "BUY":
            events = market.apply([], changes, now)
        else:
            events = market.apply(changes, [], now)
        self.market_events(events)

    # -- filling ---------------------------------------------------------------------

    def fill(
        self, order: FakeOrder, qty: Decimal, price: Decimal, *, maker: bool = True
    ) -> FakeTrade:
        """A fill of a resting order (by hand or because the book crossed it)."""
        if not order.is_open:
            raise ValueError(f"order {order.client_order_id} is {order.status}, not open")
        if qty <= 0 or qty > order.remaining:
            raise ValueError(f"fill of {qty} but {order.remaining} remains")
        if order.type != "MARKET" and (
            price > order.price if order.side == "BUY" else price < order.price
        ):
            raise ValueError(f"fill at {price} is worse than the order's limit {order.price}")
        return self._execute(self.markets[order.symbol], order, qty, price, maker=maker)

    def _execute(
        self, market: SymbolMarket, order: FakeOrder, qty: Decimal, price: Decimal, *, maker: bool
    ) -> FakeTrade:
        rules = market.rules
        base, quote_balance = self.balance(rules.base_asset), self.balance(rules.quote_asset)
        quote = price * qty
        if order.side == "BUY":
            commission = _commission(qty * self.commission_rate)
            asset = rules.base_asset
            if order.type == "MARKET":
                quote_balance.free -= quote
            else:
                held = order.price * qty
                quote_balance.locked -= held
                order.locked -= held
                quote_balance.free += held - quote
            base.free += qty - commission
        else:
            commission = _commission(quote * self.commission_rate)
            asset = rules.quote_asset
            if order.type == "MARKET":
                base.free -= qty
            else:
                base.locked -= qty
                order.locked -= qty
            quote_balance.free += quote - commission
        now = self.now_ms()
        trade = FakeTrade(
            trade_id=next(self.trade_ids),
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            quote_qty=quote,
            commission=commission,
            commission_asset=asset,
            time_ms=now,
            is_maker=maker,
        )
        self.trades.append(trade)
        order.executed_qty += qty
        order.cummulative_quote_qty += quote
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        order.update_time_ms = now
        # The counterparty's side of it is public: buyer is maker if we sold as taker.
        public = PublicTrade(
            trade_id=trade.trade_id,
            price=price,
            qty=qty,
            time_ms=now,
            buyer_is_maker=(order.side == "BUY") == maker,
        )
        self.market_events(market.trade(public, now))
        self.user_event(self.report(order, "TRADE", trade=trade))
        self._position(market)
        return trade

    def cross_resting(self, symbol: str) -> None:
        """After the book moved: resting LIMIT orders it now crosses fill as makers, at
        their own price, taking the crossing levels off the book."""
        market = self.markets[symbol]
        for order in sorted(self.open_orders(symbol), key=lambda o: o.order_id):
            levels = market.sorted_asks() if order.side == "BUY" else market.sorted_bids()
            changes: list[Level] = []
            for price, available in levels:
                crosses = price <= order.price if order.side == "BUY" else price >= order.price
                if not crosses or not order.is_open:
                    break
                qty = min(available, order.remaining)
                self._execute(market, order, qty, order.price, maker=True)
                changes.append((price, available - qty))
            if changes:
                self._book_changed(market, changes, order.side)

    # -- ending ----------------------------------------------------------------------

    def cancel(self, order: FakeOrder, cancel_client_id: str) -> None:
        order.status = "CANCELED"
        order.update_time_ms = self.now_ms()
        market = self.markets[order.symbol]
        self._release(market, order)
        self.user_event(self.report(order, "CANCELED", client_id=cancel_client_id))
        self._position(market)

    def _expire(self, order: FakeOrder, reason: str) -> None:
        order.status = "EXPIRED"
        order.expiry_reason = reason
        order.update_time_ms = self.now_ms()
        market = self.markets[order.symbol]
        self._release(market, order)
        self.user_event(self.report(order, "EXPIRED"))
        self._position(market)

    def expire(self, order: FakeOrder) -> None:
        """Binance canceled it (maintenance, liquidation): EXPIRED, EXCHANGE_CANCELED."""
        self._expire(order, "EXCHANGE_CANCELED")

    def deposit(self, asset: str, delta: Decimal) -> None:
        """A deposit (or, negative, a withdrawal): `balanceUpdate` then the position."""
        balance = self.balance(asset)
        balance.free += delta
        now = self.now_ms()
        self.user_event({"e": "balanceUpdate", "E": now, "a": asset, "d": fmt(delta), "T": now})
        self.user_event(self.position([asset]))

    # -- events ----------------------------------------------------------------------

    def report(
        self,
        order: FakeOrder,
        execution_type: str,
        *,
        trade: FakeTrade | None = None,
        client_id: str | None = None,
    ) -> dict[str, object]:
        """`executionReport` as user-data-stream.md shows it. A cancel carries the
        cancel's own id in `c` and the order's in `C`."""
        now = self.now_ms()
        report: dict[str, object] = {
            "e": "executionReport",
            "E": now,
            "s": order.symbol,
            "c": client_id or order.client_order_id,
            "S": order.side,
            "o": order.type,
            "f": order.time_in_force,
            "q": fmt(order.orig_qty),
            "p": fmt(order.price),
            "P": fmt(_ZERO),
            "F": fmt(_ZERO),
            "g": -1,
            "C": order.client_order_id if client_id else "",
            "x": execution_type,
            "X": order.status,
            "r": "NONE",
            "i": order.order_id,
            "l": fmt(trade.qty if trade else _ZERO),
            "z": fmt(order.executed_qty),
            "L": fmt(trade.price if trade else _ZERO),
            "n": fmt(trade.commission) if trade else "0",
            "N": trade.commission_asset if trade else None,
            "T": trade.time_ms if trade else order.update_time_ms,
            "t": trade.trade_id if trade else -1,
            "I": next(self._execution_ids),
            "w": order.is_working,
            "m": trade.is_maker if trade else False,
            "M": False,
            "O": order.time_ms,
            "Z": fmt(order.cummulative_quote_qty),
            "Y": fmt(trade.quote_qty if trade else _ZERO),
            "Q": fmt(order.orig_quote_order_qty),
            "V": "NONE",
        }
        if order.type != "MARKET":
            report["W"] = order.time_ms
        if order.expiry_reason:
            report["eR"] = order.expiry_reason
        return report

    def position(self, assets: Iterable[str]) -> dict[str, object]:
        now = self.now_ms()
        return {
            "e": "outboundAccountPosition",
            "E": now,
            "u": now,
            "B": [
                {"a": a, "f": fmt(self.balance(a).free), "l": fmt(self.balance(a).locked)}
                for a in assets
            ],
        }

    def _position(self, market: SymbolMarket) -> None:
        self.user_event(self.position([market.rules.base_asset, market.rules.quote_asset]))

    def account_json(self, omit_zero: bool) -> dict[str, object]:
        rate = fmt(self.commission_rate)
        bps = int(self.commission_rate * 10_000)
        balances = [
            {"asset": a, "free": fmt(b.free), "locked": fmt(b.locked)}
            for a, b in sorted(self.balances.items())
            if not omit_zero or b.free or b.locked
        ]
        return {
            "makerCommission": bps,
            "takerCommission": bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": rate,
                "taker": rate,
                "buyer": fmt(_ZERO),
                "seller": fmt(_ZERO),
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 354937868,
        }


def _commission(amount: Decimal) -> Decimal:
    return amount.quantize(_COMMISSION_QUANTUM, rounding=ROUND_HALF_UP)
