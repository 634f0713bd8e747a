"""Settings from the VELOZ_* environment: defaults, one clear line naming the variable for
each invalid value, secrets never echoed, balances parsing and the engine config built."""

import os
from decimal import Decimal
from pathlib import Path

import pytest

from veloz.config import Settings, SettingsError, load_settings, parse_balances
from veloz.runtime.engine_config import engine_config

D = Decimal
SECRET = "veloz-test-secret-5f1c9e07d2"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No VELOZ_* variable from the caller's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("VELOZ_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults():
    settings = load_settings()
    assert settings.preset == "dev"
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert settings.log_level == "info"
    assert settings.market_source == "sim" and settings.execution_mode == "sim_engine"
    assert settings.symbols == ("BTCUSDT",)
    assert settings.sim_seed is None and settings.sim_tick_interval_ms == 200
    assert parse_balances(settings.sim_balances) == {"USDT": D(100000)}
    assert settings.wal_dir == Path("./data/wal")
    assert settings.wal_sync is True
    assert settings.wal_max_size == 64 * 1024 * 1024 and settings.wal_max_files == 10
    assert settings.binance_api_key is None and settings.binance_api_secret is None


def test_values_are_read_from_the_environment(clean_env):
    clean_env.setenv("VELOZ_PORT", "9091")
    clean_env.setenv("VELOZ_MARKET_SYMBOL", " btcusdt , ethusdt,")
    clean_env.setenv("VELOZ_WAL_SYNC", "false")
    clean_env.setenv("VELOZ_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.port == 9091
    assert settings.symbols == ("BTCUSDT", "ETHUSDT")
    assert settings.wal_sync is False
    assert settings.log_level == "debug"


def test_an_env_file_is_read_and_the_environment_wins(clean_env, tmp_path):
    env_file = tmp_path / "veloz.env"
    env_file.write_text("VELOZ_PORT=9092\nVELOZ_HOST=127.0.0.1\n")
    assert load_settings(env_file).port == 9092
    clean_env.setenv("VELOZ_PORT", "9093")
    settings = load_settings(env_file)
    assert settings.port == 9093 and settings.host == "127.0.0.1"


INVALID = [
    ("VELOZ_PORT", "http"),
    ("VELOZ_PORT", "65536"),
    ("VELOZ_PORT", "-1"),
    ("VELOZ_PRESET", "prod"),
    ("VELOZ_LOG_LEVEL", "verbose"),
    ("VELOZ_MARKET_SOURCE", "nyse"),
    ("VELOZ_MARKET_SYMBOL", "DOGE"),
    ("VELOZ_MARKET_SYMBOL", "BTC-USDT"),
    ("VELOZ_MARKET_SYMBOL", " , "),
    ("VELOZ_SIM_SEED", "lucky"),
    ("VELOZ_SIM_TICK_INTERVAL_MS", "0"),
    ("VELOZ_SIM_LATENCY_MS", "-0.5"),
    ("VELOZ_SIM_BALANCES", "USDT"),
    ("VELOZ_SIM_BALANCES", "USDT=-5"),
    ("VELOZ_SIM_BALANCES", "USDT=lots"),
    ("VELOZ_EXECUTION_MODE", "binance_futures"),
    ("VELOZ_WAL_MAX_SIZE", "4095"),
    ("VELOZ_WAL_MAX_FILES", "0"),
    ("VELOZ_WAL_SYNC", "maybe"),
    ("VELOZ_WAL_CHECKPOINT_INTERVAL", "0"),
]


@pytest.mark.parametrize(("variable", "value"), INVALID)
def test_an_invalid_value_names_its_variable(clean_env, variable, value):
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message
    assert isinstance(refused.value, ValueError)


def test_the_bounds_themselves_are_valid(clean_env):
    for variable, value in [
        ("VELOZ_PORT", "65535"),
        ("VELOZ_WAL_MAX_SIZE", "4096"),
        ("VELOZ_WAL_MAX_FILES", "1"),
        ("VELOZ_SIM_LATENCY_MS", "0"),
        ("VELOZ_WAL_CHECKPOINT_INTERVAL", "1"),
    ]:
        clean_env.setenv(variable, value)
    settings = load_settings()
    assert settings.port == 65535 and settings.wal_max_size == 4096


@pytest.mark.parametrize(("variable", "value"), INVALID)
def test_the_secret_never_appears_in_an_error(clean_env, variable, value):
    clean_env.setenv("VELOZ_BINANCE_API_SECRET", SECRET)
    clean_env.setenv("VELOZ_BINANCE_API_KEY", SECRET + "-key")
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert SECRET not in str(refused.value)
    assert SECRET not in repr(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_the_secret_in_an_env_file_never_appears_in_an_error(tmp_path):
    env_file = tmp_path / "veloz.env"
    env_file.write_text(f"VELOZ_BINANCE_API_SECRET={SECRET}\nVELOZ_PORT=http\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(env_file)
    assert str(refused.value).startswith("VELOZ_PORT: ")
    assert SECRET not in str(refused.value)


def test_binance_execution_on_simulated_prices_is_refused(clean_env):
    clean_env.setenv("VELOZ_EXECUTION_MODE", "binance_spot")
    clean_env.setenv("VELOZ_BINANCE_API_KEY", "k")
    clean_env.setenv("VELOZ_BINANCE_API_SECRET", "s")
    with pytest.raises(SettingsError, match="VELOZ_MARKET_SOURCE=binance_ws"):
        engine_config(load_settings())


@pytest.mark.parametrize("mode", ["binance_spot", "binance_testnet_spot"])
@pytest.mark.parametrize(
    ("key", "secret", "missing"),
    [
        (None, None, "VELOZ_BINANCE_API_KEY and VELOZ_BINANCE_API_SECRET"),
        ("k", None, "VELOZ_BINANCE_API_SECRET"),
        (None, SECRET, "VELOZ_BINANCE_API_KEY"),
    ],
)
def test_trading_at_binance_needs_both_keys(clean_env, mode, key, secret, missing):
    clean_env.setenv("VELOZ_MARKET_SOURCE", "binance_ws")
    clean_env.setenv("VELOZ_EXECUTION_MODE", mode)
    for name, value in (("VELOZ_BINANCE_API_KEY", key), ("VELOZ_BINANCE_API_SECRET", secret)):
        if value:
            clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        engine_config(load_settings())
    assert f"needs {missing} " in str(refused.value)
    assert SECRET not in str(refused.value)


def test_an_unusable_ed25519_key_is_refused_without_showing_it(clean_env):
    clean_env.setenv("VELOZ_MARKET_SOURCE", "binance_ws")
    clean_env.setenv("VELOZ_EXECUTION_MODE", "binance_spot")
    clean_env.setenv("VELOZ_BINANCE_API_KEY", "k")
    broken = "-----BEGIN PRIVATE KEY-----\nsecretbits\n-----END PRIVATE KEY-----"
    clean_env.setenv("VELOZ_BINANCE_API_SECRET", broken)
    with pytest.raises(SettingsError, match="VELOZ_BINANCE_API_SECRET") as refused:
        engine_config(load_settings())
    assert "secretbits" not in str(refused.value)


def test_paper_trading_needs_no_keys_and_reads_production_prices(clean_env):
    clean_env.setenv("VELOZ_MARKET_SOURCE", "binance_ws")
    config = engine_config(load_settings())
    assert config.execution_mode == "sim_engine" and config.binance is not None
    assert config.binance.credentials is None and not config.binance.live
    assert config.binance.endpoints.streams == "wss://stream.binance.com:9443/ws"
    assert config.binance.endpoints.rest == "https://api.binance.com"


def test_testnet_defaults_every_url_to_the_testnet_and_a_set_url_wins(clean_env):
    clean_env.setenv("VELOZ_MARKET_SOURCE", "binance_ws")
    clean_env.setenv("VELOZ_EXECUTION_MODE", "binance_testnet_spot")
    clean_env.setenv("VELOZ_BINANCE_API_KEY", "k")
    clean_env.setenv("VELOZ_BINANCE_API_SECRET", SECRET)
    clean_env.setenv("VELOZ_BINANCE_TRADE_BASE_URL", "http://127.0.0.1:9/")
    clean_env.setenv("VELOZ_WS_RECONNECT_DELAY", "250")
    binance = engine_config(load_settings()).binance
    assert binance is not None and not binance.live
    endpoints = binance.endpoints
    assert endpoints.rest == "https://testnet.binance.vision"
    assert endpoints.streams == "wss://stream.testnet.binance.vision/ws"
    assert endpoints.ws_api == "wss://ws-api.testnet.binance.vision/ws-api/v3"
    assert endpoints.trade_rest == "http://127.0.0.1:9"  # set, so it wins
    assert binance.reconnect_delay_ms == 250
    assert binance.credentials is not None and binance.credentials.api_key == "k"
    assert SECRET not in repr(binance)


def test_live_binance_is_marked_live(clean_env):
    clean_env.setenv("VELOZ_MARKET_SOURCE", "binance_ws")
    clean_env.setenv("VELOZ_EXECUTION_MODE", "binance_spot")
    clean_env.setenv("VELOZ_BINANCE_API_KEY", "k")
    clean_env.setenv("VELOZ_BINANCE_API_SECRET", SECRET)
    binance = engine_config(load_settings()).binance
    assert binance is not None and binance.live
    assert binance.endpoints.trade_rest == "https://api.binance.com"


@pytest.mark.parametrize("url", ["ftp://x", "stream.binance.com", "https://"])
def test_a_binance_url_needs_a_scheme_and_a_host(clean_env, url):
    clean_env.setenv("VELOZ_BINANCE_WS_BASE_URL", url)
    with pytest.raises(SettingsError, match="VELOZ_BINANCE_WS_BASE_URL"):
        load_settings()


def test_engine_config_maps_every_field(clean_env, tmp_path):
    clean_env.setenv("VELOZ_WAL_DIR", str(tmp_path / "wal"))
    clean_env.setenv("VELOZ_WAL_MAX_SIZE", "8192")
    clean_env.setenv("VELOZ_WAL_MAX_FILES", "3")
    clean_env.setenv("VELOZ_WAL_SYNC", "0")
    clean_env.setenv("VELOZ_WAL_CHECKPOINT_INTERVAL", "77")
    clean_env.setenv("VELOZ_MARKET_SYMBOL", "ethusdt,BTCUSDT")
    clean_env.setenv("VELOZ_SIM_SEED", "42")
    clean_env.setenv("VELOZ_SIM_TICK_INTERVAL_MS", "50")
    clean_env.setenv("VELOZ_SIM_LATENCY_MS", "2.5")
    clean_env.setenv("VELOZ_SIM_BALANCES", "usdt=1000.50,BTC=2")
    clean_env.setenv("VELOZ_AUTO_CANCEL_ORPHANED", "true")
    config = engine_config(load_settings())
    assert config.auto_cancel_orphaned and config.binance is None
    assert config.journal.directory == str(tmp_path / "wal")
    assert config.journal.max_segment_bytes == 8192
    assert config.journal.max_files == 3
    assert config.journal.sync is False
    assert config.journal.checkpoint_interval == 77
    assert config.market.symbols == ("ETHUSDT", "BTCUSDT")
    assert config.market.seed == 42
    assert config.market.tick_interval_ms == 50
    assert config.venue.latency_ms == 2.5
    assert config.venue.starting_balances == {"USDT": D("1000.50"), "BTC": D(2)}


def test_settings_are_frozen():
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]  # the point: refused at run time too
    assert isinstance(settings, Settings)


# -- parse_balances ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("USDT=100000", {"USDT": D(100000)}),
        ("USDT=100000,BTC=1.5", {"USDT": D(100000), "BTC": D("1.5")}),
        ("usdt=1, eth=0.25 ,", {"USDT": D(1), "ETH": D("0.25")}),
        ("USDT=0", {"USDT": D(0)}),
        ("USDT=0.00000001", {"USDT": D("0.00000001")}),
        ("", {}),
        (" , ,", {}),
        ("1INCH=3", {"1INCH": D(3)}),
    ],
)
def test_parse_balances(text, expected):
    parsed = parse_balances(text)
    assert parsed == expected
    assert all(isinstance(v, Decimal) for v in parsed.values())


