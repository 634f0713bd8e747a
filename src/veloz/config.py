"""Settings: the `VELOZ_*` environment (and an optional env file such as
/etc/veloz/veloz.env), validated once at start and turned into the configs of the
components below the kernel (journal, risk, history store, auth). The live engine's own
config, with its venue and market source, is built by the runtime
(`veloz.runtime.engine_config`), so settings never depend on the kernel or the adapters.

An invalid value stops the start with one line naming the variable and what it accepts.
"""

import difflib
import ipaddress
import logging
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from veloz.auth.service import AuthConfig, gateway_token
from veloz.auth.tokens import MIN_SECRET_BYTES
from veloz.data.store import data_root
from veloz.journal.writer import JournalConfig
from veloz.model.instruments import split_symbol
from veloz.observability.memory import DEFAULT_BYTES as DEFAULT_POOL_BYTES
from veloz.observability.memory import MIN_BYTES as MIN_POOL_BYTES
from veloz.persistence.service import HistoryConfig
from veloz.persistence.urls import dialect_of, redact
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import RiskLimitsError, load_limits

if TYPE_CHECKING:  # redis-py is imported only by engines that publish to Redis
    from veloz.persistence.redis_events import RedisConfig

logger = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis", "rediss", "unix")

SECRET_FIELDS = frozenset(
    {
        "binance_api_key",
        "binance_api_secret",
        "jwt_secret",
        "admin_password",
        "engine_api_key",
        "redis_password",
    }
)
# Each may also come from a file named by VELOZ_<NAME>_FILE (Kubernetes and Docker secrets).
FILE_FIELDS = SECRET_FIELDS | {"database_url", "redis_url"}
# Known placeholders nobody should run a release with, whatever their length.
_WEAK_SECRETS = ("changeme", "secret", "password", "veloz", "example", "test")


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
    # Directories `module:Class` strategies are imported from, `:`-separated.
    strategy_path: str = ""
    # Threads for blocking work (password hashing, file work handed off the event loop).
    worker_threads: int = Field(4, ge=1, le=256)
    # Bytes the engine's in-memory buffers (replay ring, retained final orders, stream
    # queues) may hold together; see veloz.observability.memory.
    memory_pool_size: int = Field(DEFAULT_POOL_BYTES, ge=MIN_POOL_BYTES, le=1 << 40)
    sim_tick_interval_ms: int = Field(200, gt=0)
    sim_latency_ms: float = Field(1.0, ge=0)
    sim_balances: str = "USDT=100000"
    execution_mode: Literal["sim_engine", "binance_testnet_spot", "binance_spot"] = "sim_engine"
    binance_api_key: str | None = Field(None, repr=False)
    # An HMAC secret, or an Ed25519 private key in PEM (best from VELOZ_BINANCE_API_SECRET_FILE).
    binance_api_secret: str | None = Field(None, repr=False)
    # Binance URLs; unset, each follows the execution mode (the spot testnet for
    # binance_testnet_spot, production otherwise). A URL set here always wins.
    binance_base_url: str | None = None  # market data REST
    binance_ws_base_url: str | None = None  # market streams, e.g. wss://stream.binance.com:9443/ws
    binance_trade_base_url: str | None = None  # trading REST
    binance_ws_api_url: str | None = None  # WebSocket API (the user data stream)
    ws_reconnect_delay: int = Field(5000, gt=0, le=600_000)  # ms before the first reconnect
    # Cancel orders found open at the venue that the journal does not know (else: report).
    auto_cancel_orphaned: bool = False
    wal_dir: Path = Path("./data/wal")
    wal_max_size: int = Field(64 * 1024 * 1024, ge=4096)
    wal_max_files: int = Field(10, ge=1)
    wal_sync: bool = True
    wal_checkpoint_interval: int = Field(1000, ge=1)
    database_url: str = Field("sqlite:///./data/veloz.db", repr=False)
    database_migrate: bool = True
    store_snapshot_interval_s: float = Field(60.0, gt=0)
    # Where the history projector runs: the engine's child process, in the engine, or
    # run separately (`veloz projector`, e.g. a Kubernetes sidecar).
    projector: Literal["process", "inline", "external"] = "process"
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=64 * 1024 * 1024)
    order_rate_limit: float = Field(10, gt=0)
    metrics: bool = True
    log_dir: Path | None = None
    risk_limits_file: Path | None = None
    # Security: on by default in the release preset only (see `auth_on`).
    auth_enabled: bool | None = None
    jwt_secret: str | None = Field(None, repr=False)
    admin_password: str | None = Field(None, repr=False)
    access_token_ttl_s: int = Field(900, ge=30, le=86_400)
    refresh_token_ttl_s: int = Field(7 * 86_400, ge=60)
    max_failed_logins: int = Field(5, ge=1)
    lockout_s: int = Field(900, ge=1)
    api_rate_limit: float = Field(100, gt=0)  # requests/s per credential
    # Per client address; behind a proxy not listed in VELOZ_TRUSTED_PROXIES every client
    # shares the proxy's address, hence a generous default.
    api_ip_rate_limit: float = Field(1000, gt=0)
    login_rate_limit: float = Field(1, gt=0)  # login attempts/s per client address
    cors_origins: str = ""  # comma list of allowed origins; empty: no cross-origin access
    trusted_proxies: str = ""  # comma list of proxy addresses/CIDRs whose X-Forwarded-For counts
    # Backtest and optimisation jobs run over the API (docs/research-api.md): where their
    # records and results are kept (default <VELOZ_DATA_DIR>/research), how many run at
    # once (the rest wait), and the most evaluations one optimisation may plan.
    research_dir: Path | None = None
    research_max_jobs: int = Field(2, ge=1, le=64)
    research_max_evaluations: int = Field(100_000, ge=1)
    # The Ray cluster (ray://host:10001) that optimisations asking for `executor: ray` run
    # on; unset: a local Ray instance. A request may not name its own: the engine would
    # connect wherever a trader pointed it.
    research_ray_address: str | None = None
    # Journaled events to a Redis stream for the gateways (docs/operations/scaling.md):
    # redis://[:password@]host:port/db, or Sentinel (`host:port,host:port` and the master's
    # name); unset, nothing is published. The stream's key and its approximate length.
    redis_url: str | None = Field(None, repr=False)
    redis_sentinels: str = ""
    redis_master: str | None = None
    # With Sentinels: the password of the master (and its replicas) they name, as its
    # `requirepass`; a URL carries its own. The Sentinels themselves are asked without one.
    redis_password: str | None = Field(None, repr=False)
    redis_stream: str = Field("veloz:events", min_length=1)
    redis_stream_maxlen: int = Field(100_000, ge=1_000)
    # A gateway replica (`veloz gateway`, docs/operations/scaling.md): the engine's HTTP
    # API it forwards commands to, and its own key for the engine when auth is on (a
    # viewer key is enough: commands carry their caller's credential). Its name in logs
    # and metrics; the host name if unset.
    engine_url: str | None = None
    engine_api_key: str | None = Field(None, repr=False)
    gateway_name: str = ""
    # A gateway with a store: the spool its audit records go to before each answer, and
    # that it imports into the store (docs/operations/scaling.md). One gateway per
    # directory; it must outlive the process. The engine's spool is beside its journal.
    gateway_audit_dir: Path = Path("./data/gateway-audit")
    # How long the stream hub gathers events before it writes them to each SSE and
    # WebSocket client, in ms; unset: 0 on the engine, 25 on a gateway. With a thousand
    # clients the socket writes, not the events, are what costs (docs/operations/scaling.md).
    stream_flush_ms: float | None = Field(None, ge=0, le=1000)

    @field_validator("market_symbol")
    @classmethod
    def _symbols_are_tradable(cls, value: str) -> str:
        symbols = [s.strip().upper() for s in value.split(",") if s.strip()]
        if not symbols:
            raise ValueError("at least one symbol is required")
        for symbol in symbols:
            split_symbol(symbol)
        return ",".join(symbols)

    @field_validator(
        "binance_base_url", "binance_ws_base_url", "binance_trade_base_url", "binance_ws_api_url"
    )
    @classmethod
    def _urls_have_a_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            raise ValueError("expected an http(s):// or ws(s):// URL with a host")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_names_a_store(cls, value: str) -> str:
        if value.lower() != "none":
            dialect_of(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_names_a_server(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
            raise ValueError("expected redis://[:password@]host:port/db (or rediss://, unix://)")
        try:
            parts.port  # noqa: B018  # raises for a port that is not a number
        except ValueError:
            raise ValueError("the port must be a number") from None
        if parts.scheme != "unix" and parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise ValueError("the database is a number: redis://host:6379/0")
        return value.strip()

    @field_validator("engine_url")
    @classmethod
    def _engine_url_is_http(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected the engine's HTTP address, e.g. http://engine:8080")
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_are_host_ports(cls, value: str) -> str:
        parse_host_ports(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for item in split_list(value):
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_urls(cls, value: str) -> str:
        for item in split_list(value):
            if item != "*" and not item.startswith(("http://", "https://")):
                raise ValueError(f"an origin is http(s)://host[:port], got {item!r}")
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

    @property
    def data_directory(self) -> Path:
        """VELOZ_DATA_DIR (the data store, and the files jobs over the API may read)."""
        return data_root()

    @property
    def research_directory(self) -> Path:
        return self.research_dir if self.research_dir is not None else data_root() / "research"

    def secret_values(self) -> list[str]:
        """The secrets in force, so the logs can make sure never to show them."""
        found = [v for name in SECRET_FIELDS if (v := getattr(self, name))]
        passwords = [
            urlsplit(url).password
            for url in (self.database_url, self.redis_url or "")
            if "@" in url
        ]
        # What gateways show the engine, derived from the JWT secret: as secret as it.
        derived = (
            [gateway_token(AuthConfig(enabled=True, jwt_secret=self.jwt_secret))]
            if self.jwt_secret
            else []
        )
        return found + [p for p in passwords if p] + derived

    @property
    def auth_on(self) -> bool:
        """VELOZ_AUTH_ENABLED, or by preset: on in release, off in dev and test."""
        return self.auth_enabled if self.auth_enabled is not None else self.preset == "release"

    def auth_config(self) -> AuthConfig:
        """The security settings; refuses to run with auth on and a missing or weak JWT
        secret, or without a store to keep users and keys in."""
        if not self.auth_on:
            return AuthConfig(enabled=False)
        secret = self.jwt_secret or ""
        if (
            len(secret.encode()) < MIN_SECRET_BYTES
            or len(set(secret)) < 8
            or any(weak in secret.lower() for weak in _WEAK_SECRETS)
        ):
            raise SettingsError(
                f"VELOZ_JWT_SECRET: with authentication on, a random secret of at least "
                f"{MIN_SECRET_BYTES} bytes is required (e.g. `openssl rand -hex 32`)"
            )
        if self.database_url.lower() == "none":
            raise SettingsError(
                "VELOZ_DATABASE_URL: authentication keeps users and keys in the history store"
            )
        return AuthConfig(
            enabled=True,
            jwt_secret=secret,
            access_ttl_s=self.access_token_ttl_s,
            refresh_ttl_s=self.refresh_token_ttl_s,
            admin_password=self.admin_password,
            max_failed_logins=self.max_failed_logins,
            lockout_s=self.lockout_s,
        )

    def public_view(self) -> dict[str, Any]:
        """Every setting as it is in force, secrets as "***" when set (never their value)."""
        view = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            view[name] = "***" if view.get(name) else None
        view["database_url"] = redact(self.database_url)
        view["redis_url"] = redact(self.redis_url) if self.redis_url else None
        # What is in force where the variable was left unset: the file actually read and
        # whether authentication is on (the preset decides), not `null`.
        view["risk_limits_file"] = str(self.risk_limits_path)
        view["auth_enabled"] = self.auth_on
        view["research_dir"] = str(self.research_directory)
        return view

    def redis_config(self) -> "RedisConfig | None":
        """Where journaled events are published; None when neither VELOZ_REDIS_URL nor
        VELOZ_REDIS_SENTINELS is set."""
        sentinels = parse_host_ports(self.redis_sentinels)
        if self.redis_url is not None and sentinels:
            raise SettingsError(
                "VELOZ_REDIS_URL and VELOZ_REDIS_SENTINELS are both set: use one of them"
            )
        if sentinels and not self.redis_master:
            raise SettingsError(
                "VELOZ_REDIS_MASTER: the name of the master the Sentinels watch is required "
                "with VELOZ_REDIS_SENTINELS"
            )
        if self.redis_url is None and not sentinels:
            return None
        if self.redis_password and not sentinels:
            raise SettingsError(
                "VELOZ_REDIS_PASSWORD is for Sentinel mode; a VELOZ_REDIS_URL carries its "
                "own (redis://:password@host:port/db)"
            )
        from veloz.persistence.redis_events import RedisConfig  # noqa: PLC0415

        return RedisConfig(
            url=self.redis_url,
            sentinels=sentinels,
            master=self.redis_master if sentinels else None,
            password=self.redis_password or None,
            stream=self.redis_stream,
            maxlen=self.redis_stream_maxlen,
        )

    def history_config(self) -> HistoryConfig | None:
        """The history store's settings; None when VELOZ_DATABASE_URL=none turns it off."""
        if self.database_url.lower() == "none":
            return None
        return HistoryConfig(
            url=self.database_url,
            migrate=self.database_migrate,
            snapshot_interval_s=self.store_snapshot_interval_s,
            projector_mode=self.projector,
        )

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.market_symbol.split(","))

    def journal_config(self) -> JournalConfig:
        return JournalConfig(
            directory=str(self.wal_dir),
            max_segment_bytes=self.wal_max_size,
            max_files=self.wal_max_files,
            sync=self.wal_sync,
            checkpoint_interval=self.wal_checkpoint_interval,
        )


def split_list(text: str) -> tuple[str, ...]:
    """`a, b,c` -> ("a", "b", "c") (comma lists such as VELOZ_CORS_ORIGINS)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_host_ports(text: str) -> tuple[tuple[str, int], ...]:
    """`a:26379, b:26379` -> (("a", 26379), ("b", 26379)) (VELOZ_REDIS_SENTINELS)."""
    found: list[tuple[str, int]] = []
    for item in split_list(text):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port pairs like redis-1:26379, got {item!r}")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


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


def _from_files(env_file: Path | None = None) -> dict[str, str]:
    """Secrets named by VELOZ_<NAME>_FILE, in the environment or in `env_file` (the
    environment wins, as for every setting): the file's content, without its final
    newline."""
    variables = {
        key: value
        for key, value in (dotenv_values(env_file) if env_file is not None else {}).items()
        if value is not None
    } | dict(os.environ)
    found: dict[str, str] = {}
    for name in sorted(FILE_FIELDS):
        path = variables.get(f"VELOZ_{name.upper()}_FILE")
        if not path:
            continue
        if variables.get(f"VELOZ_{name.upper()}"):
            raise SettingsError(f"VELOZ_{name.upper()} and VELOZ_{name.upper()}_FILE are both set")
        try:
            found[name] = Path(path).read_text().rstrip("\r\n")
        except OSError as exc:
            raise SettingsError(
                f"VELOZ_{name.upper()}_FILE: cannot read {path}: {exc.strerror or exc}"
            ) from None
    return found


# VELOZ_* names that are not the engine's but belong to the tools around it (the backup
# scripts, `veloz validate-deployment`, the runbooks' shell, the tests): no warning.
_OTHER_TOOLS = frozenset(
    {
        "VELOZ_BACKUP_DIR",
        "VELOZ_S3_BUCKET",
        "VELOZ_S3_ENDPOINT_URL",
        "VELOZ_CONFIG_DIR",
        "VELOZ_ENV_FILE",
        "VELOZ_HOME",
        "VELOZ_BIN",
        "VELOZ_LOCK_DIR",
        "VELOZ_PGDATA",
        "VELOZ_API_KEY",
        "VELOZ_KEY",
        "VELOZ_DATA_DIR",
    }
)
_OTHER_TOOLS_PATTERN = re.compile(
    r"VELOZ_(BACKUP_KEEP_|VERIFY_MAX_AGE_|PG_|TEST_)[A-Z0-9_]+"
    r"|VELOZ_[A-Z0-9]+_URL"  # validate-deployment's VELOZ_<ENV>_URL
)


def unknown_variables(env_file: Path | None = None) -> list[str]:
    """One line for each VELOZ_* name in the environment (and `env_file`) that neither the
    engine nor the tools around it read, with the setting it most likely meant: without
    this a typo (`VELOZ_PROT=9090`) would be ignored without a word."""
    names = set(os.environ)
    if env_file is not None:
        names |= set(dotenv_values(env_file))
    known = {f"VELOZ_{name.upper()}" for name in Settings.model_fields}
    known |= {f"VELOZ_{name.upper()}_FILE" for name in FILE_FIELDS}
    found: list[str] = []
    for name in sorted(n for n in names if n.startswith("VELOZ_")):
        if name in known or name in _OTHER_TOOLS or _OTHER_TOOLS_PATTERN.fullmatch(name):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        found.append(f"{name} is not a setting and is ignored{hint}")
    return found


def load_settings(env_file: Path | None = None) -> Settings:
    """Read the environment (and `env_file`); raise SettingsError with one clear line."""
    from_files = _from_files(env_file)
    try:
        return Settings(_env_file=env_file, **from_files)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "*"
        shown = "***" if field in SECRET_FIELDS else repr(error.get("input"))
        if field in ("database_url", "redis_url"):
            shown = repr(redact(str(error.get("input"))))
        raise SettingsError(f"VELOZ_{field.upper()}: {error['msg']} (got {shown})") from None
