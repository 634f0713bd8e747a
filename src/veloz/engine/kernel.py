"""The Engine: wires the components and owns the lifecycle and the order path.

    start:  recover the journal -> replay from the newest checkpoint -> seed/restore the
            venue -> reconcile live orders with it by client order id -> ready
    order:  validate -> apply in memory -> journal (group commit) -> durable -> ack and
            send to the venue (intent before send)
    report: venue report -> check + apply -> journal -> publish once durable
    stop:   refuse new orders, drain in-flight work, checkpoint, close

State changes go through `_apply` only, which live trading and replay share, so a replay
rebuilds exactly what live trading built.
"""

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec

from veloz.codec import PayloadError, decode_event, decode_msgpack, encode_event, encode_msgpack
from veloz.engine.activity import ActivityLog
from veloz.engine.bus import EventBus, Journaled, RiskAlert
from veloz.engine.checkpoint import CHECKPOINT_VERSION, EngineCheckpoint
from veloz.engine.clock import Clock, LiveClock
from veloz.engine.stats import EngineStats
from veloz.execution.engine import ExecutionEngine
from veloz.execution.reconcile import reconcile
from veloz.execution.venue import VenueOrder
from veloz.execution.venues.sim import SimVenue, SimVenueConfig
from veloz.journal.framing import EntryType, Record
from veloz.journal.recovery import recover
from veloz.journal.segments import JournalLocked
from veloz.journal.stats import JournalStats
from veloz.journal.writer import (
    BatchDurability,
    JournalConfig,
    JournalUnavailable,
    JournalWriter,
)
from veloz.market.engine import MarketDataConfig, MarketDataEngine
from veloz.market.sim import SimMarketConfig, SimMarketSource
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TradingMode
from veloz.model.errors import CommandRejected, InvalidTransition
from veloz.model.events import (
    BalanceSet,
    Event,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderReport,
    OrderSubmitted,
    TradingModeChanged,
)
from veloz.model.market import Bar, QuoteTick, TradeTick
from veloz.model.orders import Order
from veloz.observability.loop import LoopLagMonitor
from veloz.oms.manager import OrderManager
from veloz.oms.validation import validate_against
from veloz.portfolio.portfolio import Portfolio
from veloz.risk.breaker import CircuitBreaker
from veloz.risk.checks import Denial, Exposure, OrderIntent
from veloz.risk.engine import RiskConfig, RiskEngine
from veloz.risk.limits import BreakerLimits, LoadedLimits, RiskLimitsError
from veloz.risk.watcher import watch_file

logger = logging.getLogger(__name__)

IN_FLIGHT = (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL)

# action -> (the only mode it leaves, or None for any; the mode it sets)
_ADMIN_MODES: dict[str, tuple[TradingMode | None, TradingMode]] = {
    "maintenance": (None, TradingMode.MAINTENANCE),
    "ready": (TradingMode.MAINTENANCE, TradingMode.ACTIVE),
    "readonly": (None, TradingMode.READONLY),
    "readwrite": (TradingMode.READONLY, TradingMode.ACTIVE),
}


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    journal: JournalConfig = JournalConfig()
    market: SimMarketConfig = SimMarketConfig()
    market_data: MarketDataConfig = MarketDataConfig()
    venue: SimVenueConfig = SimVenueConfig()
    # Final orders kept in memory and in every checkpoint, so the engine shows the same
    # orders before and after a restart; older ones stay in the journal (and, later, the
    # history store).
    retained_final_orders: int = 5_000
    drain_timeout_s: float = 5.0
    risk: RiskConfig = RiskConfig()
    # Time orders and risk decisions for the latency metrics (VELOZ_METRICS).
    record_latency: bool = True
    # Recent order events and fills kept for /api/orders, /api/trades and stream resume.
    activity_events: int = 10_000
    activity_fills: int = 1_000
    # Run the sim market's own timer; tests and benchmarks may feed quotes themselves.
    run_market: bool = True


