"""Stream fan-out: one engine bus subscription shared by every SSE and WebSocket client.

The hub renders each bus message once (an SSE frame, a WebSocket JSON text) and offers it
to the clients that want it through their bounded mailboxes. Offering never waits: a
client whose mailbox is full is detached and its stream ends (`slow_dropped` counts
them), so a slow client can block neither the publisher nor the other clients.

The frames queued for all clients together are bounded too, by `max_queued_bytes` (the
streams' share of VELOZ_MEMORY_POOL_SIZE): a client whose next frame would take the
total over it is detached like a slow one, and resumes from the replay ring.

Waking the clients is coalesced: the clients offered to are woken once, after the
callbacks of the current loop iteration, so what is published together (a journal batch)
leaves in one write per client, and a client that falls behind gets everything queued in
one write. With a thousand clients the writes, not the events, are what costs; a
`flush_interval_s` above zero also caps the wake-ups at one per interval, trading that
much latency for CPU (`bench/sse_fanout.py --flush-ms`); a mailbox that becomes half full
wakes its client at once regardless, so a burst does not fill it first. The hub also posts
keep-alive comments to SSE clients and closes every mailbox when the service shuts down.
What an event contains is `veloz.engine.views`' business; resuming reads `engine.activity`.
"""

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from veloz.codec import encode_json
from veloz.engine.bus import BusMessage, Journaled
from veloz.engine.client import EngineClient
from veloz.engine.views.streams import stream_events
from veloz.model.market import Bar, QuoteTick, TradeTick
from veloz.risk.monitor import RiskAlert

SSE_TYPES = frozenset(
    {
        "market",
        "order_update",
        "fill",
        "order_state",
        "account",
        "position",
        "risk",
        "strategy",
        "error",
        "reset",
    }
)
MARKET_CHANNELS = ("trade", "book_top", "kline")
# /ws/orders carries what happens to orders and to the strategies that place them.
ORDER_MESSAGE_TYPES = frozenset({"order_update", "fill", "strategy"})
DEFAULT_MAILBOX_SIZE = 1_000
DEFAULT_KEEPALIVE_S = 10.0
DEFAULT_FLUSH_INTERVAL_S = 0.0
# A gateway serves many clients: gathering 25 ms of events into one write per client cuts
# its writes (a socket send each) about fivefold at 200 events/s, for 12 ms more lag on
# average (bench/gateway_fanout.py).
GATEWAY_FLUSH_INTERVAL_S = 0.025
KEEPALIVE_FRAME = b": keep-alive\n\n"

T = TypeVar("T")
Frame = TypeVar("Frame", bound=Sized)  # what a mailbox queues: bytes (SSE) or str (WS)
MarketKey = tuple[str, str]  # (symbol, channel)


class Closed(StrEnum):
    """Why a mailbox stopped taking items."""

    CLIENT = "client"  # the client went away (or its handler ended)
    SLOW = "slow"  # the mailbox was full: the client could not keep up
    SHUTDOWN = "shutdown"  # the service is stopping


class QueuedBytes:
    """What every mailbox of a hub holds together, in bytes, and how much it may."""

    __slots__ = ("bytes", "limit")

    def __init__(self, limit: int | None = None) -> None:
        self.bytes = 0
        self.limit = limit


