"""The ExecutionEngine: sends orders and cancels to the venue in the order they became
durable (intent before send), from one worker, so a cancel never overtakes its order."""

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from veloz.execution.venue import Venue, VenueOrder

logger = logging.getLogger(__name__)

SendErrorHandler = Callable[[str, Exception], None]


class ExecutionEngine:
    def __init__(self, venue: Venue, on_send_error: SendErrorHandler) -> None:
        self._venue = venue
        self._on_send_error = on_send_error
        self._outbox: deque[VenueOrder | tuple[str, str]] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self.sent_orders = 0
        self.sent_cancels = 0
        self.send_errors = 0

    @property
    def venue(self) -> Venue:
        return self._venue

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="veloz-execution")

    def send_order(self, order: VenueOrder) -> None:
        self._push(order)

    def send_cancel(self, client_order_id: str, symbol: str) -> None:
        self._push((client_order_id, symbol))

    def _push(self, item: VenueOrder | tuple[str, str]) -> None:
        self._outbox.append(item)
        self._idle.clear()
        self._wakeup.set()

    async def drain(self) -> None:
        """Wait until everything queued has been handed to the venue."""
        await self._idle.wait()

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _run(self) -> None:
        while True:
            if not self._outbox:
                self._idle.set()
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            item = self._outbox.popleft()
            client_order_id = item.client_order_id if isinstance(item, VenueOrder) else item[0]
            try:
                if isinstance(item, VenueOrder):
                    await self._venue.submit(item)
                    self.sent_orders += 1
                else:
                    await self._venue.cancel(*item)
                    self.sent_cancels += 1
            except Exception as exc:  # a venue failure must not stop the pipeline
                self.send_errors += 1
                logger.exception("sending %s to %s failed", client_order_id, self._venue.name)
                self._on_send_error(client_order_id, exc)
