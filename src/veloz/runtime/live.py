"""The live runtime: the trading core on an asyncio loop, with the journal as its event
sink, a venue and a market data source.

    start:  recover the journal -> replay from the newest checkpoint -> restore/seed the
            venue -> reconcile live orders with it by client order id -> ready
    order:  the core decides -> journal (group commit) -> durable -> ack, and the venue
            request leaves (`durable.py`: intent before send)
    report: venue report -> the core -> journal -> published once durable
    stop:   refuse new orders, drain in-flight work, checkpoint, close

Business rules live in the core (`veloz.engine.core`); this module only wires, waits and
keeps the lifecycle.
"""

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from veloz.binance.errors import BinanceError, error_code
from veloz.clock import Clock, LiveClock
from veloz.codec import PayloadError, decode_event, decode_msgpack
from veloz.engine.activity import ActivityLog
from veloz.engine.bus import BusMessage, EventBus, Journaled
from veloz.engine.checkpoint import CHECKPOINT_VERSION, EngineCheckpoint
from veloz.engine.core import IN_FLIGHT, CoreConfig, TradingCore
from veloz.engine.stats import EngineStats
from veloz.execution.engine import ExecutionEngine
from veloz.execution.reconcile import (
    Reconciliation,
    balance_differences,
    find_orphans,
    reconcile,
)
from veloz.execution.venues.sim import SimVenueConfig
from veloz.journal.framing import EntryType, Record
from veloz.journal.recovery import recover
from veloz.journal.segments import JournalLocked
from veloz.journal.stats import JournalStats
from veloz.journal.writer import JournalConfig, JournalUnavailable, JournalWriter
from veloz.market.engine import MarketData, MarketDataConfig, MarketDataEngine
from veloz.market.replay import ReplayBarSource
from veloz.market.sim import SimMarketConfig
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import EnginePhase, ModeAction, OrderStatus, TradingMode
from veloz.model.errors import CommandRejected, ErrorCode, InvalidTransition
from veloz.model.events import OrderEvent, OrderReport, OrderSubmitted
from veloz.model.market import Bar, PriceBar, QuoteTick, TradeTick
from veloz.model.numbers import Precisions, show_with
from veloz.model.orders import Order
from veloz.observability.loop import LoopLagMonitor
from veloz.observability.memory import DEFAULT_BYTES as DEFAULT_POOL_BYTES
from veloz.observability.memory import MemoryPool
from veloz.oms.manager import OrderManager
from veloz.portfolio.portfolio import Portfolio
from veloz.portfolio.positions import Position
from veloz.risk.breaker import CircuitBreaker
from veloz.risk.checks import Denial
from veloz.risk.engine import RiskConfig, RiskEngine
from veloz.risk.limits import LoadedLimits
from veloz.risk.watcher import watch_file
from veloz.runtime.binance import BinanceConfig, BinanceLink
from veloz.runtime.durable import DurableGate, durable, refused
from veloz.runtime.factories import build_market, build_venue
from veloz.strategy.host import RunningStrategy, StrategyHost, StrategySpec

if TYPE_CHECKING:
    from veloz.persistence.redis_events import RedisPublisher, RemotePublisher

logger = logging.getLogger(__name__)

# Requests on their way to a remote venue at once (see ExecutionEngine).
REMOTE_IN_FLIGHT = 32


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    journal: JournalConfig = JournalConfig()
    market_source: str = "sim"
    execution_mode: str = "sim_engine"
    market: SimMarketConfig = SimMarketConfig()
    market_data: MarketDataConfig = MarketDataConfig()
    venue: SimVenueConfig = SimVenueConfig()
    # Final orders kept in memory and in every checkpoint (see CoreConfig).
    retained_final_orders: int = 5_000
    drain_timeout_s: float = 5.0
    risk: RiskConfig = RiskConfig()
    # Time orders and risk decisions for the latency metrics (VELOZ_METRICS).
    record_latency: bool = True
    # Recent order events and fills kept for /api/orders, /api/trades and stream resume.
    activity_events: int = 10_000
    activity_fills: int = 1_000
    # VELOZ_MEMORY_POOL_SIZE: the bytes the replay ring, the retained final orders and the
    # streams' queues may hold together (`veloz.observability.memory`).
    memory_pool_bytes: int = DEFAULT_POOL_BYTES
    # Run the market source's own timer; tests and benchmarks may feed quotes themselves.
    run_market: bool = True
    # Directories `module:Class` strategies are imported from (VELOZ_STRATEGY_PATH).
    strategy_path: tuple[str, ...] = ()
    # The bars the `replay` market source plays (paper trading over history).
    replay_file: str | None = None
    # Binance's URLs and keys, when the market source or the venue is Binance's.
    binance: BinanceConfig | None = None
    # A strategy callback running longer than this is interrupted and its strategy stopped.
    strategy_callback_deadline_s: float | None = 1.0
    # Cancel orders found open at the venue that the journal does not know (else report
    # them: VELOZ_AUTO_CANCEL_ORPHANED).
    auto_cancel_orphaned: bool = False

    def core(self) -> CoreConfig:
        return CoreConfig(
            retained_final_orders=self.retained_final_orders,
            risk=self.risk,
            record_latency=self.record_latency,
        )


