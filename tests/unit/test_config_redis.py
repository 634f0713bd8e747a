"""The VELOZ_REDIS_* settings: a URL or Sentinel, validated at start with the variable
named, and the password never shown."""

import os
import subprocess
import sys

import pytest

from tests.support.processes import veloz_env
from tests.unit.cli.test_config_check import check
from veloz.config import SettingsError, load_settings, unknown_variables

SECRET = "r3dis-Pa55word"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("VELOZ_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_without_redis_settings_nothing_is_published(clean_env):
    assert load_settings().redis_config() is None


def test_a_url_publishes_to_the_stream_with_its_password_hidden(clean_env):
    clean_env.setenv("VELOZ_REDIS_URL", f"redis://:{SECRET}@cache:6380/2")
    clean_env.setenv("VELOZ_REDIS_STREAM", "prod:events")
    clean_env.setenv("VELOZ_REDIS_STREAM_MAXLEN", "5000")
    settings = load_settings()
    config = settings.redis_config()
    assert config is not None
    assert (config.url, config.stream, config.maxlen) == (
        f"redis://:{SECRET}@cache:6380/2",
        "prod:events",
        5000,
    )
    assert config.name == "redis://:***@cache:6380/2"
    view = settings.public_view()
    assert view["redis_url"] == "redis://:***@cache:6380/2"
    assert SECRET not in repr(view) and SECRET not in repr(settings)
    assert SECRET in settings.secret_values()  # so the logs mask it
    assert not unknown_variables()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://cache:6379", "expected redis://"),
        (f"redis://:{SECRET}@cache:port/0", "port must be a number"),
        ("redis://cache:6379/zero", "database is a number"),
        ("redis:///0", "expected redis://"),
    ],
)
def test_a_bad_url_stops_the_start_naming_the_setting(clean_env, value, message):
    clean_env.setenv("VELOZ_REDIS_URL", value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value).startswith("VELOZ_REDIS_URL: ")
    assert message in str(refused.value)
    assert SECRET not in str(refused.value)


def test_sentinels_and_the_master_name(clean_env):
    clean_env.setenv("VELOZ_REDIS_SENTINELS", "s1:26379, 10.0.0.2:26380,[::1]:26381")
    clean_env.setenv("VELOZ_REDIS_MASTER", "veloz")
    config = load_settings().redis_config()
    assert config is not None
    assert config.url is None
    assert config.sentinels == (("s1", 26379), ("10.0.0.2", 26380), ("::1", 26381))
    assert config.master == "veloz"
    assert config.name == "sentinel veloz via s1:26379,10.0.0.2:26380,::1:26381"


def test_the_sentinel_masters_password_comes_from_a_file_and_is_never_shown(clean_env, tmp_path):
    (tmp_path / "redis_password").write_text(SECRET + "\n")
    clean_env.setenv("VELOZ_REDIS_SENTINELS", "s1:26379")
    clean_env.setenv("VELOZ_REDIS_MASTER", "veloz")
    clean_env.setenv("VELOZ_REDIS_PASSWORD_FILE", str(tmp_path / "redis_password"))
    settings = load_settings()
    config = settings.redis_config()
    assert config is not None and config.password == SECRET
    assert SECRET not in repr(config) and SECRET not in repr(settings)
    assert settings.public_view()["redis_password"] == "***"
    assert SECRET in settings.secret_values()  # so the logs mask it


def test_a_password_without_sentinels_is_refused(clean_env):
    clean_env.setenv("VELOZ_REDIS_URL", "redis://cache:6379/0")
    clean_env.setenv("VELOZ_REDIS_PASSWORD", SECRET)
    with pytest.raises(SettingsError, match="Sentinel mode"):
        load_settings().redis_config()


@pytest.mark.parametrize("value", ["s1", "s1:port", "s1:0", ":26379", "s1:26379,s2"])
def test_bad_sentinels_stop_the_start(clean_env, value):
    clean_env.setenv("VELOZ_REDIS_SENTINELS", value)
    clean_env.setenv("VELOZ_REDIS_MASTER", "veloz")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value).startswith("VELOZ_REDIS_SENTINELS: ")
    assert "expected host:port pairs" in str(refused.value)


def test_sentinels_need_a_master_and_exclude_a_url(clean_env):
    clean_env.setenv("VELOZ_REDIS_SENTINELS", "s1:26379")
    with pytest.raises(SettingsError, match=r"^VELOZ_REDIS_MASTER: "):
        load_settings().redis_config()
    clean_env.setenv("VELOZ_REDIS_MASTER", "veloz")
    clean_env.setenv("VELOZ_REDIS_URL", "redis://cache:6379/0")
    with pytest.raises(SettingsError, match="both set"):
        load_settings().redis_config()


def test_a_tiny_maxlen_is_refused(clean_env):
    clean_env.setenv("VELOZ_REDIS_STREAM_MAXLEN", "10")
    with pytest.raises(SettingsError, match=r"^VELOZ_REDIS_STREAM_MAXLEN: "):
        load_settings()


def test_the_url_may_come_from_a_file(clean_env, tmp_path):
    secret_file = tmp_path / "redis_url"
    secret_file.write_text(f"redis://:{SECRET}@cache:6379/0\n")
    clean_env.setenv("VELOZ_REDIS_URL_FILE", str(secret_file))
    config = load_settings().redis_config()
    assert config is not None and config.url == f"redis://:{SECRET}@cache:6379/0"


def test_config_check_and_the_engine_refuse_sentinels_without_a_master(tmp_path):
    env = {"VELOZ_REDIS_SENTINELS": "s1:26379"}
    done = check(tmp_path, "-q", **env)
    assert done.returncode == 2
    assert done.stderr.startswith("veloz: VELOZ_REDIS_MASTER: ")
    engine = subprocess.run(
        [sys.executable, "-m", "veloz", "engine", "--port", "0"],
        env=veloz_env(tmp_path / "wal", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert engine.returncode == 2
    assert engine.stderr.startswith("veloz: VELOZ_REDIS_MASTER: ")
