"""The live engine's config from the settings: the journal and risk configs the settings
build, plus the market source and venue this runtime can run."""

import os

from veloz.config import Settings, SettingsError, parse_balances
from veloz.execution.venues.sim import SimVenueConfig
from veloz.market.sim import SimMarketConfig
from veloz.runtime.live import EngineConfig


def engine_config(settings: Settings) -> EngineConfig:
    """Raises SettingsError for a source or venue this version cannot run, or an invalid
    risk limits file."""
    if settings.market_source != "sim" or settings.execution_mode != "sim_engine":
        raise SettingsError(
            "VELOZ_MARKET_SOURCE=sim and VELOZ_EXECUTION_MODE=sim_engine are the only "
            "sources this version runs; Binance market data and execution are not built yet"
        )
    return EngineConfig(
        journal=settings.journal_config(),
        market=SimMarketConfig(
            symbols=settings.symbols,
            seed=settings.sim_seed,
            tick_interval_ms=settings.sim_tick_interval_ms,
        ),
        venue=SimVenueConfig(
            latency_ms=settings.sim_latency_ms,
            starting_balances=parse_balances(settings.sim_balances),
        ),
        risk=settings.risk_config(),
        record_latency=settings.metrics,
        strategy_path=tuple(p for p in settings.strategy_path.split(os.pathsep) if p),
    )
