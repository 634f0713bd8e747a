"""Adapter factories: the market data source, the instruments and the venue a live engine
runs with, chosen by name (`VELOZ_MARKET_SOURCE`, `VELOZ_EXECUTION_MODE`).

A new venue or data source adds its module beside the sim ones and one branch here; the
trading core and the live runtime do not change.
"""

from collections.abc import Mapping
from typing import NamedTuple

from veloz.engine.clock import Clock
from veloz.execution.venue import Venue
from veloz.execution.venues.sim import SimVenue, SimVenueConfig
from veloz.market.engine import MarketData, MarketDataEngine, MarketDataSource
from veloz.market.sim import SimMarketConfig, SimMarketSource, sim_instruments
from veloz.model.instruments import Instrument
from veloz.model.market import QuoteTick

MARKET_SOURCES = ("sim",)
EXECUTION_MODES = ("sim_engine",)


class MarketAdapters(NamedTuple):
    name: str
    instruments: Mapping[str, Instrument]
    source: MarketDataSource


def build_market(name: str, sim: SimMarketConfig, clock: Clock) -> MarketAdapters:
    if name == "sim":
        instruments = sim_instruments(sim)
        return MarketAdapters(name, instruments, SimMarketSource(sim, clock, instruments))
    raise ValueError(f"unknown market source {name!r}; one of {', '.join(MARKET_SOURCES)}")


def build_venue(
    mode: str,
    sim: SimVenueConfig,
    clock: Clock,
    instruments: Mapping[str, Instrument],
    market: MarketDataEngine,
) -> Venue:
    if mode == "sim_engine":
        venue = SimVenue(sim, clock, instruments, market.quote)

        # The simulated exchange matches resting orders against the quotes the engine
        # sees, before anyone else hears of them.
        def match(item: MarketData) -> None:
            if isinstance(item, QuoteTick):
                venue.on_quote(item)

        market.subscribe(match)
        return venue
    raise ValueError(f"unknown execution mode {mode!r}; one of {', '.join(EXECUTION_MODES)}")
