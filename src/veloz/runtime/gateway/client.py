"""GatewayClient: the `EngineClient` facade in a gateway replica, with no engine in the
process.

- **Events** (SSE, `/ws/orders`, resume by `Last-Event-ID`): from the engine's Redis
  stream (`follower.py`), rebuilt into the engine's bus messages, published on the
  gateway's own bus and kept in the same replay ring the engine keeps (`ActivityLog`),
  so the stream routes run unchanged and ids are the journal's everywhere.
- **Market data and risk alerts**: from the engine's feed (`/api/internal/feed`), one
  connection per gateway.
- **Orders**: a state view of the engine's open orders, from a snapshot at start, then
  every order the stream carries (each entry holds the order as it stood after it), and
  the order each command through this gateway was answered with (so a client reads its
  own write here at once).
- **Everything else read** (positions, account, risk, strategies, history, market
  state): the engine's answer, kept until the stream shows an event that may change it
  or a short time passes, and fetched once however many clients ask at the same moment.
  The engine serves each such read once per gateway and change, not once per client.
- **Commands**: forwarded to the engine (`link.py` says why over HTTP), answered with
  the engine's answer or error, verbatim.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from veloz import __version__
from veloz.api.orders import HISTORY_HEADER
from veloz.codec import encode_json
from veloz.engine.activity import ActivityLog
from veloz.engine.bus import BusMessage, EventBus, Journaled
from veloz.engine.views.account import Account, AccountStatus, EquityHistory, Ping, Positions
from veloz.engine.views.admin import (
    CheckpointAnswer,
    LogLevelAnswer,
    ModeAnswer,
    ReloadAnswer,
)
from veloz.engine.views.audit import AuditLog
from veloz.engine.views.execution import Orphans
from veloz.engine.views.feed import FeedError, FeedReader
from veloz.engine.views.health import ComponentHealth, Health, Probe, Readiness
from veloz.engine.views.instruments import Instruments
from veloz.engine.views.market import Bars, Book, MarketState
from veloz.engine.views.orders import (
    OrderEvents,
    OrderEventView,
    OrdersState,
    OrderView,
    Placement,
    Trades,
    WithHistory,
)
from veloz.engine.views.risk import LimitsInForce, RiskStatus
from veloz.engine.views.strategies import Strategies, StrategyCatalog, StrategyView
from veloz.engine.views.streams import Backlog
from veloz.model.commands import AddStrategy, CancelAllOrders, CancelOrder, SubmitOrder
from veloz.model.enums import OPEN_STATUSES, EnginePhase, ModeAction, TradingMode
from veloz.model.errors import CommandRejected, ErrorCode
from veloz.model.events import OrderEvent
from veloz.model.queries import AuditQuery, OrderQuery, TradeQuery
from veloz.observability.logs import set_level
from veloz.persistence.redis_events import RedisConfig
from veloz.runtime.gateway.follower import StreamFollower
from veloz.runtime.gateway.link import EngineLink

logger = logging.getLogger(__name__)

_V = TypeVar("_V")
# How long a read kept from the engine stays good when no event says it changed: market
# state moves without events (prices), so it is short; the rest follows prices too
# (unrealised PnL, equity), less sharply.
MARKET_TTL_S = 0.25
STATE_TTL_S = 1.0
STATIC_TTL_S = 60.0
# Final orders kept beside the open ones, for `order_state` of a recent order.
RECENT_FINAL_ORDERS = 10_000


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    # /health/ready turns 503 beyond this many stream entries behind.
    max_lag_entries: int = 1_000
    feed_retry_s: float = 1.0


@dataclass(slots=True)
class _Kept:
    value: Any
    generation: int
    expires: float


class _Reads:
    """Engine answers kept per (path, query) until an event or a deadline: one fetch in
    flight per key, whoever asks meanwhile waits for it."""

    def __init__(self) -> None:
        self.generation = 0  # moved by every journaled event
        self._kept: dict[tuple[str, str], _Kept] = {}
        self._flying: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self.hits = 0
        self.fetches = 0

    def changed(self) -> None:
        self.generation += 1

    async def get(
        self,
        key: tuple[str, str],
        ttl_s: float,
        fetch: Callable[[], Awaitable[_V]],
        *,
        static: bool,
    ) -> _V:
        now = time.monotonic()
        kept = self._kept.get(key)
        if (
            kept is not None
            and now < kept.expires
            and (static or kept.generation == self.generation)
        ):
            self.hits += 1
            return kept.value  # type: ignore[no-any-return]
        flying = self._flying.get(key)
        if flying is not None:
            return await asyncio.shield(flying)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._flying[key] = future
        generation = self.generation
        try:
            self.fetches += 1
            value = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody must
            raise
        else:
            future.set_result(value)
            self._kept[key] = _Kept(value, generation, time.monotonic() + ttl_s)
            return value
        finally:
            del self._flying[key]


class GatewayClient:
    def __init__(self, config: GatewayConfig, link: EngineLink, redis: RedisConfig) -> None:
        self.config = config
        self.link = link
        self.follower = StreamFollower(redis, self.on_journaled, self.on_gap)
        self.bus = EventBus()
        self.activity = ActivityLog()
        self.reads = _Reads()
        self._open: dict[str, OrderView] = {}
        self._final: OrderedDict[str, OrderView] = OrderedDict()
        self._snapshot_taken = False
        self.snapshot_wanted = asyncio.Event()  # a gap in the stream: take it again
        self.snapshots = 0
        self._started = time.monotonic()
        self.feed_connected = False
        self.feed_messages = 0
        self._engine_health: Health | None = None

    # -- following the engine -----------------------------------------------------------

    def on_journaled(self, message: Journaled) -> None:
        """An entry of the stream: state first, then the streams."""
        self.reads.changed()
        if message.order is not None and isinstance(message.event, OrderEvent):
            self._keep(OrderView.of(message.order))
        self.activity.record(message)
        self.bus.publish(message)

    def on_gap(self, seq: int) -> None:
        """Events up to `seq` are not here: a resume from before must re-fetch, and the
        open orders are taken from the engine again (what the gap held is unknown)."""
        self.activity.starts_after(seq)
        if self._snapshot_taken:
            self.snapshot_wanted.set()

    def _keep(self, order: OrderView) -> None:
        cid = order.client_order_id
        if order.status in OPEN_STATUSES:
            self._open[cid] = order
            self._final.pop(cid, None)
            return
        self._open.pop(cid, None)
        self._final[cid] = order
        self._final.move_to_end(cid)
        while len(self._final) > RECENT_FINAL_ORDERS:
            self._final.popitem(last=False)

    def _keep_view(self, view: OrderView) -> None:
        """An order as a command through this gateway was answered: newer than what the
        stream has shown here so far, unless the stream already went past it."""
        held = self._open.get(view.client_order_id) or self._final.get(view.client_order_id)
        if held is not None and held.last_ts_ns > view.last_ts_ns:
            return
        self._keep(view)

    async def take_snapshot(self) -> None:
        """The engine's open orders, once the stream is followed: they replace the open
        orders held here, but for those the stream changed while the engine answered (the
        stream is then newer); what the stream shows after this replaces them order by
        order."""
        self.snapshot_wanted.clear()
        asked_ns = time.time_ns()
        body = await self.link.read("/api/orders_state", {"status": "open"})
        state = msgspec.json.decode(body, type=OrdersState)
        newer = {cid: o for cid, o in self._open.items() if o.last_ts_ns >= asked_ns}
        self._open = {}
        for view in state.orders:
            if view.client_order_id not in self._final:
                self._keep_view(view)
        for order in newer.values():
            self._keep_view(order)
        self._snapshot_taken = True
        self.snapshots += 1

    async def run_feed(self, stop: asyncio.Event) -> None:
        """The engine's market data and risk alerts onto this gateway's bus, reconnecting."""
        while not stop.is_set():
            reader = FeedReader()
            try:
                async with self.link.stream("/api/internal/feed") as chunks:
                    self.feed_connected = True
                    async for chunk in chunks:
                        for message in reader.push(chunk):
                            self.feed_messages += 1
                            self.bus.publish(message)
                        if stop.is_set():
                            return
            except (CommandRejected, FeedError) as exc:
                logger.warning("gateway: engine feed lost, reconnecting: %s", exc)
            finally:
                self.feed_connected = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.feed_retry_s)

    # -- reads through the engine ---------------------------------------------------------

    async def _engine(
        self,
        kind: type[_V],
        path: str,
        params: dict[str, Any] | None = None,
        *,
        ttl_s: float = STATE_TTL_S,
        static: bool = False,
        also_ok: frozenset[int] = frozenset(),
    ) -> _V:
        query = encode_json(sorted((params or {}).items())).decode()

        async def fetch() -> _V:
            body = await self.link.read(path, params, also_ok)
            return msgspec.json.decode(body, type=kind)

        return await self.reads.get((path, query), ttl_s, fetch, static=static)

    async def _with_history(
        self, kind: type[_V], path: str, params: dict[str, Any]
    ) -> WithHistory[_V]:
        """A history read, kept like the others, with the engine's word on whether its
        history store answered (its `X-VeloZ-History` header) passed on."""
        query = encode_json(sorted(params.items())).decode()

        async def fetch() -> WithHistory[_V]:
            body, headers = await self.link.read_with_headers(path, params)
            complete = headers.get(HISTORY_HEADER) != "unavailable"
            return WithHistory(msgspec.json.decode(body, type=kind), complete)

        return await self.reads.get((path, query), STATE_TTL_S, fetch, static=False)

    # -- orders --------------------------------------------------------------------------

    async def submit_order(self, command: SubmitOrder) -> Placement:
        if command.client_order_id is None:
            # Named here, so a command sent again after a lost connection is the same
            # order to the engine (answered idempotently), never a second one.
            command = msgspec.structs.replace(command, client_order_id=f"gw{uuid.uuid4().hex}")
        body = await self.link.command("POST", "/api/order", _body(command))
        view = msgspec.json.decode(body, type=OrderView)
        self._keep_view(view)
        return Placement(order=view, created=True)

    async def cancel_order(self, command: CancelOrder) -> OrderView:
        body = await self.link.command("POST", "/api/cancel", _body(command))
        view = msgspec.json.decode(body, type=OrderView)
        self._keep_view(view)
        return view

    async def cancel_all(self, command: CancelAllOrders) -> list[OrderView]:
        body = await self.link.command("POST", "/api/cancel_all", _body(command))
        ids = msgspec.json.decode(body, type=_CancelAll).client_order_ids
        return [await self.order(cid) for cid in ids]

    async def order(self, client_order_id: str) -> OrderView:
        held = self._open.get(client_order_id) or self._final.get(client_order_id)
        if held is not None:
            return held
        return await self._engine(
            OrderView, "/api/order_state", {"client_order_id": client_order_id}
        )

    async def order_history(self, query: OrderQuery) -> WithHistory[OrdersState]:
        if query.statuses is not None and query.statuses <= OPEN_STATUSES:
            found = [
                o
                for o in self._open.values()
                if o.status in query.statuses
                and (query.symbol is None or o.symbol == query.symbol)
                and (query.before_ts_ns is None or o.created_ts_ns < query.before_ts_ns)
            ]
            found.sort(key=lambda o: (o.created_ts_ns, o.client_order_id), reverse=True)
            views = found[: query.limit]
            return WithHistory(OrdersState(count=len(views), orders=views), True)
        params = {
            "status": ",".join(sorted(query.statuses)) if query.statuses is not None else None,
            "symbol": query.symbol,
            "limit": query.limit,
            "before": query.before_ts_ns,
        }
        return await self._with_history(OrdersState, "/api/orders_state", params)

    async def trade_history(self, query: TradeQuery) -> WithHistory[Trades]:
        params = {"symbol": query.symbol, "limit": query.limit, "before": query.before_ts_ns}
        if query.client_order_id is not None:
            # Not a route parameter: ask for enough and filter here.
            found = await self._with_history(Trades, "/api/trades", params | {"limit": 1_000})
            trades = [t for t in found.answer.trades if t.client_order_id == query.client_order_id]
            return WithHistory(Trades(count=len(trades), trades=trades), found.complete)
        return await self._with_history(Trades, "/api/trades", params)

    async def order_events(self, limit: int) -> OrderEvents:
        messages = self.activity.recent_events(limit)
        return OrderEvents(items=[OrderEventView.of(m) for m in messages])

    # -- account -------------------------------------------------------------------------

    async def account(self) -> Account:
        return await self._engine(Account, "/api/account")

    async def positions(self) -> Positions:
        return await self._engine(Positions, "/api/positions")

    async def equity_history(self) -> EquityHistory:
        return await self._engine(EquityHistory, "/api/equity")

    async def account_status(self) -> AccountStatus:
        raise CommandRejected(
            "account status is answered by the engine's stdio, not by a gateway",
            code=ErrorCode.NOT_FOUND,
        )

    async def ping_venue(self) -> Ping:
        return msgspec.json.decode(await self.link.read("/api/execution/ping"), type=Ping)

    async def orphans(self) -> Orphans:
        return await self._engine(Orphans, "/api/execution/orphans")

    # -- market --------------------------------------------------------------------------

    async def symbols(self) -> list[str]:
        return [i.symbol for i in (await self.instruments()).instruments]

    async def instruments(self) -> Instruments:
        return await self._engine(Instruments, "/api/instruments", ttl_s=STATIC_TTL_S, static=True)

    async def market(self, symbol: str) -> MarketState:
        return await self._engine(
            MarketState, "/api/market", {"symbol": symbol.upper()}, ttl_s=MARKET_TTL_S, static=True
        )

    async def book(self, symbol: str, depth: int = 20) -> Book:
        path = f"/api/market/{symbol.upper()}/book"
        return await self._engine(Book, path, {"depth": depth}, ttl_s=MARKET_TTL_S, static=True)

    async def bars(self, symbol: str, interval: str, limit: int) -> Bars:
        path = f"/api/market/{symbol.upper()}/bars"
        params = {"interval": interval, "limit": limit}
        return await self._engine(Bars, path, params, ttl_s=MARKET_TTL_S, static=True)

    # -- risk ----------------------------------------------------------------------------

    async def risk_limits(self) -> LimitsInForce:
        return await self._engine(LimitsInForce, "/api/risk/limits")

    async def risk_status(self) -> RiskStatus:
        return await self._engine(RiskStatus, "/api/risk/status")

    # -- health --------------------------------------------------------------------------

    async def _engine_state(self) -> Health | None:
        with contextlib.suppress(CommandRejected):
            self._engine_health = await self._engine(Health, "/health", ttl_s=STATE_TTL_S)
        return self._engine_health

    async def health(self) -> Health:
        engine = await self._engine_state()
        return Health(
            ok=True,
            status="ok",
            version=__version__,
            uptime_s=round(time.monotonic() - self._started, 3),
            phase=engine.phase if engine is not None else EnginePhase.CREATED,
            mode=engine.mode if engine is not None else TradingMode.MAINTENANCE,
        )

    async def liveness(self) -> Probe:
        return Probe(ok=True, status="live")

    async def startup(self) -> Probe:
        if not self.follower.ready.is_set():
            return Probe(ok=False, status="starting", detail="reading the stream's backlog")
        if not self._snapshot_taken:
            return Probe(ok=False, status="starting", detail="no snapshot of the engine yet")
        return Probe(ok=True, status="started")

    async def readiness(self, symbol: str) -> Readiness:
        engine: Readiness | None = None
        try:
            engine = await self._engine(
                Readiness,
                "/health/ready",  # judged by the engine's own first symbol
                ttl_s=STATE_TTL_S,
                also_ok=frozenset({503}),  # not ready to trade: still an answer
            )
        except CommandRejected as exc:
            engine_part = ComponentHealth(ok=False, status="unreachable", detail=exc.message)
        else:
            # Ready to serve while the engine answers: its readiness to trade (phase, mode,
            # its components) is shown, not required, so that a load balancer keeps the
            # gateways while the engine is in MAINTENANCE and an admin can end it.
            engine_part = ComponentHealth(
                ok=True,
                status="ready" if engine.ok else "not_ready",
                detail=f"{self.link.base_url} (phase {engine.phase}, mode {engine.mode})",
            )
        stats = self.follower.stats
        lag_ok = stats.connected and stats.lag <= self.config.max_lag_entries
        stream_part = ComponentHealth(
            ok=lag_ok and self._snapshot_taken,
            status="following" if lag_ok else ("behind" if stats.connected else "unavailable"),
            detail=(
                f"{self.follower.config.name} {self.follower.config.stream}: at {stats.seq}, "
                f"{stats.lag} behind" + ("" if stats.connected else f"; {stats.last_error}")
            ),
        )
        components = dict(engine.components) if engine is not None else {}
        components["engine"] = engine_part
        components["stream"] = stream_part
        return Readiness(
            ok=engine_part.ok and stream_part.ok,
            phase=engine.phase if engine is not None else EnginePhase.CREATED,
            mode=engine.mode if engine is not None else TradingMode.MAINTENANCE,
            mode_reason=engine.mode_reason if engine is not None else "engine unreachable",
            components=components,
            trading=engine.trading if engine is not None else "",
            market_source=engine.market_source if engine is not None else "",
            execution_mode=engine.execution_mode if engine is not None else "",
            served_by="gateway",
        )

    # -- admin ---------------------------------------------------------------------------

    async def set_mode(self, action: ModeAction, actor: str) -> ModeAnswer:
        body = await self.link.command("POST", f"/api/admin/{action.value}")
        return msgspec.json.decode(body, type=ModeAnswer)

    async def reset_breaker(self, actor: str) -> ModeAnswer:
        body = await self.link.command("POST", "/api/admin/reset-breaker")
        return msgspec.json.decode(body, type=ModeAnswer)

    async def set_log_level(self, level: str) -> LogLevelAnswer:
        # The engine first: if it does not take the level, this gateway keeps its own.
        body = await self.link.command(
            "POST", "/api/admin/log-level", msgspec.json.encode({"level": level})
        )
        engine = msgspec.json.decode(body, type=LogLevelAnswer)
        set_level(level)
        return LogLevelAnswer(
            mode=engine.mode, level=engine.level, applied_to=[*engine.applied_to, "gateway"]
        )

    async def reload_risk_limits(self, actor: str) -> ReloadAnswer:
        body = await self.link.command("POST", "/api/admin/reload-config")
        return msgspec.json.decode(body, type=ReloadAnswer)

    async def checkpoint(self) -> CheckpointAnswer:
        body = await self.link.command("POST", "/api/admin/checkpoint")
        return msgspec.json.decode(body, type=CheckpointAnswer)

    async def audit_log(self, query: AuditQuery) -> AuditLog:
        params = {
            "actor": query.actor,
            "action": query.action,
            "since": query.since_ts_ns,
            "before": query.before_ts_ns,
            "limit": query.limit,
        }
        # Admin only: read as the caller (the gateway's own key is a viewer's).
        body = await self.link.read("/api/audit/logs", params, as_caller=True)
        return msgspec.json.decode(body, type=AuditLog)

    # -- strategies ----------------------------------------------------------------------

    async def strategies(self) -> Strategies:
        return await self._engine(Strategies, "/api/strategies")

    async def strategy(self, strategy_id: str) -> StrategyView:
        return await self._engine(StrategyView, f"/api/strategies/{strategy_id}")

    async def strategy_catalog(self) -> StrategyCatalog:
        return await self._engine(
            StrategyCatalog, "/api/strategies/catalog", ttl_s=STATIC_TTL_S, static=True
        )

    async def add_strategy(self, command: AddStrategy, actor: str) -> StrategyView:
        body = await self.link.command("POST", "/api/strategies", _body(command))
        return msgspec.json.decode(body, type=StrategyView)

    async def change_strategy(self, strategy_id: str, action: str, actor: str) -> StrategyView:
        if action == "remove":
            body = await self.link.command("DELETE", f"/api/strategies/{strategy_id}")
        else:
            body = await self.link.command("POST", f"/api/strategies/{strategy_id}/{action}")
        return msgspec.json.decode(body, type=StrategyView)

    # -- streams -------------------------------------------------------------------------

    def subscribe(self, handler: Callable[[BusMessage], None]) -> Callable[[], None]:
        return self.bus.subscribe(handler)

    def events_since(self, seq: int) -> Backlog:
        missed = self.activity.since(seq)
        if missed is None:
            return Backlog(messages=[], complete=False, last_seq=self.activity.last_seq)
        return Backlog(messages=missed, complete=True, last_seq=self.activity.last_seq)


class _CancelAll(msgspec.Struct):
    client_order_ids: list[str]


def _body(command: msgspec.Struct) -> bytes:
    """A command as the engine's route reads it: the Struct's own wire names, absent
    fields left out."""
    fields = msgspec.to_builtins(command, builtin_types=(Decimal,))
    return encode_json({k: v for k, v in fields.items() if v is not None})
