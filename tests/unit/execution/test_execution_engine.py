"""The ExecutionEngine sends up to `max_in_flight` requests at once, starts them in the order
they were queued, never lets a cancel overtake its order, and survives a failing venue."""

import asyncio
from decimal import Decimal

import pytest

from veloz.execution.engine import ExecutionEngine
from veloz.execution.venue import VenueOrder
from veloz.model.enums import OrderSide, OrderType, TimeInForce


def order(coid: str) -> VenueOrder:
    return VenueOrder(
        client_order_id=coid,
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=Decimal("0.01"),
        price=Decimal("50000"),
    )


class SlowVenue:
    """Each request waits until the test releases it; records what started and ended."""

    name = "slow"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.fail: set[str] = set()
        self.in_flight = 0
        self.most_in_flight = 0

    async def _request(self, label: str) -> None:
        self.started.append(label)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gates.setdefault(label, asyncio.Event()).wait()
            if label in self.fail:
                raise ConnectionError(f"{label} failed")
        finally:
            self.in_flight -= 1
            self.finished.append(label)

    async def submit(self, order: VenueOrder) -> None:
        await self._request(f"new:{order.client_order_id}")

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        await self._request(f"cancel:{client_order_id}")

    def release(self, label: str) -> None:
        self.gates.setdefault(label, asyncio.Event()).set()


async def until(condition) -> None:
    """Let the loop run until `condition()` holds (the requests are tasks on it)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_requests_go_out_concurrently_up_to_the_bound_in_queue_order():
    venue = SlowVenue()
    engine = ExecutionEngine(venue, lambda coid, exc: None, max_in_flight=3)  # type: ignore[arg-type]
    engine.start()
    for n in range(5):
        engine.send_order(order(f"o{n}"))
    await until(lambda: len(venue.started) == 3)
    assert venue.started == ["new:o0", "new:o1", "new:o2"]
    assert engine.in_flight == 3
    venue.release("new:o1")
    await until(lambda: len(venue.started) == 4)
    assert venue.started[-1] == "new:o3"
    for n in range(5):
        venue.release(f"new:o{n}")
    await asyncio.wait_for(engine.drain(), 2)
    assert venue.most_in_flight == 3 and engine.sent_orders == 5 and engine.in_flight == 0
    await engine.stop()


async def test_a_cancel_waits_for_its_own_order_but_not_for_others():
    venue = SlowVenue()
    engine = ExecutionEngine(venue, lambda coid, exc: None, max_in_flight=4)  # type: ignore[arg-type]
    engine.start()
    engine.send_order(order("a"))
    engine.send_cancel("a", "BTCUSDT")
    engine.send_order(order("b"))
    await until(lambda: "new:b" in venue.started)
    assert "cancel:a" not in venue.started  # its order is still on the way
    venue.release("new:b")
    venue.release("cancel:a")
    await until(lambda: "new:b" in venue.finished)
    assert "cancel:a" not in venue.started
    venue.release("new:a")
    await asyncio.wait_for(engine.drain(), 2)
    assert venue.finished.index("new:a") < venue.started.index("cancel:a")
    assert engine.sent_cancels == 1
    await engine.stop()


async def test_a_failed_request_is_reported_and_the_rest_carry_on():
    venue = SlowVenue()
    failures: list[tuple[str, str]] = []
    engine = ExecutionEngine(
        venue,  # type: ignore[arg-type]
        lambda coid, exc: failures.append((coid, str(exc))),
        max_in_flight=2,
    )
    engine.start()
    venue.fail.add("new:x")
    for coid in ("x", "y"):
        venue.release(f"new:{coid}")
        engine.send_order(order(coid))
    await asyncio.wait_for(engine.drain(), 2)
    assert failures == [("x", "new:x failed")]
    assert engine.send_errors == 1 and engine.sent_orders == 1
    await engine.stop()


async def test_drain_waits_for_answers_not_only_for_the_queue():
    venue = SlowVenue()
    engine = ExecutionEngine(venue, lambda coid, exc: None, max_in_flight=2)  # type: ignore[arg-type]
    engine.start()
    engine.send_order(order("slow"))
    await until(lambda: venue.started == ["new:slow"])
    drained = asyncio.ensure_future(engine.drain())
    await asyncio.sleep(0.01)
    assert not drained.done()
    venue.release("new:slow")
    await asyncio.wait_for(drained, 2)
    await engine.stop()


def test_the_bound_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        ExecutionEngine(SlowVenue(), lambda coid, exc: None, max_in_flight=0)  # type: ignore[arg-type]


async def test_a_queueing_venue_takes_each_request_at_once_in_order(make_rig):
    rig = make_rig()
    await rig.venue.connect()
    engine = ExecutionEngine(rig.venue, lambda coid, exc: None)
    # No worker started: the sim venue is handed requests directly, not through tasks.
    rig.quote("49990", "50010")
    engine.send_order(rig.request(OrderSide.BUY, "0.01", "49000", client_order_id="a"))
    engine.send_cancel("a", "BTCUSDT")
    engine.send_order(rig.request(OrderSide.BUY, "0.01", "48000", client_order_id="b"))
    assert engine.sent_orders == 2 and engine.sent_cancels == 1 and engine.in_flight == 0
    await rig.wait(lambda r: r.client_order_id == "b")
    assert rig.kinds("a") == ["OrderAccepted", "OrderCancelled"]
    assert rig.kinds("b") == ["OrderAccepted"]
    await asyncio.wait_for(engine.drain(), 1)
    await rig.venue.close()


async def test_a_queueing_venue_that_refuses_reports_the_error_on_a_later_iteration(make_rig):
    rig = make_rig()  # never connected: the venue refuses every request
    failures: list[tuple[str, str]] = []
    engine = ExecutionEngine(rig.venue, lambda coid, exc: failures.append((coid, str(exc))))
    engine.send_order(rig.request(OrderSide.BUY, "0.01", "49000", client_order_id="a"))
    engine.send_cancel("b", "BTCUSDT")
    # The caller is still handing over its batch: nothing is reported from inside it.
    assert failures == []
    await asyncio.sleep(0)
    assert failures == [
        ("a", "sim venue is not connected"),
        ("b", "sim venue is not connected"),
    ]
    assert engine.send_errors == 2 and engine.sent_orders == 0 and engine.sent_cancels == 0
