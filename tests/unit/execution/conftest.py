"""A rig around one SimVenue: quotes it reads, the reports it sent, and a barrier that
waits until everything submitted so far has been answered."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from veloz.clock import Clock, SimulatedClock
from veloz.execution.venue import VenueOrder
from veloz.execution.venues.sim import SimVenue, SimVenueConfig
from veloz.model.account import Balance
from veloz.model.enums import OrderSide, OrderType, TimeInForce
from veloz.model.events import OrderCancelRejected, OrderFilled, OrderReport
from veloz.model.instruments import Instrument, default_instrument
from veloz.model.market import QuoteTick

SYMBOL = "BTCUSDT"
_R = TypeVar("_R", bound=OrderReport)


class SimRig:
    def __init__(self, config: SimVenueConfig, clock: Clock, id_seed: int | None = None) -> None:
        self.clock = clock
        self.quotes: dict[str, QuoteTick] = {}
        self.instruments: dict[str, Instrument] = {
            SYMBOL: default_instrument(SYMBOL, Decimal("50000")),
            "ETHUSDT": default_instrument("ETHUSDT", Decimal("3000")),
        }
        self.reports: list[OrderReport] = []
        self._arrived = asyncio.Event()
        self._ids = itertools.count(1)
        self.venue = SimVenue(config, clock, self.instruments, self.quotes.get, id_seed=id_seed)
        self.venue.set_report_handler(self.record)

    def record(self, report: OrderReport) -> None:
        self.reports.append(report)
        self._arrived.set()

    def quote(
        self,
        bid: str,
        ask: str,
        bid_size: str = "10",
        ask_size: str = "10",
        symbol: str = SYMBOL,
    ) -> QuoteTick:
        tick = QuoteTick(
            symbol=symbol,
            bid=Decimal(bid),
            ask=Decimal(ask),
            bid_size=Decimal(bid_size),
            ask_size=Decimal(ask_size),
            ts_ns=self.clock.time_ns(),
        )
        self.quotes[symbol] = tick
        self.venue.on_quote(tick)
        return tick

    def request(
        self,
        side: OrderSide,
        qty: str,
        price: str | None = None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        client_order_id: str | None = None,
        symbol: str = SYMBOL,
    ) -> VenueOrder:
        return VenueOrder(
            client_order_id=client_order_id or f"o-{next(self._ids)}",
            symbol=symbol,
            side=side,
            order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
            time_in_force=tif,
            qty=Decimal(qty),
            price=None if price is None else Decimal(price),
        )

    async def submit(self, side: OrderSide, qty: str, price: str | None = None, **kw: Any) -> str:
        request = self.request(side, qty, price, **kw)
        await self.venue.submit(request)
        return request.client_order_id

    async def wait(self, predicate: Callable[[OrderReport], bool]) -> OrderReport:
        async with asyncio.timeout(5):
            while True:
                for report in self.reports:
                    if predicate(report):
                        return report
                self._arrived.clear()
                await self._arrived.wait()

    async def drain(self) -> None:
        """Wait until every request made so far has been answered: requests are handled
        in order, so the answer to a cancel of an unknown id comes after all of them."""
        barrier = f"barrier-{next(self._ids)}"
        await self.venue.cancel(barrier, SYMBOL)
        await self.wait(
            lambda r: isinstance(r, OrderCancelRejected) and r.client_order_id == barrier
        )

    def of(self, client_order_id: str) -> list[OrderReport]:
        return [r for r in self.reports if r.client_order_id == client_order_id]

    def kinds(self, client_order_id: str) -> list[str]:
        return [type(r).__name__ for r in self.of(client_order_id)]

    def only(self, kind: type[_R], client_order_id: str) -> _R:
        [report] = [r for r in self.of(client_order_id) if isinstance(r, kind)]
        return report

    def fills(self, client_order_id: str) -> list[OrderFilled]:
        return [r for r in self.of(client_order_id) if isinstance(r, OrderFilled)]

    def account(self) -> dict[str, Balance]:
        return {b.asset: b for b in self.venue.balance_snapshot()}


RigFactory = Callable[..., SimRig]


@pytest.fixture
async def make_rig() -> AsyncIterator[RigFactory]:
    """`make_rig(**config)` builds and remembers rigs; every venue is closed afterwards.
    Latency defaults to 0, balances to 100,000 USDT and 10 BTC, and the clock to a
    `SimulatedClock` (latency is measured on it: pass a `LiveClock` for wall time)."""
    rigs: list[SimRig] = []

    def build(
        clock: Clock | None = None,
        starting_balances: Mapping[str, str] | None = None,
        id_seed: int | None = None,
        **config: Any,
    ) -> SimRig:
        balances = starting_balances or {"USDT": "100000", "BTC": "10"}
        config.setdefault("latency_ms", 0.0)
        rig = SimRig(
            SimVenueConfig(
                starting_balances={k: Decimal(v) for k, v in balances.items()}, **config
            ),
            clock or SimulatedClock(1_000),
            id_seed,
        )
        rigs.append(rig)
        return rig

    yield build
    for rig in rigs:
        await rig.venue.close()


@pytest.fixture
async def rig(make_rig: RigFactory) -> SimRig:
    """A connected venue with default fees (10 bps), no slippage and no latency."""
    built = make_rig()
    await built.venue.connect()
    return built
