"""The venue contract, run against the simulated venue twice: the asyncio `SimVenue` the
live runtime uses, and the synchronous `SimExchange` at its core behind a bare async
facade, so the core keeps the contract whichever runtime drives it."""

import asyncio
from collections.abc import Sequence
from decimal import Decimal

from tests.contract.venue_contract import ReportRecorder, VenueContract, VenueHarness
from veloz.clock import LiveClock, SimulatedClock
from veloz.execution.venue import ReportHandler, Venue, VenueOrder, VenueOrderState
from veloz.execution.venues.sim import SimVenue, SimVenueConfig
from veloz.execution.venues.sim_exchange import SimExchange
from veloz.model.account import Balance
from veloz.model.instruments import default_instrument
from veloz.model.market import QuoteTick
from veloz.model.orders import Order


class _SimHarness:
    """What both harnesses share: the market, the account and the quote dict the venue
    reads, with quotes pushed to the venue through `on_quote`, as the engine does."""

    symbol = "BTCUSDT"
    base_asset = "BTC"
    quote_asset = "USDT"
    bid = Decimal("50000.00")
    ask = Decimal("50001.00")
    tick = Decimal("0.01")
    lot = Decimal("0.01")
    maker_fee_bps = Decimal("2")
    taker_fee_bps = Decimal("7.5")

    def __init__(self) -> None:
        self.recorder = ReportRecorder()
        self._quotes: dict[str, QuoteTick] = {}
        self._config = SimVenueConfig(
            maker_fee_bps=self.maker_fee_bps,
            taker_fee_bps=self.taker_fee_bps,
            starting_balances={"USDT": Decimal("100000"), "BTC": Decimal("2")},
        )
        self._instruments = {self.symbol: default_instrument(self.symbol, self.ask)}

    def _quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        bid_size: Decimal,
        ask_size: Decimal,
        *,
        ts_ns: int,
    ) -> QuoteTick:
        quote = QuoteTick(
            symbol=symbol, bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size, ts_ns=ts_ns
        )
        self._quotes[symbol] = quote
        return quote


class SimVenueHarness(_SimHarness):
    """Drives a SimVenue on the wall clock, with its default latency."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = LiveClock()
        self._venue: SimVenue | None = None

    async def make_venue(self) -> Venue:
        self._venue = SimVenue(self._config, self._clock, self._instruments, self._quotes.get)
        self._venue.set_report_handler(self.recorder)
        await self._venue.connect()
        return self._venue

    async def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, bid_size: Decimal, ask_size: Decimal
    ) -> None:
        quote = self._quote(symbol, bid, ask, bid_size, ask_size, ts_ns=self._clock.time_ns())
        if self._venue is not None:
            self._venue.on_quote(quote)

    async def close(self) -> None:
        if self._venue is not None:
            await self._venue.close()


class ExchangeVenue:
    """The `Venue` protocol over a bare `SimExchange`, none of `SimVenue`'s machinery: a
    request is handled at once, in the caller, and the reports it made are handed to the
    report handler by a `call_soon` callback (a venue answers later, never from inside
    `submit()`)."""

    name = "sim-exchange"

    def __init__(self, exchange: SimExchange) -> None:
        self.exchange = exchange
        self._handler: ReportHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def connected(self) -> bool:
        return self._loop is not None

    def set_report_handler(self, handler: ReportHandler) -> None:
        self._handler = handler

    def restore(self, open_orders: Sequence[Order], balances: Sequence[Balance]) -> None:
        self.exchange.restore(open_orders, balances)

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self.deliver()
        self._loop = None

    async def submit(self, order: VenueOrder) -> None:
        self._require_connected()
        self.exchange.submit(order)
        self.deliver_later()

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        self._require_connected()
        self.exchange.cancel(client_order_id, symbol)
        self.deliver_later()

    async def query(self, client_order_id: str, symbol: str) -> VenueOrderState | None:
        self._require_connected()
        return self.exchange.query(client_order_id, symbol)

    async def open_orders(self) -> list[VenueOrderState]:
        self._require_connected()
        return self.exchange.open_orders()

    async def balances(self) -> dict[str, Decimal]:
        self._require_connected()
        return self.exchange.balances()

    async def ping(self) -> float:
        self._require_connected()
        return 0.0

    def on_quote(self, quote: QuoteTick) -> None:
        if self._loop is not None:
            self.exchange.on_quote(quote)
            self.deliver_later()

    def deliver_later(self) -> None:
        if self._loop is not None and self.exchange.pending_reports:
            self._loop.call_soon(self.deliver)

    def deliver(self) -> None:
        assert self._handler is not None
        while reports := self.exchange.drain():
            for report in reports:
                self._handler(report)

    def _require_connected(self) -> None:
        if self._loop is None:
            raise ConnectionError("not connected")


class SimExchangeHarness(_SimHarness):
    """Drives a SimExchange through `ExchangeVenue` on a simulated clock that moves a
    millisecond per quote."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = SimulatedClock(1_700_000_000_000_000_000)
        self._venue: ExchangeVenue | None = None

    async def make_venue(self) -> Venue:
        exchange = SimExchange(
            self._config, self._clock, self._instruments, self._quotes.get, id_seed=1
        )
        self._venue = ExchangeVenue(exchange)
        self._venue.set_report_handler(self.recorder)
        await self._venue.connect()
        return self._venue

    async def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, bid_size: Decimal, ask_size: Decimal
    ) -> None:
        self._clock.advance(1_000_000)
        quote = self._quote(symbol, bid, ask, bid_size, ask_size, ts_ns=self._clock.time_ns())
        if self._venue is not None:
            self._venue.on_quote(quote)

    async def close(self) -> None:
        if self._venue is not None:
            await self._venue.close()


class TestSimVenueContract(VenueContract):
    def make_harness(self) -> VenueHarness:
        return SimVenueHarness()


class TestSimExchangeContract(VenueContract):
    def make_harness(self) -> VenueHarness:
        return SimExchangeHarness()
