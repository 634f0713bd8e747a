"""What every CLI test runs with: no VELOZ_* variable from the caller's shell, a terminal
wide enough that rich does not wrap its tables, and typer's CliRunner."""

import os

import pytest
from typer.testing import CliRunner


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("VELOZ_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")
    return monkeypatch


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
