"""Adapter factories: the market data source, the instruments and the venue a live engine
runs with, chosen by name (`VELOZ_MARKET_SOURCE`, `VELOZ_EXECUTION_MODE`).

A new venue or data source adds its module beside the sim ones and one branch here; the
trading core and the live runtime do not change. Binance's adapters share one connection
(`BinanceLink`: the rate limiter, the REST clients and the symbols' filters, which it
loads before the engine replays its journal).
"""

from collections.abc import Mapping
from decimal import Decimal
from typing import NamedTuple

from veloz.backtest.data import load_bars
from veloz.clock import Clock, SimulatedClock
from veloz.execution.venue import Venue
from veloz.execution.venues.sim import SimVenue, SimVenueConfig
from veloz.market.engine import MarketData, MarketDataEngine, MarketDataSource
from veloz.market.replay import ReplayBarSource
from veloz.market.sim import SimMarketConfig, SimMarketSource, sim_instruments
from veloz.model.instruments import Instrument, default_instrument
from veloz.model.market import QuoteTick
from veloz.runtime.binance import BinanceLink

BINANCE_MARKET = ("binance_ws", "binance_rest")
BINANCE_EXECUTION = ("binance_testnet_spot", "binance_spot")
MARKET_SOURCES = ("sim", "replay", *BINANCE_MARKET)
EXECUTION_MODES = ("sim_engine", *BINANCE_EXECUTION)


class MarketAdapters(NamedTuple):
    name: str
    instruments: Mapping[str, Instrument]
    source: MarketDataSource


def build_market(
    name: str,
    sim: SimMarketConfig,
    clock: Clock,
    replay_file: str | None = None,
    *,
    binance: BinanceLink | None = None,
) -> MarketAdapters:
    """For Binance, `instruments` is the link's mapping, filled at start."""
    if name == "sim":
        instruments = sim_instruments(sim)
        return MarketAdapters(name, instruments, SimMarketSource(sim, clock, instruments))
    if name == "replay":
        return _replay(sim.symbols[0], replay_file, clock)
    if name in BINANCE_MARKET:
        if binance is None:
            raise ValueError(f"the {name} market source needs Binance's settings")
        return MarketAdapters(name, binance.instruments, binance.market_source(name))
    raise ValueError(f"unknown market source {name!r}; one of {', '.join(MARKET_SOURCES)}")


def build_venue(
    mode: str,
    sim: SimVenueConfig,
    clock: Clock,
    instruments: Mapping[str, Instrument],
    market: MarketDataEngine,
    *,
    binance: BinanceLink | None = None,
) -> Venue:
    if mode in BINANCE_EXECUTION:
        if binance is None:
            raise ValueError(f"the {mode} venue needs Binance's settings")
        return binance.venue(clock)
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


def _replay(symbol: str, path: str | None, clock: Clock) -> MarketAdapters:
    """Bars from a file on a simulated clock, instruments as the backtester makes them."""
    if path is None:
        raise ValueError("the replay market source needs a bar file")
    if not isinstance(clock, SimulatedClock):
        raise ValueError("the replay market source runs on a simulated clock")
    series = load_bars(path, symbol)
    rows = list(
        zip(
            series.ts_ns.tolist(),
            series.open.tolist(),
            series.high.tolist(),
            series.low.tolist(),
            series.close.tolist(),
            series.volume.tolist(),
            strict=True,
        )
    )
    instruments = {symbol: default_instrument(symbol, Decimal(repr(rows[0][4])))}
    return MarketAdapters("replay", instruments, ReplayBarSource(symbol, rows, clock))
