"""Settings: the `VELOZ_*` environment (and an optional env file such as
/etc/veloz/veloz.env), validated once at start and turned into component configs.

An invalid value stops the start with one line naming the variable and what it accepts.
"""

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from veloz.engine.kernel import EngineConfig
from veloz.execution.venues.sim import SimVenueConfig
from veloz.journal.writer import JournalConfig
from veloz.market.sim import SimMarketConfig
from veloz.model.instruments import split_symbol
from veloz.persistence.service import HistoryConfig
from veloz.persistence.urls import dialect_of, redact
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import RiskLimitsError, load_limits

logger = logging.getLogger(__name__)

SECRET_FIELDS = frozenset({"binance_api_key", "binance_api_secret"})


class SettingsError(ValueError):
    """Invalid configuration, already phrased for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VELOZ_", extra="ignore", frozen=True)

    preset: Literal["dev", "release", "test"] = "dev"
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    log_level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    market_source: Literal["sim", "binance_rest", "binance_ws"] = "sim"
    market_symbol: str = "BTCUSDT"
    sim_seed: int | None = None
    sim_tick_interval_ms: int = Field(200, gt=0)
    sim_latency_ms: float = Field(1.0, ge=0)
    sim_balances: str = "USDT=100000"
    execution_mode: Literal["sim_engine", "binance_testnet_spot", "binance_spot"] = "sim_engine"
    binance_api_key: str | None = None
    binance_api_secret: str | None = None
    wal_dir: Path = Path("./data/wal")
    wal_max_size: int = Field(64 * 1024 * 1024, ge=4096)
    wal_max_files: int = Field(10, ge=1)
    wal_sync: bool = True
    wal_checkpoint_interval: int = Field(1000, ge=1)
    database_url: str = "sqlite:///./data/veloz.db"
    database_migrate: bool = True
    store_snapshot_interval_s: float = Field(60.0, gt=0)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=64 * 1024 * 1024)
    order_rate_limit: float = Field(10, gt=0)
    metrics: bool = True
    log_dir: Path | None = None
    risk_limits_file: Path | None = None

    @field_validator("market_symbol")
    @classmethod
    def _symbols_are_tradable(cls, value: str) -> str:
        symbols = [s.strip().upper() for s in value.split(",") if s.strip()]
        if not symbols:
            raise ValueError("at least one symbol is required")
        for symbol in symbols:
            split_symbol(symbol)
        return ",".join(symbols)

    @field_validator("database_url")
    @classmethod
    def _database_url_names_a_store(cls, value: str) -> str:
        if value.lower() != "none":
            dialect_of(value)
        return value

    @field_validator("sim_balances")
    @classmethod
    def _balances_parse(cls, value: str) -> str:
        parse_balances(value)
        return value

    @property
    def risk_limits_path(self) -> Path:
        if self.risk_limits_file is not None:
            return self.risk_limits_file
        return Path(
            "/etc/veloz/risk_limits.yaml"
            if self.preset == "release"
            else "./config/risk_limits.yaml"
        )

    def risk_config(self) -> RiskConfig:
        """The limits file if there is one (an invalid one stops the start), else the
        built-in limits; and the engine-wide order rate."""
        path = self.risk_limits_path
        if not path.exists():
            logger.warning("no risk limits file at %s: using the built-in limits", path)
            return RiskConfig(
                order_rate_limit=self.order_rate_limit, limits_path=str(path), watch=True
            )
        try:
            loaded = load_limits(path)
        except RiskLimitsError as exc:
            raise SettingsError(f"VELOZ_RISK_LIMITS_FILE: {exc}") from None
        return RiskConfig(
            order_rate_limit=self.order_rate_limit, limits=loaded, limits_path=str(path), watch=True
        )

    def secret_values(self) -> list[str]:
        """The secrets in force, so the logs can make sure never to show them."""
        return [v for name in SECRET_FIELDS if (v := getattr(self, name))]

    def public_view(self) -> dict[str, Any]:
        """Every setting as it is in force, secrets as "***" when set (never their value)."""
        view = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            view[name] = "***" if view.get(name) else None
        view["database_url"] = redact(self.database_url)
        return view

    def history_config(self) -> HistoryConfig | None:
        """The history store's settings; None when VELOZ_DATABASE_URL=none turns it off."""
        if self.database_url.lower() == "none":
            return None
        return HistoryConfig(
            url=self.database_url,
            migrate=self.database_migrate,
            snapshot_interval_s=self.store_snapshot_interval_s,
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.market_symbol.split(","))

    def engine_config(self) -> EngineConfig:
        if self.market_source != "sim" or self.execution_mode != "sim_engine":
            raise SettingsError(
                "VELOZ_MARKET_SOURCE=sim and VELOZ_EXECUTION_MODE=sim_engine are the only "
                "sources this version runs; Binance market data and execution are not built yet"
            )
        return EngineConfig(
            journal=JournalConfig(
                directory=str(self.wal_dir),
                max_segment_bytes=self.wal_max_size,
                max_files=self.wal_max_files,
                sync=self.wal_sync,
                checkpoint_interval=self.wal_checkpoint_interval,
            ),
            market=SimMarketConfig(
                symbols=self.symbols, seed=self.sim_seed, tick_interval_ms=self.sim_tick_interval_ms
            ),
            venue=SimVenueConfig(
                latency_ms=self.sim_latency_ms, starting_balances=parse_balances(self.sim_balances)
            ),
            risk=self.risk_config(),
            record_latency=self.metrics,
        )


def parse_balances(text: str) -> dict[str, Decimal]:
    """`USDT=100000,BTC=1` -> {"USDT": Decimal("100000"), "BTC": Decimal("1")}."""
    balances: dict[str, Decimal] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        asset, sep, amount = item.partition("=")
        try:
            value = Decimal(amount)
        except ArithmeticError:
            value = Decimal(-1)
        if not sep or not asset.isalnum() or not value.is_finite() or value < 0:
            raise ValueError(f"expected ASSET=AMOUNT pairs like USDT=100000, got {item!r}")
        balances[asset.upper()] = value
    return balances


def load_settings(env_file: Path | None = None) -> Settings:
    """Read the environment (and `env_file`); raise SettingsError with one clear line."""
    try:
        return Settings(_env_file=env_file)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "*"
        shown = "***" if field in SECRET_FIELDS else repr(error.get("input"))
        if field == "database_url":
            shown = repr(redact(str(error.get("input"))))
        raise SettingsError(f"VELOZ_{field.upper()}: {error['msg']} (got {shown})") from None