def test_parse_balances_keeps_exact_digits():
    assert str(parse_balances("USDT=1000.50")["USDT"]) == "1000.50"


@pytest.mark.parametrize(
    "text",
    [
        "USDT",
        "USDT=",
        "=5",
        "USDT=-1",
        "USDT=abc",
        "USDT=NaN",
        "USDT=sNaN",
        "USDT=Infinity",
        "USDT=1=2",
        "US-DT=5",
        "US DT=5",
        "USDT=1,BTC",
        "USDT:5",
    ],
)
def test_parse_balances_refuses(text):
    with pytest.raises(ValueError, match="ASSET=AMOUNT"):
        parse_balances(text)


def test_risk_limits_file_errors_stop_the_start_with_the_line(tmp_path):
    bad = tmp_path / "risk_limits.yaml"
    bad.write_text("defaults:\n  max_qty: lots\n")
    with pytest.raises(SettingsError, match=r"VELOZ_RISK_LIMITS_FILE: .*line 2: defaults.max_qty"):
        engine_config(Settings(risk_limits_file=bad))


def test_a_missing_risk_limits_file_means_the_builtin_limits(tmp_path):
    settings = Settings(risk_limits_file=tmp_path / "absent.yaml", order_rate_limit=7)
    config = engine_config(settings)
    assert config.risk.limits is None and config.risk.order_rate_limit == 7