class OrderAck(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    ok: bool = True
    client_order_id: str
    status: OrderStatus
    venue_order_id: str | None = None
    created: bool = True


class Engine:
    def __init__(self, config: EngineConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or LiveClock()
        self.journal_stats = JournalStats()
        self.bus = EventBus()
        self.activity = ActivityLog(config.activity_events, config.activity_fills)
        self.bus.subscribe(self.activity.on_bus)
        self.oms = OrderManager(config.retained_final_orders)
        self.market_source = SimMarketSource(config.market, self.clock)
        self.market_source_name = "sim"
        self.instruments = self.market_source.instruments()
        self.market = MarketDataEngine(config.market_data)
        self.portfolio = Portfolio(self.instruments)
        self.venue = SimVenue(config.venue, self.clock, self.instruments, self.market.quote)
        self.execution = ExecutionEngine(self.venue, self._on_send_error)
        self.risk = RiskEngine(config.risk, self.clock.time_ns)
        self.breaker = CircuitBreaker()
        self._drawdown_warned = False
        self._mode_tasks: set[asyncio.Task[None]] = set()
        self._stop_watching = asyncio.Event()
        self._limits_watcher: asyncio.Task[None] | None = None
        self.mode = TradingMode.ACTIVE
        self.mode_reason = ""
        self.phase = "created"
        self.journal: JournalWriter | None = None
        self.journal_error: str | None = None
        self.journal_problems: list[str] = []
        # Who else reads the journal files (the history projector): each says the oldest
        # sequence it still needs, and retention keeps the segment holding it.
        self.journal_readers: list[Callable[[], int]] = []
        self.stats = EngineStats()
        # Orders handed to the venue and not answered yet, with when (for venue_latency).
        self._awaiting_venue: dict[str, float] = {}
        self.started_ns = self.clock.time_ns()
        self.loop_lag = LoopLagMonitor()
        self._generated_ids = 0
        self._id_prefix = f"vz-{self.started_ns // 1_000_000:x}-"
        self._balances_seeded = False
        self._checkpoint: EngineCheckpoint | None = None
        self._submissions: dict[str, BatchDurability] = {}
        self._batch_follow_up: _BatchFollowUp | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    async def start(self) -> None:
        self.phase = "replaying"
        self.loop_lag.start()
        self._open_journal()
        if self._balances_seeded:
            # The sim venue keeps no files: it resumes from what the journal says it held.
            self.venue.restore(self._orders_at_venue(), self.portfolio.balances())
        self.venue.set_report_handler(self._on_report)
        await self.venue.connect()
        self.execution.start()
        if self.journal is not None and not self._balances_seeded:
            await self._seed_balances()
        if self.journal is not None and self.journal_problems:
            await self._quarantine_damage()
        self.market.subscribe(self._on_market)
        path = self.risk.limits_path
        if self.config.risk.watch and path is not None:
            self._limits_watcher = asyncio.get_running_loop().create_task(
                watch_file(path, self._reload_on_change, self._stop_watching),
                name="veloz-risk-limits-watcher",
            )
        if self.config.run_market:
            await self.market.start(self.market_source)
        self.phase = "reconciling"
        await self._reconcile()
        if self.journal is not None and self.journal.entries_since_checkpoint:
            await self.write_checkpoint()
        # What recovery built lives as long as the engine: keep the collector from
        # re-scanning it on every full collection.
        gc.freeze()
        self.phase = "ready"
        logger.info(
            "engine ready: %d orders (%d open), mode %s",
            len(self.oms),
            self.oms.open_count(),
            self.mode,
        )

    async def stop(self) -> None:
        """Refuse new orders, let in-flight work finish (bounded), checkpoint, close."""
        if self.phase in ("stopping", "stopped"):
            return
        self.phase = "stopping"
        self._stop_watching.set()
        if self._limits_watcher is not None:
            await self._limits_watcher
        await self.market.stop()
        deadline = time.monotonic() + self.config.drain_timeout_s
        if self._submissions:
            await asyncio.wait(
                list(self._submissions.values()), timeout=self.config.drain_timeout_s
            )
        # In-flight orders settle through venue reports; a bounded poll is all we need.
        while self.oms.with_status(IN_FLIGHT) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await self.execution.stop()
        await self.venue.close()
        if self.journal is not None:
            if self.journal.failure is None:
                await self.write_checkpoint()
            await self.journal.close()
        await self.loop_lag.stop()
        self.phase = "stopped"

    async def checkpoint_offline(self) -> int:
        """Replay the journal and write a checkpoint without starting trading."""
        self._open_journal()
        try:
            return await self.write_checkpoint()
        finally:
            if self.journal is not None:
                await self.journal.close()

    def _open_journal(self) -> None:
        started = time.perf_counter()
        try:
            recovery, writer = recover(
                self.config.journal, self.journal_stats, self._accept_checkpoint, self.clock.time_ns
            )
        except JournalLocked:
            raise
        except OSError as exc:
            self.journal_error = (
                f"cannot open the journal in {self.config.journal.directory}: {exc.strerror or exc}"
            )
            self.mode, self.mode_reason = TradingMode.READONLY, self.journal_error
            logger.error("%s; refusing orders", self.journal_error)
            return
        if self._checkpoint is not None:
            self._restore(self._checkpoint)
        if recovery.checkpoint is not None:
            self.activity.starts_after(recovery.checkpoint.seq)
        for record in recovery.entries():
            self._replay(record)
        self.journal_problems += recovery.problems
        for problem in recovery.problems:
            logger.error("journal damage: %s", problem)
        for path in recovery.quarantined:
            logger.error("damaged journal file copied to %s", path)
        for path in recovery.strangers:
            logger.warning("ignoring unexpected file in the journal directory: %s", path)
        if self.journal_readers:
            writer.retention_floor = self._journal_read_floor
        writer.start()
        self.journal = writer
        self.journal_stats.replay_seconds = time.perf_counter() - started
        logger.info(
            "journal replayed: %d entries after checkpoint seq %s in %.3fs",
            self.journal_stats.replayed_entries,
            recovery.checkpoint.seq if recovery.checkpoint else None,
            self.journal_stats.replay_seconds,
        )

    def _journal_read_floor(self) -> int:
        return min(reader() for reader in self.journal_readers)

    def _accept_checkpoint(self, record: Record) -> bool:
        try:
            checkpoint = decode_msgpack(record.payload, EngineCheckpoint)
        except msgspec.DecodeError as exc:
            logger.error(
                "checkpoint at seq %d is unreadable (%s); trying an older one", record.seq, exc
            )
            return False
        if checkpoint.version != CHECKPOINT_VERSION:
            logger.error(
                "checkpoint at seq %d has version %d, this engine reads %d; trying an older one",
                record.seq,
                checkpoint.version,
                CHECKPOINT_VERSION,
            )
            return False
        self._checkpoint = checkpoint
        return True

    def _restore(self, checkpoint: EngineCheckpoint) -> None:
        self.oms.restore(checkpoint.orders)
        self.portfolio.restore(checkpoint.portfolio)
        self.mode, self.mode_reason = checkpoint.mode, checkpoint.mode_reason
        self._generated_ids = checkpoint.generated_ids
        self._balances_seeded = checkpoint.balances_seeded

    def _replay(self, record: Record) -> None:
        if record.entry_type in (EntryType.Checkpoint, EntryType.Rotation):
            return
        try:
            event = decode_event(record.entry_type, record.payload)
            order = self._apply(event)
        except (PayloadError, InvalidTransition) as exc:
            # The journal contradicts itself: state may be incomplete, say so loudly.
            self.journal_problems.append(f"replay of seq {record.seq}: {exc}")
            self.journal_stats.corrupted_entries += 1
            return
        # Replayed events join the activity a stream may resume from, with the order as it
        # stood right after each, as live publication has it.
        snapshot = msgspec.structs.replace(order) if order is not None else None
        self.activity.record(Journaled(record.seq, event, snapshot))

    async def _quarantine_damage(self) -> None:
        """State may be incomplete: trade nothing until an operator has looked. READONLY is
        journaled so it survives restarts, and the damage is rotated behind a checkpoint so
        the operator's `readwrite` is not undone by reading the same damage again."""
        assert self.journal is not None
        self.journal.rotate_now(self.clock.time_ns())
        reason = f"journal damaged ({len(self.journal_problems)} problems): check the WAL"
        await self.set_mode(TradingMode.READONLY, reason, "engine")
        await self.write_checkpoint()

    def _orders_at_venue(self) -> list[Order]:
        return [o for o in self.oms.open_orders() if o.venue_order_id is not None]

    async def _seed_balances(self) -> None:
        now = self.clock.time_ns()
        events = [
            BalanceSet(asset=asset, total=total, ts_ns=now)
            for asset, total in sorted((await self.venue.balances()).items())
        ]
        for event in events:
            self._apply(event)
        self._balances_seeded = True
        await asyncio.gather(*(self._record(e, None) for e in events))

    async def _reconcile(self) -> None:
        live = self.oms.open_orders()
        if not live:
            return
        result = await reconcile(self.venue, live, self.clock.time_ns)
        for report in result.reports:
            self._on_report(report)
        for order in result.cancels_to_resend:
            self.execution.send_cancel(order.client_order_id, order.symbol)
        logger.info(
            "reconciled %d live orders with %s: %d missed reports, %d cancels re-sent",
            result.checked,
            self.venue.name,
            len(result.reports),
            len(result.cancels_to_resend),
        )

    # -- the one place state changes -------------------------------------------------------

    def _apply(self, event: Event) -> Order | None:
        match event:
            case OrderSubmitted():
                order = self.oms.add(event)
                self.portfolio.on_submitted(order)
                self.stats.orders_taken[(event.side, event.order_type)] += 1
                return order
            case OrderFilled():
                order = self.oms.apply(event)
                self.stats.fills_by_side[event.side] += 1
                realized_before = self.portfolio.realized_pnl(event.symbol)
                self.portfolio.on_fill(order, event)
                self._count_closing(self.portfolio.realized_pnl(event.symbol) - realized_before)
                self._on_order_changed(order)
                return order
            case TradingModeChanged():
                self.mode, self.mode_reason = event.mode, event.reason
            case BalanceSet():
                self.portfolio.on_balance_set(event.asset, event.total)
                self._balances_seeded = True
            case OrderDenied():  # before OrderEvent: a denial names an order that never existed
                self.stats.rejections[event.reason] += 1
            case OrderEvent():
                order = self.oms.apply(event)
                self._on_order_changed(order)
                return order
        return None

    def _count_closing(self, realized: Decimal) -> None:
        """A fill that realised PnL closed (part of) a position: count it won or lost."""
        if realized:
            self.stats.trades_closed += 1
            self.stats.trades_won += realized > 0

    def _on_order_changed(self, order: Order) -> None:
        if order.is_final:
            self.portfolio.on_final(order)

    def _record(self, event: Event, order: Order | None) -> BatchDurability:
        """Journal an applied event; publish it once durable. Returns the durability future."""
        if self.journal is None:
            raise JournalUnavailable(self.journal_error or "no journal")
        entry_type, payload = encode_event(event)
        seq, durable = self.journal.append(entry_type, payload, event.ts_ns)
        if self.bus.has_subscribers:
            # Copied now: the order keeps changing before the batch is durable.
            snapshot = msgspec.structs.replace(order) if order else None
            self._follow_up(durable).published.append(Journaled(seq, event, snapshot))
        self._maybe_checkpoint(self.journal)
        return durable

    def _follow_up(self, durable: BatchDurability) -> "_BatchFollowUp":
        """What to do once `durable`'s batch is on disk: one callback per batch, not one
        per entry, since a batch holds hundreds of entries under load."""
        follow_up = self._batch_follow_up
        if follow_up is None or follow_up.durable is not durable:
            # The batch in flight keeps its own follow-up: it travels with its callback.
            follow_up = self._batch_follow_up = _BatchFollowUp(durable)
            durable.add_done_callback(functools.partial(self._on_batch_done, follow_up))
        return follow_up

    def _on_batch_done(self, follow_up: "_BatchFollowUp", durable: asyncio.Future[None]) -> None:
        if self._batch_follow_up is follow_up:
            self._batch_follow_up = None
        if not _succeeded(durable):
            for order in follow_up.submitted:  # never acknowledged, never sent
                self._submissions.pop(order.client_order_id, None)
                self._undo_submission(order)
            return
        for message in follow_up.published:
            self.bus.publish(message)
        sent_at = time.perf_counter()
        for order in follow_up.submitted:  # intent is durable: now the venue may see it
            self._submissions.pop(order.client_order_id, None)
            self.execution.send_order(VenueOrder.of(order))
            if self.config.record_latency:
                self._awaiting_venue[order.client_order_id] = sent_at

    def _maybe_checkpoint(self, journal: JournalWriter) -> None:
        since = journal.entries_since_checkpoint
        if since < self.config.journal.checkpoint_interval:
            return  # the common case, decided without looking at the book
        # A checkpoint carries every order in memory; stretching the interval with them keeps
        # checkpoints a bounded share of the log (and replay after one bounded) however many
        # orders rest.
        if since >= 4 * len(self.oms) and journal.failure is None:
            self._append_checkpoint()

    def _append_checkpoint(self) -> BatchDurability:
        assert self.journal is not None
        state = EngineCheckpoint(
            ts_ns=self.clock.time_ns(),
            orders=self.oms.snapshot(),
            portfolio=self.portfolio.snapshot(),
            mode=self.mode,
            mode_reason=self.mode_reason,
            generated_ids=self._generated_ids,
            balances_seeded=self._balances_seeded,
        )
        _, durable = self.journal.append(EntryType.Checkpoint, encode_msgpack(state), state.ts_ns)
        self.journal_stats.checkpoints += 1
        return durable

    async def write_checkpoint(self) -> int:
        """Write a checkpoint now; returns its sequence once durable."""
        self._check_journal()
        assert self.journal is not None
        seq = self.journal.next_seq
        await self._append_checkpoint()
        return seq

    # -- commands ----------------------------------------------------------------------

    async def submit(self, command: SubmitOrder) -> OrderAck:
        started = time.perf_counter()
        self._check_taking_commands()
        event = self._submission(command)
        existing = self.oms.existing_for(event)
        if existing is not None:
            return await self._resubmitted(existing)
        denial = self.risk_decision(event)
        if denial is not None:
            self._deny(event, denial.reason, denial.message)
        order = self._apply(event)
        assert order is not None
        try:
            durable = self._record(event, order)
        except JournalUnavailable as exc:
            self._undo_submission(order)
            raise _refused(exc) from None
        self._submissions[order.client_order_id] = durable
        self._follow_up(durable).submitted.append(order)
        await _durable(durable)
        if self.config.record_latency:
            self.stats.order_latency.observe(time.perf_counter() - started)
        return _ack(order, created=True)

    def _submission(self, command: SubmitOrder) -> OrderSubmitted:
        instrument = self.instruments.get(command.symbol)
        if instrument is None:
            raise CommandRejected(
                f"unknown symbol {command.symbol}; trading {', '.join(sorted(self.instruments))}",
                code="unknown_symbol",
            )
        reference = self._reference_price(command)
        validate_against(command, instrument, reference)
        return OrderSubmitted(
            client_order_id=command.client_order_id or self._next_client_order_id(),
            symbol=command.symbol,
            side=command.side,
            order_type=command.order_type,
            time_in_force=command.time_in_force,
            qty=command.qty,
            price=command.price,
            reference_price=reference,
            strategy_id=command.strategy_id,
            ts_ns=self.clock.time_ns(),
        )

    def _reference_price(self, command: SubmitOrder) -> Decimal | None:
        if command.order_type is not OrderType.MARKET:
            return None
        quote = self.market.quote(command.symbol)
        if quote is None:
            raise CommandRejected(f"no market data for {command.symbol} yet", code="no_market_data")
        return quote.ask if command.side is OrderSide.BUY else quote.bid

    async def _resubmitted(self, order: Order) -> OrderAck:
        pending = self._submissions.get(order.client_order_id)
        if pending is not None:
            await _durable(pending)
        return _ack(order, created=False)

    def _undo_submission(self, order: Order) -> None:
        """The submission never became durable: it was not acknowledged and not sent."""
        self.portfolio.on_final(order)
        self.oms.forget(order.client_order_id)

    def _deny(self, event: OrderSubmitted, reason: str, message: str) -> None:
        """Refuse an order before it enters the book: journaled and counted by reason, never
        an order."""
        if reason in _MODE_DENIALS:
            message = f"{message}: {self.mode_reason or 'set by an operator'}"
        denied = OrderDenied(
            client_order_id=event.client_order_id,
            symbol=event.symbol,
            side=event.side,
            qty=event.qty,
            price=event.price,
            reason=reason,
            message=message,
            ts_ns=event.ts_ns,
        )
        self._apply(denied)
        if self.journal is not None and self.journal.failure is None:
            self._record(denied, None)
        if reason not in _MODE_DENIALS:
            self._breaker_says(self.breaker.note_rejection(event.ts_ns, self._breaker_limits))
        code = _DENIAL_CODES.get(reason, "risk_rejected")
        raise CommandRejected(message, code=code, reason=reason)

    def risk_decision(self, event: OrderSubmitted) -> Denial | None:
        """Whether the risk engine lets this order into the book, given the book now."""
        if not self.config.record_latency:
            return self.risk.check(_intent(event), self.mode, self._exposure(event.symbol))
        started = time.perf_counter()
        denial = self.risk.check(_intent(event), self.mode, self._exposure(event.symbol))
        self.stats.risk_latency.observe(time.perf_counter() - started)
        return denial

    def _exposure(self, symbol: str) -> Exposure:
        instrument = self.instruments[symbol]
        quote = self.market.quote(symbol)
        return Exposure(
            position_qty=self.portfolio.position_qty(symbol),
            open_buy_qty=self.oms.open_qty(symbol, OrderSide.BUY),
            open_sell_qty=self.oms.open_qty(symbol, OrderSide.SELL),
            open_orders_symbol=self.oms.open_count(symbol),
            open_orders_total=self.oms.open_count(),
            mark=quote.mid if quote is not None else None,
            free_quote=self.portfolio.free(instrument.quote_asset),
            free_base=self.portfolio.free(instrument.base_asset),
        )

    async def cancel(self, command: CancelOrder) -> OrderAck:
        self._check_taking_commands()
        order = self.oms.get(command.client_order_id)
        if order is None:
            raise CommandRejected(f"no order {command.client_order_id}", code="not_found")
        if command.symbol is not None and command.symbol != order.symbol:
            raise CommandRejected(
                f"order {order.client_order_id} is for {order.symbol}, not {command.symbol}"
            )
        if order.is_final:
            raise CommandRejected(
                f"order {order.client_order_id} is already {order.status}", code="order_final"
            )
        if order.status is not OrderStatus.PENDING_CANCEL:
            event = OrderCancelRequested(
                client_order_id=order.client_order_id, ts_ns=self.clock.time_ns()
            )
            self._apply(event)
            try:
                durable = self._record(event, order)
                await durable
            except JournalUnavailable as exc:
                self._apply(
                    OrderCancelRejected(
                        client_order_id=order.client_order_id,
                        reason="journal_unavailable",
                        ts_ns=self.clock.time_ns(),
                    )
                )
                raise _refused(exc) from None
            self.execution.send_cancel(order.client_order_id, order.symbol)
        return _ack(order, created=False)

    def reload_risk_limits(self, actor: str) -> LoadedLimits:
        """Re-read the risk limits file; an invalid one is refused (CommandRejected) and the
        limits in force stay."""
        try:
            loaded = self.risk.reload()
        except RiskLimitsError as exc:
            logger.error("risk limits reload by %s refused: %s", actor, exc)
            raise CommandRejected(str(exc), code="bad_limits") from None
        logger.warning(
            "risk limits reloaded by %s from %s (sha256 %s)", actor, loaded.source, loaded.sha256
        )
        return loaded

    def _watch_drawdown(self, ts_ns: int) -> None:
        """Warn once per crossing of the warning level; above the critical level stop new
        orders (READONLY, journaled; cancels still work)."""
        limits = self.risk.loaded.limits
        drawdown = self.portfolio.drawdown() * 100
        warning, critical = limits.drawdown_warning_pct, limits.drawdown_critical_pct
        if critical is not None and drawdown >= critical and self.mode is TradingMode.ACTIVE:
            message = f"drawdown {drawdown:.2f}% is above the critical {critical}%"
            self._alert("critical", drawdown, critical, message, ts_ns)
            self._change_mode_soon(TradingMode.READONLY, message)
        elif warning is not None and drawdown >= warning and not self._drawdown_warned:
            self._alert(
                "warning",
                drawdown,
                warning,
                f"drawdown {drawdown:.2f}% is above the warning {warning}%",
                ts_ns,
            )
        self._drawdown_warned = warning is not None and drawdown >= warning

    def _alert(
        self, level: str, value: Decimal, threshold: Decimal, message: str, ts_ns: int
    ) -> None:
        logger.warning("risk %s: %s", level, message)
        self.bus.publish(
            RiskAlert(
                level=level,
                kind="drawdown",
                value=value,
                threshold=threshold,
                message=message,
                ts_ns=ts_ns,
            )
        )

    @property
    def _breaker_limits(self) -> BreakerLimits:
        return self.risk.loaded.limits.breaker

    def _breaker_says(self, trip_reason: str | None) -> None:
        if trip_reason is not None and self.mode is not TradingMode.HALTED:
            logger.error("circuit breaker tripped: %s", trip_reason)
            self._change_mode_soon(TradingMode.HALTED, f"circuit breaker: {trip_reason}")

    def _change_mode_soon(self, mode: TradingMode, reason: str) -> None:
        """Mode changes are journaled (async); the sync paths that decide them schedule it."""
        if self.journal is None or self.journal.failure is not None or self.phase != "ready":
            return
        task = asyncio.get_running_loop().create_task(self.set_mode(mode, reason, "risk"))
        self._mode_tasks.add(task)
        task.add_done_callback(self._mode_tasks.discard)

    async def reset_breaker(self, actor: str) -> TradingMode:
        """An admin closes the breaker; a HALTED engine trades again."""
        self.breaker.reset()
        if self.mode is TradingMode.HALTED:
            await self.set_mode(TradingMode.ACTIVE, f"circuit breaker reset by {actor}", actor)
        return self.mode

    def _reload_on_change(self) -> None:
        # The refusal of an invalid file is already logged; the old limits stay.
        with contextlib.suppress(CommandRejected):
            self.reload_risk_limits("file-watcher")

    async def cancel_all(self, symbol: str | None = None) -> list[OrderAck]:
        """Cancel every open order (of `symbol`), concurrently so the cancel requests share
        journal syncs. Orders that finish meanwhile are skipped, not reported as errors."""
        self._check_taking_commands()
        targets = [
            order.client_order_id
            for order in self.oms.open_orders()
            if symbol is None or order.symbol == symbol
        ]
        results = await asyncio.gather(
            *(self.cancel(CancelOrder(client_order_id=coid)) for coid in targets),
            return_exceptions=True,
        )
        acks: list[OrderAck] = []
        for result in results:
            if isinstance(result, OrderAck):
                acks.append(result)
            elif not (isinstance(result, CommandRejected) and result.code == "order_final"):
                raise result
        return acks

    async def admin_mode(self, action: str, actor: str) -> tuple[TradingMode, bool]:
        """An operator's mode command; returns the mode after it and whether it changed.

        `maintenance` and `readonly` always apply. `ready` leaves only MAINTENANCE and
        `readwrite` only READONLY: anything else is left as it is (a HALTED breaker or a
        READONLY set for journal damage is never cleared by the wrong command).
        """
        try:
            leaves, target = _ADMIN_MODES[action]
        except KeyError:
            raise CommandRejected(f"mode action must be one of {', '.join(_ADMIN_MODES)}") from None
        if self.mode is target or (leaves is not None and self.mode is not leaves):
            return self.mode, False
        await self.set_mode(target, f"{action} by {actor}", actor)
        return self.mode, True

    async def set_mode(self, mode: TradingMode, reason: str, actor: str) -> None:
        self._check_journal()
        event = TradingModeChanged(
            mode=mode, reason=reason, actor=actor, ts_ns=self.clock.time_ns()
        )
        self._apply(event)
        await self._record(event, None)
        logger.warning("trading mode set to %s by %s: %s", mode, actor, reason)

    def _check_taking_commands(self) -> None:
        if self.phase in ("stopping", "stopped"):
            raise CommandRejected("the engine is shutting down", code="shutting_down")
        if self.phase != "ready":  # replay and reconciliation come first
            raise CommandRejected(f"the engine is still starting ({self.phase})", code="not_ready")
        self._check_journal()

    def _check_journal(self) -> None:
        if self.journal is None or self.journal.failure is not None:
            reason = self.journal.failure if self.journal else self.journal_error
            raise CommandRejected(f"orders are refused: {reason}", code="journal_unavailable")

    def _next_client_order_id(self) -> str:
        self._generated_ids += 1
        return f"{self._id_prefix}{self._generated_ids}"

    # -- venue and market input --------------------------------------------------------

    def _on_report(self, report: OrderReport) -> None:
        try:
            order = self._apply(report)
        except InvalidTransition as exc:
            if exc.code != "duplicate_trade":
                self.stats.invalid_reports += 1
                logger.warning("venue report refused: %s", exc)
            return
        sent_at = self._awaiting_venue.pop(report.client_order_id, None)
        if sent_at is not None:  # the venue's first answer to this order
            self.stats.venue_latency.observe(time.perf_counter() - sent_at)
        if isinstance(report, OrderFilled):
            self.portfolio.update_equity()
        elif isinstance(report, OrderRejected):
            self._breaker_says(self.breaker.note_rejection(report.ts_ns, self._breaker_limits))
        try:
            self._record(report, order)
        except JournalUnavailable:
            logger.error(
                "venue report for %s could not be journaled; reconciliation after "
                "a restart will recover it",
                report.client_order_id,
            )

    def _on_send_error(self, client_order_id: str, error: Exception) -> None:
        self.stats.rejections["venue_error"] += 1
        now = self.clock.time_ns()
        self._breaker_says(self.breaker.note_venue_error(now, self._breaker_limits))

    def _on_market(self, item: QuoteTick | TradeTick | Bar) -> None:
        if isinstance(item, QuoteTick):
            self.venue.on_quote(item)
            self.portfolio.mark(item.symbol, item.mid)
            # Live only: marks are not journaled, so the peak travels in checkpoints.
            equity = self.portfolio.update_equity()
            self.risk.record_equity(item.ts_ns, equity)
            self._breaker_says(self.breaker.note_equity(item.ts_ns, equity, self._breaker_limits))
            self._watch_drawdown(item.ts_ns)
            if self.breaker.cooled_down(item.ts_ns):
                self.breaker.reset()
                self._change_mode_soon(TradingMode.ACTIVE, "circuit breaker cooled down")
        if self.bus.has_subscribers:
            self.bus.publish(item)

    # -- views -------------------------------------------------------------------------

    def journal_directory(self) -> Path:
        return Path(self.config.journal.directory)


class _BatchFollowUp:
    """The events to publish and the orders to send once one journal batch is durable."""

    __slots__ = ("durable", "published", "submitted")

    def __init__(self, durable: BatchDurability) -> None:
        self.durable = durable
        self.published: list[Journaled] = []
        self.submitted: list[Order] = []


_MODE_DENIALS = frozenset({"trading_disabled", "trading_halted"})
# How a denial reason is answered; every other reason is `risk_rejected`.
_DENIAL_CODES = {
    "trading_disabled": "trading_disabled",
    "trading_halted": "trading_disabled",
    "rate_limited": "rate_limit_exceeded",
}


def _intent(event: OrderSubmitted) -> OrderIntent:
    price = event.price if event.price is not None else event.reference_price
    assert price is not None  # a market order always has its reference price
    return OrderIntent(
        symbol=event.symbol,
        side=event.side,
        qty=event.qty,
        price=price,
        is_limit=event.order_type is OrderType.LIMIT,
    )


def _refused(error: JournalUnavailable) -> CommandRejected:
    return CommandRejected(error.message, code="journal_unavailable")


async def _durable(durable: BatchDurability) -> None:
    """Wait for an entry's batch; a failed write refuses the command that waits on it."""
    try:
        await durable
    except JournalUnavailable as exc:
        raise _refused(exc) from None


def _ack(order: Order, *, created: bool) -> OrderAck:
    return OrderAck(
        client_order_id=order.client_order_id,
        status=order.status,
        venue_order_id=order.venue_order_id,
        created=created,
    )


def _succeeded(future: asyncio.Future[None]) -> bool:
    return not future.cancelled() and future.exception() is None
