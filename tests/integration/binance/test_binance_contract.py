"""The venue contract (tests/contract/venue_contract.py), the same suite the simulated
venue passes, run against `BinanceVenue` trading with the fake Binance on loopback.

The harness moves the market by setting the fake's book: the fake matches resting orders
the new book crosses, and their reports reach the venue over the user data stream."""

from decimal import Decimal

from tests.contract.venue_contract import ReportRecorder, VenueContract, VenueHarness
from tests.support.fake_binance import FakeBinance
from veloz.binance.limits import RateLimiter
from veloz.binance.signing import Credentials, HmacSigner
from veloz.clock import LiveClock
from veloz.execution.venue import Venue
from veloz.execution.venues.binance import BinanceVenue
from veloz.model.instruments import Instrument


class BinanceHarness:
    symbol = "BTCUSDT"
    base_asset = "BTC"
    quote_asset = "USDT"
    bid = Decimal("50000.00")
    ask = Decimal("50001.00")
    tick = Decimal("0.01")
    lot = Decimal("0.01")
    maker_fee_bps = Decimal("10")
    taker_fee_bps = Decimal("10")

    def __init__(self) -> None:
        self.recorder = ReportRecorder()
        self.fake = FakeBinance(api_key="k", secret="s", symbols=(self.symbol,))
        self._venue: BinanceVenue | None = None

    async def make_venue(self) -> Venue:
        await self.fake.start()
        instrument = Instrument(
            symbol=self.symbol,
            base_asset=self.base_asset,
            quote_asset=self.quote_asset,
            price_increment=self.tick,
            size_increment=Decimal("0.00001"),
            min_qty=Decimal("0.00001"),
            max_qty=Decimal("9000"),
            min_notional=Decimal("5"),
        )
        self._venue = BinanceVenue(
            self.fake.endpoints(),
            Credentials("k", HmacSigner("s")),
            {self.symbol: instrument},
            clock=LiveClock(),
            limiter=RateLimiter(),
            timeout_s=2.0,
            reconnect_delay_s=0.05,
            poll_interval_s=0.05,
            resolve_delay_s=0.05,
            stream_timeout_s=2.0,
        )
        self._venue.set_report_handler(self.recorder)
        await self._venue.connect()
        return self._venue

    async def set_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, bid_size: Decimal, ask_size: Decimal
    ) -> None:
        self.fake.set_book(symbol, bids=[(bid, bid_size)], asks=[(ask, ask_size)])

    async def close(self) -> None:
        if self._venue is not None:
            await self._venue.close()
        await self.fake.stop()


class TestBinanceVenueContract(VenueContract):
    def make_harness(self) -> VenueHarness:
        return BinanceHarness()