def test_the_shipped_risk_limits_are_the_dev_default():
    config = engine_config(Settings())
    assert config.risk.limits is not None and config.risk.limits.source is not None
    assert config.risk.limits.source.endswith("config/risk_limits.yaml")


def test_the_database_url_names_a_store_and_its_password_is_never_shown(clean_env):
    clean_env.setenv("VELOZ_DATABASE_URL", f"postgresql://veloz:{SECRET}@db/veloz")
    settings = load_settings()
    assert settings.public_view()["database_url"] == "postgresql://veloz:***@db/veloz"
    history = settings.history_config()
    assert history is not None and history.url.startswith("postgresql://")
    clean_env.setenv("VELOZ_DATABASE_URL", f"mysql://veloz:{SECRET}@db/veloz")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value).startswith("VELOZ_DATABASE_URL: ")
    assert SECRET not in str(refused.value)


def test_database_url_none_turns_the_store_off(clean_env):
    clean_env.setenv("VELOZ_DATABASE_URL", "none")
    assert load_settings().history_config() is None
    clean_env.delenv("VELOZ_DATABASE_URL")
    default = Settings()
    assert default.history_config() is not None
    assert default.database_url == "sqlite:///./data/veloz.db"


def test_secrets_never_show_in_a_repr(clean_env, tmp_path):
    jwt_secret = "Zq81f0c9b27d4e6a8c3b5d7f9e1a2c4b6d8f0e2a4c6b8d"
    secret_file = tmp_path / "jwt"
    secret_file.write_text(jwt_secret + "\n")
    clean_env.setenv("VELOZ_JWT_SECRET_FILE", str(secret_file))
    clean_env.setenv("VELOZ_ADMIN_PASSWORD", SECRET + "-admin")
    clean_env.setenv("VELOZ_DATABASE_URL", f"postgresql://veloz:{SECRET}-db@db/veloz")
    clean_env.setenv("VELOZ_AUTH_ENABLED", "true")
    settings = load_settings()
    assert settings.jwt_secret == jwt_secret  # read from the file, final newline dropped
    auth = settings.auth_config()
    for shown in (repr(settings), str(settings), repr(auth), str(settings.public_view())):
        assert SECRET not in shown and jwt_secret not in shown
    assert {SECRET + "-admin", SECRET + "-db"} <= set(settings.secret_values())


