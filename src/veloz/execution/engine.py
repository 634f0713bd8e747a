"""The ExecutionEngine: hands orders and cancels to the venue in the order they became
durable (intent before send).

Up to `max_in_flight` requests are on their way at once: a real venue answers each in a
network round trip, and one request at a time would cap a REST venue at a few dozen
orders a second. What must stay ordered stays ordered: requests start in the order they
were queued, and a cancel waits until its own order's request has returned, so it never
overtakes it. The venue's rate limiter, not this engine, decides how fast they leave.

A venue that queues requests itself (`QueueingVenue`: the simulated one) takes each one
at once as it comes, in order, without a task, a slot and two wakeups per request: that
chain cost the order path more than the venue's own work.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from veloz.execution.venue import QueueingVenue, Venue, VenueOrder

logger = logging.getLogger(__name__)

SendErrorHandler = Callable[[str, Exception], None]


class ExecutionEngine:
    def __init__(
        self, venue: Venue, on_send_error: SendErrorHandler, *, max_in_flight: int = 1
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._venue = venue
        self._queueing = venue if isinstance(venue, QueueingVenue) else None
        self._on_send_error = on_send_error
        self._outbox: deque[VenueOrder | tuple[str, str]] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._worker: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # The order requests still on their way, by client order id: a cancel waits on them.
        self._submits: dict[str, asyncio.Task[None]] = {}
        self.sent_orders = 0
        self.sent_cancels = 0
        self.send_errors = 0

    @property
    def venue(self) -> Venue:
        return self._venue

    @property
    def in_flight(self) -> int:
        return len(self._sending)

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="veloz-execution")

    def send_order(self, order: VenueOrder) -> None:
        queueing = self._queueing
        if queueing is None:
            self._push(order)
            return
        try:
            queueing.submit_nowait(order)
        except Exception as exc:
            self._refused_now(order.client_order_id, exc)
            return
        self.sent_orders += 1

    def send_cancel(self, client_order_id: str, symbol: str) -> None:
        queueing = self._queueing
        if queueing is None:
            self._push((client_order_id, symbol))
            return
        try:
            queueing.cancel_nowait(client_order_id, symbol)
        except Exception as exc:
            self._refused_now(client_order_id, exc)
            return
        self.sent_cancels += 1

    def _refused_now(self, client_order_id: str, exc: Exception) -> None:
        # Handled on a later loop iteration, as a failed send task's is: the caller is in
        # the middle of handing over a batch.
        asyncio.get_running_loop().call_soon(self._failed, client_order_id, exc)

    def _push(self, item: VenueOrder | tuple[str, str]) -> None:
        self._outbox.append(item)
        self._idle.clear()
        self._wakeup.set()

    async def drain(self) -> None:
        """Wait until everything queued has been handed to the venue and answered."""
        await self._idle.wait()

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        sending = list(self._sending)
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._outbox:
                if not self._sending:
                    self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._slots.acquire()
            item = self._outbox.popleft()
            if isinstance(item, VenueOrder):
                task = loop.create_task(self._send_order(item))
                self._submits[item.client_order_id] = task
            else:
                task = loop.create_task(self._send_cancel(*item, self._submits.get(item[0])))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._slots.release()
        if not self._sending and not self._outbox:
            self._idle.set()
        self._wakeup.set()

    async def _send_order(self, order: VenueOrder) -> None:
        try:
            await self._venue.submit(order)
            self.sent_orders += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a venue failure must not stop the pipeline
            self._failed(order.client_order_id, exc)
        finally:
            if self._submits.get(order.client_order_id) is asyncio.current_task():
                del self._submits[order.client_order_id]

    async def _send_cancel(
        self, client_order_id: str, symbol: str, submit: asyncio.Task[None] | None
    ) -> None:
        if submit is not None:
            # Its order is still on the way: a cancel must not arrive first.
            await asyncio.wait([submit])
        try:
            await self._venue.cancel(client_order_id, symbol)
            self.sent_cancels += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(client_order_id, exc)

    def _failed(self, client_order_id: str, exc: Exception) -> None:
        self.send_errors += 1
        logger.error("sending %s to %s failed", client_order_id, self._venue.name, exc_info=exc)
        self._on_send_error(client_order_id, exc)
