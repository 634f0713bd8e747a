"""The live engine's config from the settings: the journal and risk configs the settings
build, plus the market source and venue this runtime runs, with Binance's URLs and keys
resolved here (the settings themselves know nothing of adapters)."""

import os

from veloz.binance.endpoints import SPOT, TESTNET, BinanceEndpoints
from veloz.binance.signing import Credentials, signer_for
from veloz.config import Settings, SettingsError, parse_balances
from veloz.execution.venues.sim import SimVenueConfig
from veloz.market.sim import SimMarketConfig
from veloz.runtime.binance import BinanceConfig
from veloz.runtime.factories import BINANCE_EXECUTION, BINANCE_MARKET
from veloz.runtime.live import EngineConfig


def engine_config(settings: Settings) -> EngineConfig:
    """Raises SettingsError for a combination this runtime cannot run (Binance execution
    on simulated prices), missing or unusable Binance keys, or an invalid risk limits
    file."""
    return EngineConfig(
        journal=settings.journal_config(),
        market_source=settings.market_source,
        execution_mode=settings.execution_mode,
        market=SimMarketConfig(
            symbols=settings.symbols,
            seed=settings.sim_seed,
            tick_interval_ms=settings.sim_tick_interval_ms,
        ),
        venue=SimVenueConfig(
            latency_ms=settings.sim_latency_ms,
            starting_balances=parse_balances(settings.sim_balances),
        ),
        binance=binance_config(settings),
        risk=settings.risk_config(),
        record_latency=settings.metrics,
        strategy_path=tuple(p for p in settings.strategy_path.split(os.pathsep) if p),
        auto_cancel_orphaned=settings.auto_cancel_orphaned,
        memory_pool_bytes=settings.memory_pool_size,
    )


def binance_config(settings: Settings) -> BinanceConfig | None:
    """Binance's URLs and keys when a Binance market source or venue is chosen, else None.

    `binance_testnet_spot` defaults every URL to the spot testnet (its prices included, so
    orders and market data agree); otherwise production. An explicitly set URL wins."""
    market = settings.market_source in BINANCE_MARKET
    execution = settings.execution_mode in BINANCE_EXECUTION
    if not market and not execution:
        return None
    if execution and not market:
        raise SettingsError(
            f"VELOZ_EXECUTION_MODE={settings.execution_mode} trades at Binance's prices: "
            "set VELOZ_MARKET_SOURCE=binance_ws (or binance_rest), not "
            f"{settings.market_source}"
        )
    base = TESTNET if settings.execution_mode == "binance_testnet_spot" else SPOT
    endpoints = BinanceEndpoints(
        rest=settings.binance_base_url or base.rest,
        streams=settings.binance_ws_base_url or base.streams,
        trade_rest=settings.binance_trade_base_url or base.trade_rest,
        ws_api=settings.binance_ws_api_url or base.ws_api,
    )
    return BinanceConfig(
        endpoints=endpoints,
        credentials=_credentials(settings) if execution else None,
        reconnect_delay_ms=settings.ws_reconnect_delay,
        live=settings.execution_mode == "binance_spot",
    )


def _credentials(settings: Settings) -> Credentials:
    key, secret = settings.binance_api_key, settings.binance_api_secret
    if not key or not secret:
        missing = " and ".join(
            name
            for name, value in (
                ("VELOZ_BINANCE_API_KEY", key),
                ("VELOZ_BINANCE_API_SECRET", secret),
            )
            if not value
        )
        raise SettingsError(
            f"VELOZ_EXECUTION_MODE={settings.execution_mode} needs {missing} "
            "(or the same name with _FILE): trading at Binance needs an API key"
        )
    try:
        signer = signer_for(secret)
    except ValueError as exc:  # the message names the problem, never the secret
        raise SettingsError(f"VELOZ_BINANCE_API_SECRET: {exc}") from None
    return Credentials(key, signer)
