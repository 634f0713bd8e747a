"""The venue contract, run against the simulated venue."""

from decimal import Decimal

from tests.contract.venue_contract import ReportRecorder, VenueContract, VenueHarness
from veloz.engine.clock import LiveClock
from veloz.execution.venue import Venue
from veloz.execution.venues.sim import SimVenue, SimVenueConfig
from veloz.model.instruments import default_instrument
from veloz.model.market import QuoteTick


class SimVenueHarness:
    """Drives a SimVenue: quotes live in a dict the venue reads and are pushed to it
    through `on_quote`, as the engine does."""

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
        self._clock = LiveClock()
        self._quotes: dict[str, QuoteTick] = {}
        self._venue: SimVenue | None = None

    async def make_venue(self) -> Venue:
        config = SimVenueConfig(
            maker_fee_bps=self.maker_fee_bps,
            taker_fee_bps=self.taker_fee_bps,
            starting_balances={"USDT": Decimal("100000"), "BTC": Decimal("2")},
        )
        instruments = {self.symbol: default_instrument(self.symbol, self.ask)}
        self._venue = SimVenue(config, self._clock, instruments, self._quotes.get)
        self._venue.set_report_handler(self.recorder)
        await self._venue.connect()
        return self._venue

    async def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, bid_size: Decimal, ask_size: Decimal
    ) -> None:
        quote = QuoteTick(
            symbol=symbol,
            bid=bid,
            ask=ask,
            bid_size=bid_size,
            ask_size=ask_size,
            ts_ns=self._clock.time_ns(),
        )
        self._quotes[symbol] = quote
        if self._venue is not None:
            self._venue.on_quote(quote)

    async def close(self) -> None:
        if self._venue is not None:
            await self._venue.close()


class TestSimVenueContract(VenueContract):
    def make_harness(self) -> VenueHarness:
        return SimVenueHarness()