def test_a_secret_file_named_in_the_env_file_is_read(clean_env, tmp_path):
    # What install.sh writes: /etc/veloz/veloz.env names the secret's file, not the secret.
    secret_file = tmp_path / "jwt_secret"
    secret_file.write_text("Zq81f0c9b27d4e6a8c3b5d7f9e1a2c4b6d8f0e2a4c6b8d\n")
    env_file = tmp_path / "veloz.env"
    env_file.write_text(f"VELOZ_PRESET=release\nVELOZ_JWT_SECRET_FILE={secret_file}\n")
    settings = load_settings(env_file)
    assert settings.jwt_secret == "Zq81f0c9b27d4e6a8c3b5d7f9e1a2c4b6d8f0e2a4c6b8d"
    assert settings.auth_config().enabled
    clean_env.setenv("VELOZ_JWT_SECRET", "from-the-environment")
    with pytest.raises(SettingsError, match="both set"):
        load_settings(env_file)


def test_a_secret_file_and_its_variable_together_are_refused(clean_env, tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text("x")
    clean_env.setenv("VELOZ_JWT_SECRET_FILE", str(secret_file))
    clean_env.setenv("VELOZ_JWT_SECRET", "y")
    with pytest.raises(SettingsError, match="both set"):
        load_settings()
    clean_env.delenv("VELOZ_JWT_SECRET")
    clean_env.setenv("VELOZ_JWT_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings()


@pytest.mark.parametrize(
    ("preset", "enabled", "secret", "message"),
    [
        ("release", None, None, "VELOZ_JWT_SECRET"),
        ("dev", "true", "short", "VELOZ_JWT_SECRET"),
        ("dev", "true", "changeme-changeme-changeme-changeme-1234", "VELOZ_JWT_SECRET"),
        ("dev", "true", "a" * 64, "VELOZ_JWT_SECRET"),
    ],
)
def test_auth_on_needs_a_strong_jwt_secret(clean_env, preset, enabled, secret, message):
    clean_env.setenv("VELOZ_PRESET", preset)
    if enabled:
        clean_env.setenv("VELOZ_AUTH_ENABLED", enabled)
    if secret:
        clean_env.setenv("VELOZ_JWT_SECRET", secret)
    settings = load_settings()
    assert settings.auth_on
    with pytest.raises(SettingsError, match=message) as refused:
        settings.auth_config()
    assert secret is None or secret not in str(refused.value)


def test_auth_is_off_in_dev_and_on_in_release_by_default(clean_env):
    assert not load_settings().auth_on
    clean_env.setenv("VELOZ_PRESET", "release")
    assert load_settings().auth_on


def test_the_public_view_shows_what_is_in_force_for_unset_variables(clean_env, tmp_path):
    view = load_settings().public_view()
    assert view["risk_limits_file"] == "config/risk_limits.yaml"  # dev default, not null
    assert view["auth_enabled"] is False  # the dev preset's choice
    clean_env.setenv("VELOZ_PRESET", "release")
    release = load_settings().public_view()
    assert release["risk_limits_file"] == "/etc/veloz/risk_limits.yaml"
    assert release["auth_enabled"] is True
    clean_env.setenv("VELOZ_RISK_LIMITS_FILE", str(tmp_path / "limits.yaml"))
    assert load_settings().public_view()["risk_limits_file"] == str(tmp_path / "limits.yaml")