class StartRefused(Exception):
    """The engine cannot start: a venue refused us or is out of reach. `permanent`: the
    configuration must change first (bad keys, an unknown symbol), so restarting as is
    would only fail again."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class OrderAck(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    ok: bool = True
    client_order_id: str
    status: OrderStatus
    venue_order_id: str | None = None
    created: bool = True
    # The order itself (it goes on changing), for an answer built after the engine may
    # have let go of it: `cancel_all` answers once its last cancel is durable, and an
    # order cancelled early may be final and retired from memory by then.
    order: Order


class LiveEngine:
    def __init__(self, config: EngineConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or LiveClock()
        self.journal_stats = JournalStats()
        self.bus = EventBus()
        self.memory = MemoryPool(config.memory_pool_bytes)
        self.activity = ActivityLog(
            config.activity_events, config.activity_fills, self.memory.share("replay")
        )
        self.memory.watch("replay", lambda: self.activity.bytes_used)
        self.bus.subscribe(self.activity.on_bus)
        self.binance = (
            BinanceLink(config.binance, config.market.symbols) if config.binance else None
        )
        market = build_market(
            config.market_source,
            config.market,
            self.clock,
            config.replay_file,
            binance=self.binance,
        )
        self.market_source = market.source
        self.market_source_name = market.name
        self.instruments = market.instruments
        self.market = MarketDataEngine(config.market_data)
        self.venue = build_venue(
            config.execution_mode,
            config.venue,
            self.clock,
            self.instruments,
            self.market,
            binance=self.binance,
        )
        # A remote venue answers each request in a round trip: keep many on their way (its
        # rate limiter decides how fast they leave). The simulated one takes each at once.
        remote = self.binance is not None and self.binance.trading is not None
        self.execution = ExecutionEngine(
            self.venue, self._on_send_error, max_in_flight=REMOTE_IN_FLIGHT if remote else 1
        )
        self.gate = DurableGate(
            self.bus, self.execution, self.journal_stats, config.journal.checkpoint_interval
        )
        self.gate.record_latency = config.record_latency
        self.core = TradingCore(
            msgspec.structs.replace(
                config.core(), retained_final_bytes=self.memory.share("orders")
            ),
            self.clock,
            self.instruments,
            self.gate,
            self.gate,
            on_alert=self.bus.publish,
        )
        self.gate.bind(self.core)
        self.memory.watch("orders", lambda: self.core.oms.final_bytes_used)
        # What this process writes (HTTP, streams, stdio) shows this engine's decimals at
        # its instruments' and assets' precisions.
        show_with(Precisions(self.instruments, self.core.portfolio.valuation_asset))
        self.strategies = StrategyHost(
            _StrategyOrders(self),
            self.instruments,
            self.clock.time_ns,
            search_path=config.strategy_path,
            callback_deadline_s=config.strategy_callback_deadline_s,
        )
        self.strategies.on_state_change = self._record_strategy
        self.bus.subscribe(self._to_strategies)
        if isinstance(self.market_source, ReplayBarSource):
            self.market_source.pace = self.settled
        self._stop_watching = asyncio.Event()
        self._limits_watcher: asyncio.Task[None] | None = None
        self.phase = EnginePhase.CREATED
        self.journal_problems: list[str] = []
        # Who else reads the journal files (the history projector, the Redis publisher):
        # each says the oldest sequence it still needs, and retention keeps its segment.
        self.journal_readers: list[Callable[[], int]] = []
        # The Redis Streams publisher, when VELOZ_REDIS_* configure one (`redis_events`).
        self.redis: RedisPublisher | RemotePublisher | None = None
        self.started_ns = self.clock.time_ns()
        self.loop_lag = LoopLagMonitor()
        self._checkpoint: EngineCheckpoint | None = None
        self.reconciliation = Reconciliation()

    # -- what the core holds, for the views --------------------------------------------

    @property
    def oms(self) -> OrderManager:
        return self.core.oms

    @property
    def exchange(self) -> BinanceLink | None:
        """The real exchange's connection (rate limits, REST figures), if there is one."""
        return self.binance

    @property
    def portfolio(self) -> Portfolio:
        return self.core.portfolio

    @property
    def risk(self) -> RiskEngine:
        return self.core.risk

    @property
    def breaker(self) -> CircuitBreaker:
        return self.core.monitor.breaker

    @property
    def stats(self) -> EngineStats:
        return self.core.stats

    @property
    def mode(self) -> TradingMode:
        return self.core.mode

    @property
    def mode_reason(self) -> str:
        return self.core.mode_reason

    @property
    def journal(self) -> JournalWriter | None:
        return self.gate.journal

    @property
    def journal_error(self) -> str | None:
        return self.gate.journal_error

    @property
    def ready(self) -> bool:
        return self.phase == EnginePhase.READY

    def journal_directory(self) -> Path:
        return Path(self.config.journal.directory)

    def risk_decision(self, event: OrderSubmitted) -> Denial | None:
        return self.core.risk_decision(event)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self.phase = EnginePhase.REPLAYING
        self.loop_lag.start()
        await self._load_instruments()
        self._open_journal()
        if self.core.balances_seeded:
            self.venue.restore(self._orders_at_venue(), self.portfolio.balances())
        self.venue.set_report_handler(self._on_report)
        try:
            await self.venue.connect()
        except (BinanceError, ConnectionError, OSError) as exc:
            raise StartRefused(
                f"cannot connect to the venue {self.venue.name}: {exc}",
                permanent=isinstance(exc, BinanceError)
                and error_code(exc) is ErrorCode.UNAUTHORIZED,
            ) from None
        if self.binance is not None:
            await self.binance.announce(self.venue.name)
        self.execution.start()
        if self.gate.accepting and not self.core.balances_seeded:
            self.core.seed_balances(await self.venue.balances())
            await self._last_durable()
        if self.gate.accepting and self.journal_problems:
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
        self.phase = EnginePhase.RECONCILING
        await self.reconcile_with_venue()
        journal = self.gate.journal
        if journal is not None and journal.entries_since_checkpoint:
            await self.write_checkpoint()
        # What recovery built lives as long as the engine: keep the collector from
        # re-scanning it on every full collection.
        gc.freeze()
        self.phase = EnginePhase.READY
        self.core.acting = True
        self._resume_strategies()
        if self.binance is not None:
            self.binance.watch_reconnects(self._reconcile_after_reconnect)
        logger.info(
            "engine ready: %d orders (%d open), mode %s",
            len(self.oms),
            self.oms.open_count(),
            self.mode,
        )

    async def stop(self) -> None:
        """Refuse new orders, let in-flight work finish (bounded), checkpoint, close."""
        if self.phase in (EnginePhase.STOPPING, EnginePhase.STOPPED):
            return
        self.phase = EnginePhase.STOPPING
        self.core.acting = False
        self._stop_watching.set()
        if self._limits_watcher is not None:
            await self._limits_watcher
        await self.market.stop()
        deadline = time.monotonic() + self.config.drain_timeout_s
        pending = list(self.gate.pending_submissions.values())
        if pending:
            await asyncio.wait(pending, timeout=self.config.drain_timeout_s)
        # In-flight orders settle through venue reports; a bounded poll is all we need.
        while self.oms.with_status(IN_FLIGHT) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await self.execution.stop()
        await self.venue.close()
        if self.binance is not None:
            await self.binance.close()
        journal = self.gate.journal
        if journal is not None:
            if journal.failure is None:
                await self.write_checkpoint()
            await journal.close()
        await self.loop_lag.stop()
        self.phase = EnginePhase.STOPPED

    async def checkpoint_offline(self) -> int:
        """Replay the journal and write a checkpoint without starting trading."""
        await self._load_instruments()
        self._open_journal()
        try:
            return await self.write_checkpoint()
        finally:
            if self.gate.journal is not None:
                await self.gate.journal.close()
            if self.binance is not None:
                await self.binance.close()

    async def _load_instruments(self) -> None:
        """A venue that lists its symbols' filters (Binance's exchangeInfo) is asked for
        them before the journal is replayed: replay and every order are checked against
        them. Refreshed while the engine runs."""
        if self.binance is None:
            return
        try:
            await self.binance.load_instruments()
        except (BinanceError, ValueError) as exc:
            raise StartRefused(
                f"cannot load the symbols' filters from Binance: {exc}",
                permanent=isinstance(exc, ValueError),
            ) from None
        self.binance.start_refreshing()

    def _open_journal(self) -> None:
        started = time.perf_counter()
        try:
            recovery, writer = recover(
                self.config.journal, self.journal_stats, self._accept_checkpoint, self.clock.time_ns
            )
        except JournalLocked:
            raise
        except OSError as exc:
            self.gate.journal_error = (
                f"cannot open the journal in {self.config.journal.directory}: {exc.strerror or exc}"
            )
            self.core.mode, self.core.mode_reason = TradingMode.READONLY, self.gate.journal_error
            logger.error("%s; refusing orders", self.gate.journal_error)
            return
        if self._checkpoint is not None:
            self.core.restore(self._checkpoint)
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
        self.gate.journal = writer
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

    def _replay(self, record: Record) -> None:
        if record.entry_type in (EntryType.Checkpoint, EntryType.Rotation):
            return
        try:
            event = decode_event(record.entry_type, record.payload)
            order = self.core.apply(event)
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
        journal = self.gate.journal
        assert journal is not None
        journal.rotate_now(self.clock.time_ns())
        reason = f"journal damaged ({len(self.journal_problems)} problems): check the WAL"
        await self.set_mode(TradingMode.READONLY, reason, "engine")
        await self.write_checkpoint()

    def _orders_at_venue(self) -> list[Order]:
        return [o for o in self.oms.open_orders() if o.venue_order_id is not None]

    async def reconcile_with_venue(self, *, correct_balances: bool = True) -> None:
        """Bring the journal's live orders up to date with the venue, then look for what
        the venue holds that we do not know. At start and after every venue reconnect;
        balances are corrected to the venue's only when nothing can be in flight (at
        start): while trading, a fill on its way would be counted twice."""
        live = self.oms.open_orders()
        result = await reconcile(self.venue, live, self.clock.time_ns)
        for report in result.reports:
            self._on_report(report)
        for order in result.cancels_to_resend:
            self.execution.send_cancel(order.client_order_id, order.symbol)
        orphans = await find_orphans(
            self.venue, {order.client_order_id for order in self.oms.all_orders()}
        )
        cancelled = 0
        for orphan in orphans:
            logger.warning(
                "order %s (%s %s %s at %s) is open at %s but unknown to the journal%s",
                orphan.client_order_id,
                orphan.symbol,
                orphan.side,
                orphan.order_qty,
                orphan.price,
                self.venue.name,
                ": cancelling it" if self.config.auto_cancel_orphaned else "",
            )
            if self.config.auto_cancel_orphaned:
                try:
                    await self.venue.cancel(orphan.client_order_id, orphan.symbol)
                    cancelled += 1
                except Exception as exc:
                    logger.error("cancelling orphan %s failed: %s", orphan.client_order_id, exc)
        mismatches = balance_differences(
            {b.asset: b.total for b in self.portfolio.balances()}, await self.venue.balances()
        )
        for asset, (ours, theirs) in mismatches.items():
            logger.warning(
                "balance of %s: %s in the journal, %s at %s%s",
                asset,
                ours,
                theirs,
                self.venue.name,
                "; taking the venue's" if correct_balances else "",
            )
        if mismatches and correct_balances and self.gate.accepting:
            # The venue holds the money: what it says is the balance (a deposit, a fee
            # paid in another asset), journaled as a correction.
            self.core.seed_balances({asset: theirs for asset, (_, theirs) in mismatches.items()})
        self.reconciliation.record(self.clock.time_ns(), result, orphans, cancelled, mismatches)
        logger.info(
            "reconciled %d live orders with %s: %d missed reports, %d cancels re-sent, "
            "%d orphans (%d cancelled), %d balances differed",
            result.checked,
            self.venue.name,
            len(result.reports),
            len(result.cancels_to_resend),
            len(orphans),
            cancelled,
            len(mismatches),
        )

    async def _reconcile_after_reconnect(self) -> None:
        await self.reconcile_with_venue(correct_balances=False)

    # -- checkpoints ---------------------------------------------------------------------

    async def write_checkpoint(self) -> int:
        """Write a checkpoint now; returns its sequence once durable."""
        journal = self._check_journal()
        seq = journal.next_seq
        await self.gate.append_checkpoint()
        return seq

    # -- commands ----------------------------------------------------------------------

    async def submit(self, command: SubmitOrder) -> OrderAck:
        started = time.perf_counter()
        self._check_taking_commands()
        order, created = self.core.submit(command)
        if not created:
            pending = self.gate.pending_submissions.get(order.client_order_id)
            if pending is not None:
                await durable(pending)
            return _ack(order, created=False)
        # The batch awaited here, not through `durable()`: one coroutine less to create and
        # to resume, per order.
        batch = self.gate.last_durable
        assert batch is not None  # the submission was just appended to it
        try:
            await batch
        except JournalUnavailable as exc:
            raise refused(exc) from None
        if self.config.record_latency:
            self.stats.order_latency.observe(time.perf_counter() - started)
        return _ack(order, created=True)

    async def cancel(self, command: CancelOrder) -> OrderAck:
        self._check_taking_commands()
        order, requested = self.core.cancel(command)
        if requested:
            await self._last_durable()
        return _ack(order, created=False)

    async def cancel_all(self, symbol: str | None = None) -> list[OrderAck]:
        """Cancel every open order (of `symbol`), concurrently so the cancel requests share
        journal syncs. Orders that finish meanwhile are skipped, not reported as errors."""
        self._check_taking_commands()
        results = await asyncio.gather(
            *(
                self.cancel(CancelOrder(client_order_id=coid))
                for coid in self.core.open_order_ids(symbol)
            ),
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
        """An operator's mode command; returns the mode after it and whether it changed."""
        try:
            parsed = ModeAction(action)
        except ValueError:
            allowed = ", ".join(ModeAction)
            raise CommandRejected(f"mode action must be one of {allowed}") from None
        self._check_journal()
        if self.core.admin_mode(parsed, actor):
            await self._last_durable()
            return self.mode, True
        return self.mode, False

    async def set_mode(self, mode: TradingMode, reason: str, actor: str) -> None:
        self._check_journal()
        self.core.set_mode(mode, reason, actor)
        await self._last_durable()

    async def reset_breaker(self, actor: str) -> TradingMode:
        """An admin closes the breaker; a HALTED engine trades again."""
        if self.mode is TradingMode.HALTED:
            self._check_journal()
        if self.core.reset_breaker(actor):
            await self._last_durable()
        return self.mode

    def reload_risk_limits(self, actor: str) -> LoadedLimits:
        return self.core.reload_risk_limits(actor)

    def _reload_on_change(self) -> None:
        # The refusal of an invalid file is already logged; the old limits stay.
        with contextlib.suppress(CommandRejected):
            self.core.reload_risk_limits("file-watcher")

    def _check_taking_commands(self) -> None:
        if self.phase in (EnginePhase.STOPPING, EnginePhase.STOPPED):
            raise CommandRejected("the engine is shutting down", code=ErrorCode.SHUTTING_DOWN)
        if self.phase != EnginePhase.READY:  # replay and reconciliation come first
            raise CommandRejected(
                f"the engine is still starting ({self.phase})", code=ErrorCode.NOT_READY
            )
        self._check_journal()

    def _check_journal(self) -> JournalWriter:
        journal = self.gate.journal
        if journal is None or journal.failure is not None:
            raise CommandRejected(
                f"orders are refused: {self.gate.failure}", code=ErrorCode.JOURNAL_UNAVAILABLE
            )
        return journal

    async def _last_durable(self) -> None:
        if self.gate.last_durable is not None:
            await durable(self.gate.last_durable)

    # -- venue and market input --------------------------------------------------------

    def _on_report(self, report: OrderReport) -> None:
        sent_at = self.gate.awaiting_venue.pop(report.client_order_id, None)
        if sent_at is not None:  # the venue's first answer to this order
            self.stats.venue_latency.observe(time.perf_counter() - sent_at)
        self.core.on_report(report)

    def _on_send_error(self, client_order_id: str, error: Exception) -> None:
        self.core.on_send_error(client_order_id)

    def _on_market(self, item: MarketData) -> None:
        self.strategies.on_clock(self.clock.time_ns())
        if isinstance(item, QuoteTick):
            self.core.on_quote(item)
            self.strategies.on_quote(item)
        elif isinstance(item, TradeTick):
            self.strategies.on_trade(item)
        elif item.closed:
            self.strategies.on_bar(_price_bar(item))
        if self.bus.has_subscribers:
            self.bus.publish(item)

    async def settled(self) -> None:
        """Wait until what the market last caused has run its course: orders journaled
        and handed to the venue, the venue's answers back, journaled and published (and
        whatever the strategies did about them, in turn)."""
        quiet = 0
        while quiet < 2:
            await asyncio.sleep(0)
            busy = False
            last = self.gate.last_durable
            if last is not None and not last.done():
                await asyncio.wait([last])
                busy = True
            if self.gate.pending_submissions or self.oms.with_status(IN_FLIGHT):
                busy = True
            await self.execution.drain()
            quiet = 0 if busy else quiet + 1

    # -- strategies ----------------------------------------------------------------------

    async def add_strategy(self, spec: StrategySpec, actor: str, start: bool) -> None:
        """Add (and start) a strategy once the journal holds it; CommandRejected, with
        nothing added, for a wrong name, symbol, id or parameter."""
        self._check_taking_commands()
        self.strategies.add(spec, actor)
        if start:
            self.strategies.start(spec.strategy_id, actor)
        await self._last_durable()

    async def change_strategy(self, strategy_id: str, action: str, actor: str) -> None:
        """`start`, `pause`, `resume`, `stop` or `remove`, recorded before it is answered,
        in the phase that takes commands."""
        self._check_taking_commands()
        host = self.strategies
        match action:
            case "start":
                host.start(strategy_id, actor)
            case "pause":
                host.pause(strategy_id, actor)
            case "resume":
                host.resume(strategy_id, actor)
            case "stop":
                host.stop(strategy_id, actor=actor)
            case "remove":
                host.remove(strategy_id, actor)
            case _:
                raise CommandRejected(f"unknown strategy action {action!r}")
        await self._last_durable()

    def _record_strategy(self, running: RunningStrategy) -> None:
        try:
            self.core.record_strategy(running.change(self.clock.time_ns()))
        except CommandRejected as exc:
            # A strategy stopped by its own error while the journal is down: it stays
            # stopped here; a restart finds it as last recorded.
            logger.error("strategy %s change not journaled: %s", running.strategy_id, exc)

    def _resume_strategies(self) -> None:
        """Run again what the journal says was added, running or paused (after a restart
        or a kill -9), each with its own position and open orders, from the core."""
        for change in list(self.core.strategies.values()):
            spec = StrategySpec(
                strategy_id=change.strategy_id,
                name=change.name,
                symbol=change.symbol,
                params=change.params,
            )
            self.strategies.restore(spec, change.state, change.reason)
        if self.core.strategies:
            logger.info("strategies resumed: %s", ", ".join(sorted(self.core.strategies)))

    def _to_strategies(self, message: BusMessage) -> None:
        """Durable order events reach the strategy that placed the order."""
        if isinstance(message, Journaled) and message.order is not None:
            event = message.event
            if isinstance(event, OrderEvent):
                self.strategies.on_order_event(event, message.order)


class _StrategyOrders:
    """How strategies place orders live: straight into the core's order path (risk, OMS,
    journal, then the venue once durable), refused while the engine does not take
    commands. A strategy does not wait for the acknowledgement."""

    def __init__(self, engine: LiveEngine) -> None:
        self._engine = engine

    def submit(self, command: SubmitOrder) -> Order:
        self._engine._check_taking_commands()
        order, _ = self._engine.core.submit(command)
        return order

    def cancel(self, command: CancelOrder) -> None:
        self._engine._check_journal()
        self._engine.core.cancel(command)

    def order(self, client_order_id: str) -> Order | None:
        return self._engine.oms.get(client_order_id)

    def open_orders(self, strategy_id: str) -> list[Order]:
        return self._engine.core.strategy_open_orders(strategy_id)

    def strategy_position(self, strategy_id: str) -> Position | None:
        return self._engine.core.strategy_position(strategy_id)


def _price_bar(bar: Bar) -> PriceBar:
    return PriceBar(
        symbol=bar.symbol,
        ts_ns=bar.ts_ns,
        open=float(bar.open),
        high=float(bar.high),
        low=float(bar.low),
        close=float(bar.close),
        volume=float(bar.volume),
    )


def _ack(order: Order, *, created: bool) -> OrderAck:
    return OrderAck(
        client_order_id=order.client_order_id,
        status=order.status,
        venue_order_id=order.venue_order_id,
        created=created,
        order=order,
    )
