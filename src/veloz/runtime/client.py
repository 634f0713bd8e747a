"""LocalEngineClient: the `EngineClient` facade on a live engine in the same process, with
the history store (if there is one) behind the reads that go further back than memory.

It reads the engine's components and turns what they hold into views; the rules stay in
the core, the engine and the stores.
"""

import time
from collections.abc import Callable
from decimal import Decimal

import msgspec

from veloz.auth.service import AuthService
from veloz.engine.bus import BusMessage
from veloz.engine.views.account import (
    Account,
    AccountStatus,
    EquityHistory,
    Ping,
    Positions,
)
from veloz.engine.views.admin import (
    CheckpointAnswer,
    LogLevelAnswer,
    ModeAnswer,
    ReloadAnswer,
)
from veloz.engine.views.audit import AuditItem, AuditLog
from veloz.engine.views.execution import BalanceMismatch, OrphanOrder, Orphans
from veloz.engine.views.health import Health, Probe, Readiness
from veloz.engine.views.instruments import Instruments, InstrumentView
from veloz.engine.views.market import BAR_INTERVALS, Bars, Book, MarketState
from veloz.engine.views.orders import (
    FillView,
    OrderEvents,
    OrderEventView,
    OrdersState,
    OrderView,
    Placement,
    Trades,
    WithHistory,
)
from veloz.engine.views.risk import BreakerState, LimitsInForce, RiskStatus, SymbolUtilisation
from veloz.engine.views.strategies import (
    Strategies,
    StrategyCatalog,
    StrategyKind,
    StrategyView,
)
from veloz.engine.views.streams import Backlog
from veloz.model.commands import AddStrategy, CancelAllOrders, CancelOrder, SubmitOrder
from veloz.model.enums import OPEN_STATUSES, ModeAction, OrderSide
from veloz.model.errors import CommandRejected, ErrorCode
from veloz.model.events import OrderFilled
from veloz.model.orders import Order
from veloz.model.queries import AuditQuery, OrderQuery, TradeQuery
from veloz.observability.logs import set_level
from veloz.persistence.service import HistoryService
from veloz.persistence.store import StoreUnavailable
from veloz.risk.portfolio_risk import exposures
from veloz.runtime import health
from veloz.runtime.live import LiveEngine, OrderAck
from veloz.strategy.host import RunningStrategy, StrategySpec
from veloz.strategy.registry import BUILTIN, params_schema

ZERO = Decimal(0)