class Mailbox(Generic[Frame]):
    """One client's bounded queue (by count, and by the bytes all the hub's mailboxes
    hold together). The hub offers without waiting and wakes the client when it chooses;
    the client takes what has accumulated in one batch."""

    __slots__ = ("_bytes", "_half", "_items", "_limit", "_queued", "_waiter", "closed")

    def __init__(self, limit: int, queued: QueuedBytes | None = None) -> None:
        if limit < 1:
            raise ValueError("a mailbox holds at least one item")
        self._items: list[Frame] = []
        self._limit = limit
        self._half = max(1, limit // 2)
        self._queued = queued or QueuedBytes()
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self.closed: Closed | None = None

    def offer(self, item: Frame) -> bool:
        """Queue `item`; False only when the mailbox is full or the hub's mailboxes hold
        all the bytes they may. A closed mailbox ignores it. The taker is woken when the
        mailbox becomes half full, whenever the hub would wake it: a burst (a gateway
        catching up on its stream) must not fill it before the hub's next flush."""
        if self.closed is not None:
            return True
        if len(self._items) >= self._limit:
            return False
        size, queued = len(item), self._queued
        if queued.limit is not None and queued.bytes + size > queued.limit:
            return False
        self._items.append(item)
        self._bytes += size
        queued.bytes += size
        if len(self._items) == self._half:
            self.wake()
        return True

    def _release(self) -> None:
        self._queued.bytes -= self._bytes
        self._bytes = 0

    def wake(self) -> None:
        """Let a waiting `take` return what is queued."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self, reason: Closed) -> None:
        """Stop taking items; what is queued is dropped. The first reason sticks."""
        if self.closed is None:
            self.closed = reason
            self._items = []
            self._release()
            self.wake()

    async def take(self) -> list[Frame]:
        """Every queued item, oldest first: at once if there are some, else once woken
        with some; [] once closed."""
        while not self._items and self.closed is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items, self._items = self._items, []
        self._release()
        return items


@dataclass(eq=False, slots=True)
class SseClient:
    """An SSE client: its mailbox of frames, the event types it asked for (None: all),
    and the journal sequence up to which its backlog already covered events."""

    mailbox: Mailbox[bytes]
    types: frozenset[str] | None
    covered_seq: int = 0
    backlog: list[bytes] = field(default_factory=list)

    def wants(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types


# -- wire forms ------------------------------------------------------------------------


def sse_frame(event_type: str, data: Any, event_id: int | None = None) -> bytes:
    """`id: <n>\\nevent: <type>\\ndata: <json>\\n\\n`; no id line when `event_id` is None.
    Compact JSON holds no newline, so the data is always one line."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return b"%sevent: %s\ndata: %s\n\n" % (head, event_type.encode(), encode_json(data))


def sse_frames(message: BusMessage) -> list[tuple[str, bytes]]:
    """The (type, frame) pairs a bus message becomes; journaled ones carry their sequence."""
    event_id = message.seq if isinstance(message, Journaled) else None
    return [(e["type"], sse_frame(e["type"], e, event_id)) for e in stream_events(message)]


def market_message(item: QuoteTick | TradeTick | Bar) -> tuple[MarketKey, dict[str, Any]]:
    """The `/ws/market` message for a market data item, keyed by (symbol, channel)."""
    if isinstance(item, QuoteTick):
        return (item.symbol, "book_top"), {
            "type": "book_top",
            "symbol": item.symbol,
            "ts_ns": item.ts_ns,
            "bid": item.bid,
            "ask": item.ask,
            "bid_size": item.bid_size,
            "ask_size": item.ask_size,
        }
    if isinstance(item, TradeTick):
        return (item.symbol, "trade"), {
            "type": "trade",
            "symbol": item.symbol,
            "ts_ns": item.ts_ns,
            "trade_id": item.trade_id,
            "price": item.price,
            "size": item.size,
            "side": item.aggressor,
        }
    return (item.symbol, "kline"), {
        "type": "kline",
        "symbol": item.symbol,
        "ts_ns": item.ts_ns,
        "interval": item.interval,
        "open": item.open,
        "high": item.high,
        "low": item.low,
        "close": item.close,
        "volume": item.volume,
        "closed": item.closed,
    }


def ws_text(message: dict[str, Any]) -> str:
    return encode_json(message).decode()


# -- the hub ---------------------------------------------------------------------------


class StreamHub:
    """Subscribed to the bus while it has clients; idle, it costs nothing."""

    def __init__(
        self,
        client: EngineClient,
        shutdown: asyncio.Event,
        *,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_queued_bytes: int | None = None,
    ) -> None:
        self._client = client
        self._queued = QueuedBytes(max_queued_bytes)
        self._shutdown = shutdown
        self._mailbox_size = mailbox_size
        self._keepalive_s = keepalive_s
        self._flush_interval_s = flush_interval_s
        self._sse: dict[Mailbox[bytes], SseClient] = {}
        self._orders: dict[Mailbox[str], None] = {}
        self._market: dict[Mailbox[str], set[MarketKey]] = {}
        self._watchers: dict[MarketKey, dict[Mailbox[str], None]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._dirty: dict[Mailbox[Any], None] = {}  # offered to since the last flush
        self._flush: asyncio.Handle | None = None
        self._last_flush = 0.0
        self.slow_dropped = 0

    @property
    def flush_interval_s(self) -> float:
        return self._flush_interval_s

    @property
    def sse_clients(self) -> int:
        return len(self._sse)

    @property
    def ws_clients(self) -> int:
        return len(self._orders) + len(self._market)

    @property
    def queued_bytes(self) -> int:
        """The frames waiting in every client's mailbox, in bytes."""
        return self._queued.bytes

    # -- opening and closing -----------------------------------------------------------

    def open_sse(self, types: frozenset[str] | None, last_id: int | None) -> SseClient:
        """Attach an SSE client, then read its backlog (the events after `last_id`) with
        no await in between: an event is either in the backlog or queued live, and a live
        one the backlog already holds is dropped by its sequence."""
        client = SseClient(Mailbox(self._mailbox_size, self._queued), types)
        self._sse[client.mailbox] = client
        self._attached(client.mailbox)
        if last_id is not None:
            self._fill_backlog(client, last_id)
        return client

    def open_orders(self) -> Mailbox[str]:
        mailbox: Mailbox[str] = Mailbox(self._mailbox_size, self._queued)
        self._orders[mailbox] = None
        self._attached(mailbox)
        return mailbox

    def open_market(self) -> Mailbox[str]:
        mailbox: Mailbox[str] = Mailbox(self._mailbox_size, self._queued)
        self._market[mailbox] = set()
        self._attached(mailbox)
        return mailbox

    def watch(self, mailbox: Mailbox[str], keys: Iterable[MarketKey]) -> None:
        """Start sending the market data under `keys` to a `/ws/market` client."""
        watched = self._market.get(mailbox)
        if watched is None:
            return
        for key in keys:
            watched.add(key)
            self._watchers.setdefault(key, {})[mailbox] = None

    def unwatch(self, mailbox: Mailbox[str], keys: Iterable[MarketKey]) -> None:
        watched = self._market.get(mailbox, set())
        for key in keys:
            watched.discard(key)
            watchers = self._watchers.get(key, {})
            watchers.pop(mailbox, None)
            if not watchers:
                self._watchers.pop(key, None)

    def reply(self, mailbox: Mailbox[str], message: dict[str, Any]) -> None:
        """Queue an answer to a WebSocket client behind what it already has queued, and
        send it now."""
        if mailbox.offer(ws_text(message)):
            mailbox.wake()
        else:
            self._drop_slow([mailbox])

    def close(self, mailbox: Mailbox[Any], reason: Closed = Closed.CLIENT) -> None:
        """Detach a client (idempotent); the last one out unsubscribes from the bus."""
        self.unwatch(mailbox, list(self._market.get(mailbox, ())))
        self._market.pop(mailbox, None)
        self._sse.pop(mailbox, None)
        self._orders.pop(mailbox, None)
        self._dirty.pop(mailbox, None)
        mailbox.close(reason)
        if not (self._sse or self._orders or self._market):
            self._idle()

    def _attached(self, mailbox: Mailbox[Any]) -> None:
        if self._shutdown.is_set():
            self.close(mailbox, Closed.SHUTDOWN)
            return
        if self._unsubscribe is None:
            self._unsubscribe = self._client.subscribe(self._on_bus)
            self._ticker = asyncio.get_running_loop().create_task(
                self._tick(), name="veloz-stream-hub"
            )

    def _idle(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._ticker is not None:
            if self._ticker is not asyncio.current_task():
                self._ticker.cancel()
            self._ticker = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def _fill_backlog(self, client: SseClient, last_id: int) -> None:
        backlog = self._client.events_since(last_id)
        if not backlog.complete:
            last_seq = backlog.last_seq
            data = {"reason": f"events after {last_id} are no longer held", "last_seq": last_seq}
            client.backlog.append(sse_frame("reset", data, last_seq))
            return
        for message in backlog.messages:
            client.backlog += [f for t, f in sse_frames(message) if client.wants(t)]
        if backlog.messages:
            client.covered_seq = backlog.messages[-1].seq

    # -- fan-out -------------------------------------------------------------------------

    def _on_bus(self, message: BusMessage) -> None:
        if isinstance(message, Journaled):
            self._fan_out_sse(message, message.seq)
            self._fan_out_orders(message)
        elif isinstance(message, RiskAlert):
            self._fan_out_sse(message, None)
        else:
            if isinstance(message, QuoteTick):
                self._fan_out_sse(message, None)
            self._fan_out_market(message)
        if self._dirty and self._flush is None:
            self._schedule_flush()

    def _fan_out_sse(self, message: BusMessage, seq: int | None) -> None:
        if not self._sse:
            return
        frames = sse_frames(message)
        if not frames:
            return
        # One chunk per distinct set of types asked for, not one per client: with a
        # thousand clients most ask for the same few.
        chunks: dict[frozenset[str] | None, bytes] = {None: b"".join(f for _, f in frames)}
        slow: list[Mailbox[bytes]] = []
        for mailbox, client in self._sse.items():
            if seq is not None and seq <= client.covered_seq:
                continue
            chunk = chunks.get(client.types)
            if chunk is None:
                assert client.types is not None
                chunk = chunks[client.types] = b"".join(f for t, f in frames if t in client.types)
            if not chunk:
                continue
            if mailbox.offer(chunk):
                self._dirty[mailbox] = None
            else:
                slow.append(mailbox)
        self._drop_slow(slow)

    def _fan_out_orders(self, message: Journaled) -> None:
        if not self._orders:
            return
        texts = [ws_text(e) for e in stream_events(message) if e["type"] in ORDER_MESSAGE_TYPES]
        self._offer_all(self._orders, texts)

    def _fan_out_market(self, item: QuoteTick | TradeTick | Bar) -> None:
        if not self._watchers:
            return
        key, message = market_message(item)
        watchers = self._watchers.get(key)
        if watchers:
            self._offer_all(watchers, [ws_text(message)])

    def _offer_all(self, mailboxes: Iterable[Mailbox[str]], texts: list[str]) -> None:
        if not texts:
            return
        slow = []
        for mailbox in mailboxes:
            self._dirty[mailbox] = None
            for text in texts:
                if not mailbox.offer(text):
                    slow.append(mailbox)
                    break
        self._drop_slow(slow)

    def _drop_slow(self, mailboxes: list[Mailbox[Any]]) -> None:
        for mailbox in mailboxes:
            self.slow_dropped += 1
            self.close(mailbox, Closed.SLOW)

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        due = self._last_flush + self._flush_interval_s
        if due <= loop.time():
            self._flush = loop.call_soon(self._wake_dirty)
        else:
            self._flush = loop.call_at(due, self._wake_dirty)

    def _wake_dirty(self) -> None:
        self._flush = None
        self._last_flush = asyncio.get_running_loop().time()
        dirty, self._dirty = self._dirty, {}
        for mailbox in dirty:
            mailbox.wake()

    # -- keep-alive and shutdown ---------------------------------------------------------

    async def _tick(self) -> None:
        while not self._shutdown.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._keepalive_s):
                    await self._shutdown.wait()
            if not self._shutdown.is_set():
                self._keep_alive()
        self._close_all()

    def _keep_alive(self) -> None:
        slow = [m for m in self._sse if not m.offer(KEEPALIVE_FRAME)]
        self._drop_slow(slow)
        for mailbox in self._sse:
            mailbox.wake()

    def _close_all(self) -> None:
        everyone: list[Mailbox[Any]] = [*self._sse, *self._orders, *self._market]
        for mailbox in everyone:
            self.close(mailbox, Closed.SHUTDOWN)
