"""VELOZ_DATABASE_URL: which store it names, and never its password on show."""

import pytest

from veloz.persistence.timefmt import sqlite_text, utc_datetime
from veloz.persistence.urls import DatabaseUrlError, dialect_of, redact, sqlite_path


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("sqlite:///./data/veloz.db", "sqlite"),
        ("sqlite:////var/lib/veloz/veloz.db", "sqlite"),
        ("postgresql://veloz@db/veloz", "postgres"),
        ("postgres://veloz:pw@db:5433/veloz", "postgres"),
    ],
)
def test_the_dialect_is_named_by_the_scheme(url, dialect):
    assert dialect_of(url) == dialect


@pytest.mark.parametrize("url", ["mysql://x@y/z", "sqlite://", "sqlite:///", "./veloz.db", ""])
def test_anything_else_is_refused(url):
    with pytest.raises(DatabaseUrlError):
        dialect_of(url)


def test_sqlite_paths_relative_and_absolute():
    assert sqlite_path("sqlite:///./data/veloz.db") == "./data/veloz.db"
    assert sqlite_path("sqlite:////var/lib/veloz.db") == "/var/lib/veloz.db"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://veloz:s3cret@db:5432/veloz", "postgresql://veloz:***@db:5432/veloz"),
        (
            "postgresql://veloz@db/veloz?password=s3cret&sslmode=require",
            "postgresql://veloz@db/veloz?password=***&sslmode=require",
        ),
        ("postgresql://u:s3cret@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
        ("postgresql://u:s3cret@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        ("postgresql://veloz@db/veloz", "postgresql://veloz@db/veloz"),
        ("sqlite:///./data/veloz.db", "sqlite:///./data/veloz.db"),
    ],
)
def test_the_password_is_never_shown(url, shown):
    assert redact(url) == shown


def test_a_refused_url_is_named_without_its_password():
    with pytest.raises(DatabaseUrlError) as refused:
        dialect_of("mysql://veloz:s3cret@db/veloz")
    assert "s3cret" not in str(refused.value) and "veloz:***@db" in str(refused.value)


def test_times_keep_microseconds_and_read_as_sqlite_datetimes():
    ns = 1_795_374_052_544_890_405
    assert utc_datetime(ns).isoformat() == "2026-11-22T19:00:52.544890+00:00"
    assert sqlite_text(ns) == "2026-11-22 19:00:52.544890"