class LocalEngineClient:
    def __init__(
        self,
        engine: LiveEngine,
        history: HistoryService | None = None,
        auth: AuthService | None = None,
    ) -> None:
        self._engine = engine
        self._history = history
        self._auth = auth  # for readiness: the configured credentials work

    # -- orders --------------------------------------------------------------------------

    async def submit_order(self, command: SubmitOrder) -> Placement:
        ack = await self._engine.submit(command)
        return Placement(order=self._answered(ack), created=ack.created)

    async def cancel_order(self, command: CancelOrder) -> OrderView:
        return self._answered(await self._engine.cancel(command))

    async def cancel_all(self, command: CancelAllOrders) -> list[OrderView]:
        return [self._answered(ack) for ack in await self._engine.cancel_all(command.symbol)]

    def _answered(self, ack: OrderAck) -> OrderView:
        """The order an acknowledgement is about, as it stands now (for one submit or
        cancel, as it was acknowledged: the caller resumes in the same step of the loop)."""
        return OrderView.of(ack.order)

    async def order(self, client_order_id: str) -> OrderView:
        order = self._engine.oms.get(client_order_id)
        if order is None:
            raise CommandRejected(f"no order {client_order_id}", code=ErrorCode.NOT_FOUND)
        return OrderView.of(order)

    def _orders_in_memory(self, query: OrderQuery) -> list[Order]:
        oms = self._engine.oms
        found = oms.all_orders() if query.statuses is None else oms.with_status(query.statuses)
        if query.symbol is not None:
            found = [o for o in found if o.symbol == query.symbol]
        if query.before_ts_ns is not None:
            found = [o for o in found if o.created_ts_ns < query.before_ts_ns]
        return _newest_orders(found, query.limit)

    async def order_history(self, query: OrderQuery) -> WithHistory[OrdersState]:
        """Memory wins for every order it holds: it is never behind the store, and it
        holds every open order, so a stored row still open elsewhere is stale."""
        live = self._orders_in_memory(query)
        complete = True
        if self._history is not None and not (
            query.statuses is not None and query.statuses <= OPEN_STATUSES
        ):
            try:
                stored = await self._history.store.orders(query)
            except StoreUnavailable:
                complete = False
            else:
                held = self._engine.oms
                merged = {
                    o.client_order_id: o
                    for o in stored
                    if o.is_final and held.get(o.client_order_id) is None
                }
                merged.update((o.client_order_id, o) for o in live)
                live = _newest_orders(list(merged.values()), query.limit)
        views = [OrderView.of(o) for o in live]
        return WithHistory(OrdersState(count=len(views), orders=views), complete)

    async def trade_history(self, query: TradeQuery) -> WithHistory[Trades]:
        engine = self._engine
        recent = [
            f
            for f in engine.activity.recent_fills(engine.config.activity_fills)
            if (query.symbol is None or f.symbol == query.symbol)
            and (query.client_order_id is None or f.client_order_id == query.client_order_id)
            and (query.before_ts_ns is None or f.ts_ns < query.before_ts_ns)
        ]
        complete = True
        stored: list[OrderFilled] = []
        if self._history is not None:
            try:
                stored = await self._history.store.trades(query)
            except StoreUnavailable:
                complete = False
        merged = {f.trade_id: f for f in stored} | {f.trade_id: f for f in recent}
        found = sorted(merged.values(), key=lambda f: (f.ts_ns, f.trade_id), reverse=True)
        views = [FillView.of(f) for f in found[: query.limit]]
        return WithHistory(Trades(count=len(views), trades=views), complete)

    async def order_events(self, limit: int) -> OrderEvents:
        messages = self._engine.activity.recent_events(limit)
        return OrderEvents(items=[OrderEventView.of(m) for m in messages])

    # -- account ---------------------------------------------------------------------------

    async def account(self) -> Account:
        engine = self._engine
        return Account(ts_ns=engine.clock.time_ns(), balances=engine.portfolio.balances())

    async def positions(self) -> Positions:
        portfolio = self._engine.portfolio
        positions = portfolio.positions()
        equity = portfolio.equity()
        return Positions(
            count=len(positions),
            positions=positions,
            equity=equity,
            drawdown=portfolio.drawdown(),
            leverage=exposures([p.notional for p in positions], equity).gross_leverage,
        )

    async def equity_history(self) -> EquityHistory:
        risk = self._engine.risk
        return EquityHistory.of(risk.equity_samples(), risk.equity_sample_interval_s)

    async def account_status(self) -> AccountStatus:
        engine = self._engine
        return AccountStatus(
            ts_ns=engine.clock.time_ns(),
            mode=engine.mode,
            mode_reason=engine.mode_reason,
            balances=engine.portfolio.balances(),
            positions=engine.portfolio.positions(),
            open_orders=engine.oms.open_count(),
            orders=len(engine.oms),
            equity=engine.portfolio.equity(),
        )

    async def ping_venue(self) -> Ping:
        venue = self._engine.venue
        started = time.perf_counter()
        try:
            await venue.ping()
        except Exception as exc:  # whatever the venue raises, the answer is "unreachable"
            raise CommandRejected(
                f"{venue.name}: {exc}", code=ErrorCode.VENUE_UNREACHABLE
            ) from None
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        return Ping(ok=True, venue=venue.name, latency_ms=latency_ms)

    async def orphans(self) -> Orphans:
        found = self._engine.reconciliation
        orders = [
            OrphanOrder(
                client_order_id=state.client_order_id,
                venue_order_id=state.venue_order_id,
                symbol=state.symbol,
                side=state.side,
                qty=state.order_qty,
                price=state.price,
                status=state.status,
                executed_qty=state.executed_qty,
            )
            for state in found.orphans
        ]
        mismatches = [
            BalanceMismatch(asset=asset, journal=ours, venue=theirs)
            for asset, (ours, theirs) in found.balance_mismatches.items()
        ]
        return Orphans(
            venue=self._engine.venue.name,
            reconciled_ns=found.last_ns,
            reconciliations=found.runs,
            auto_cancel=self._engine.config.auto_cancel_orphaned,
            count=len(orders),
            orders=orders,
            orphans_found_total=found.orphans_found,
            orphans_cancelled_total=found.orphans_cancelled,
            balance_mismatches=mismatches,
        )

    # -- market ----------------------------------------------------------------------------

    async def symbols(self) -> list[str]:
        return sorted(self._engine.instruments)

    async def instruments(self) -> Instruments:
        instruments = self._engine.instruments
        views = [InstrumentView.of(instruments[symbol]) for symbol in sorted(instruments)]
        return Instruments(count=len(views), instruments=views)

    def _traded(self, symbol: str) -> str:
        """The symbol a market read addresses; one that is not traded is a missing
        resource."""
        symbol = symbol.upper()
        instruments = self._engine.instruments
        if symbol not in instruments:
            known = ", ".join(sorted(instruments))
            raise CommandRejected(f"no market {symbol}; trading {known}", code=ErrorCode.NOT_FOUND)
        return symbol

    async def market(self, symbol: str) -> MarketState:
        symbol = self._traded(symbol)
        engine = self._engine
        now = engine.clock.time_ns()
        quote = engine.market.quote(symbol)
        age = engine.market.age_ns(symbol, now)
        return MarketState(
            status=engine.market.status(symbol, now),
            source=engine.market_source_name,
            symbol=symbol,
            price=quote.mid if quote else None,
            bid=quote.bid if quote else None,
            ask=quote.ask if quote else None,
            ts_ns=quote.ts_ns if quote else None,
            age_ms=None if age is None else age // 1_000_000,
        )

    async def book(self, symbol: str, depth: int = 20) -> Book:
        symbol = self._traded(symbol)
        quote = self._engine.market.quote(symbol)
        exchange = self._engine.exchange
        book = exchange.order_book(symbol) if exchange is not None else None
        if book is not None and book.synced:
            return Book(
                symbol=symbol,
                ts_ns=quote.ts_ns if quote else None,
                bids=[[price, qty] for price, qty in book.bids(depth)],
                asks=[[price, qty] for price, qty in book.asks(depth)],
                depth=depth,
            )
        if quote is None:
            return Book(symbol=symbol, ts_ns=None, bids=[], asks=[], depth=depth)
        return Book(
            symbol=symbol,
            ts_ns=quote.ts_ns,
            bids=[[quote.bid, quote.bid_size]],
            asks=[[quote.ask, quote.ask_size]],
            depth=depth,
        )

    async def bars(self, symbol: str, interval: str, limit: int) -> Bars:
        symbol = self._traded(symbol)
        if interval not in BAR_INTERVALS:
            raise CommandRejected(f"interval must be one of {', '.join(BAR_INTERVALS)}")
        bars = self._engine.market.bars(symbol, limit)
        return Bars(symbol=symbol, interval=interval, bars=bars)

    # -- risk ------------------------------------------------------------------------------

    async def risk_limits(self) -> LimitsInForce:
        risk = self._engine.risk
        loaded = risk.loaded
        return LimitsInForce(
            limits=loaded.limits,
            source=loaded.source,
            loaded_at_ns=loaded.loaded_at_ns,
            sha256=loaded.sha256,
            order_rate_limit=risk.rate_per_s,
        )

    async def risk_status(self) -> RiskStatus:
        engine = self._engine
        oms, portfolio, limits = engine.oms, engine.portfolio, engine.risk.loaded.limits
        symbols = [
            SymbolUtilisation(
                symbol=symbol,
                position_qty=portfolio.position_qty(symbol),
                open_buy_qty=oms.open_qty(symbol, OrderSide.BUY),
                open_sell_qty=oms.open_qty(symbol, OrderSide.SELL),
                open_orders=oms.open_count(symbol),
                max_position_qty=limits.for_symbol(symbol).max_position_qty,
                max_open_orders=limits.for_symbol(symbol).max_open_orders,
            )
            for symbol in sorted(engine.instruments)
        ]
        equity = portfolio.equity()
        exposure = exposures([p.notional for p in portfolio.positions()], equity)
        breaker = engine.breaker
        return RiskStatus(
            mode=engine.mode,
            mode_reason=engine.mode_reason,
            breaker=BreakerState(
                tripped=breaker.tripped,
                reason=breaker.reason,
                until_ns=breaker.tripped_until_ns,
                trips=breaker.trips,
            ),
            open_orders=oms.open_count(),
            max_open_orders=limits.max_open_orders,
            symbols=symbols,
            denials=dict(sorted(engine.stats.rejections.items())),
            equity=equity,
            peak_equity=portfolio.peak_equity,
            drawdown=portfolio.drawdown(),
            var_95=engine.risk.value_at_risk(0.95),
            var_99=engine.risk.value_at_risk(0.99),
            equity_samples=engine.risk.equity_sample_count,
            gross_leverage=exposure.gross_leverage,
            net_leverage=exposure.net_leverage,
            largest_position_share=exposure.largest_share,
            concentration_hhi=exposure.hhi,
        )

    # -- health ----------------------------------------------------------------------------

    async def health(self) -> Health:
        return health.health(self._engine)

    async def liveness(self) -> Probe:
        return health.liveness(self._engine)

    async def startup(self) -> Probe:
        return health.startup(self._engine)

    async def readiness(self, symbol: str) -> Readiness:
        return health.readiness(self._engine, symbol, self._history, self._auth)

    # -- admin -----------------------------------------------------------------------------

    async def set_mode(self, action: ModeAction, actor: str) -> ModeAnswer:
        mode, changed = await self._engine.admin_mode(action, actor)
        return ModeAnswer(mode=mode, changed=changed)

    async def reset_breaker(self, actor: str) -> ModeAnswer:
        before = self._engine.mode
        mode = await self._engine.reset_breaker(actor)
        return ModeAnswer(mode=mode, changed=mode is not before)

    async def set_log_level(self, level: str) -> LogLevelAnswer:
        set_level(level)
        return LogLevelAnswer(mode=self._engine.mode, level=level, applied_to=["engine"])

    async def reload_risk_limits(self, actor: str) -> ReloadAnswer:
        loaded = self._engine.reload_risk_limits(actor)
        return ReloadAnswer(
            mode=self._engine.mode,
            source=loaded.source,
            sha256=loaded.sha256,
            loaded_at_ns=loaded.loaded_at_ns,
        )

    async def checkpoint(self) -> CheckpointAnswer:
        seq = await self._engine.write_checkpoint()
        return CheckpointAnswer(mode=self._engine.mode, seq=seq)

    async def audit_log(self, query: AuditQuery) -> AuditLog:
        if self._history is None:
            raise CommandRejected(
                "there is no history store (VELOZ_DATABASE_URL=none)", code=ErrorCode.NOT_READY
            )
        try:
            records = await self._history.store.audit_log(query)
        except StoreUnavailable as exc:
            raise CommandRejected(
                f"the history store is unavailable: {exc}", code=ErrorCode.STORE_UNAVAILABLE
            ) from None
        items = [msgspec.convert(r, AuditItem, from_attributes=True) for r in records]
        return AuditLog(count=len(items), items=items)

    # -- streams ---------------------------------------------------------------------------

    # -- strategies ------------------------------------------------------------------------

    async def strategies(self) -> Strategies:
        host = self._engine.strategies
        return Strategies(strategies=[self._strategy_view(r) for r in host.all()])

    async def strategy(self, strategy_id: str) -> StrategyView:
        return self._strategy_view(self._engine.strategies.get(strategy_id))

    async def strategy_catalog(self) -> StrategyCatalog:
        return StrategyCatalog(
            strategies=[
                StrategyKind(
                    name=name, description=cls.description, params_schema=params_schema(cls)
                )
                for name, cls in sorted(BUILTIN.items())
            ]
        )

    async def add_strategy(self, command: AddStrategy, actor: str) -> StrategyView:
        spec = StrategySpec(
            strategy_id=command.strategy_id,
            name=command.strategy,
            symbol=command.symbol,
            params=command.params,
        )
        await self._engine.add_strategy(spec, actor, command.start)
        return await self.strategy(command.strategy_id)

    async def change_strategy(self, strategy_id: str, action: str, actor: str) -> StrategyView:
        running = self._engine.strategies.get(strategy_id)
        await self._engine.change_strategy(strategy_id, action, actor)
        return self._strategy_view(running)

    def _strategy_view(self, running: RunningStrategy) -> StrategyView:
        engine = self._engine
        position = engine.core.strategy_position(running.strategy_id)
        quote = engine.core.quote(running.spec.symbol)
        qty = position.qty if position is not None else ZERO
        unrealized = (
            position.unrealized_pnl(quote.mid)
            if position is not None and quote is not None and qty
            else ZERO
        )
        return StrategyView(
            strategy_id=running.strategy_id,
            strategy=running.spec.name,
            symbol=running.spec.symbol,
            params=dict(running.spec.params),
            state=running.state,
            error=running.error,
            position=qty,
            avg_price=position.avg_price if position is not None else None,
            realized_pnl=position.realized_pnl if position is not None else ZERO,
            unrealized_pnl=unrealized,
            open_orders=len(engine.strategies.open_orders(running)),
            orders=running.counts.orders,
            denied=running.counts.denied,
            fills=running.counts.fills,
            errors=running.counts.errors,
        )

    def subscribe(self, handler: Callable[[BusMessage], None]) -> Callable[[], None]:
        return self._engine.bus.subscribe(handler)

    def events_since(self, seq: int) -> Backlog:
        activity = self._engine.activity
        missed = activity.since(seq)
        if missed is None:
            return Backlog(messages=[], complete=False, last_seq=activity.last_seq)
        return Backlog(messages=missed, complete=True, last_seq=activity.last_seq)


def _newest_orders(orders: list[Order], limit: int | None) -> list[Order]:
    orders.sort(key=lambda o: (o.created_ts_ns, o.client_order_id), reverse=True)
    return orders[:limit] if limit is not None else orders
