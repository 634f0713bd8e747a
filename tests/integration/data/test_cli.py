"""`veloz data import|list|inspect` end to end, as a user runs them."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.sample_bars import sample_path
from tests.unit.data.kline_files import kline_row, minutes, write_zip

REPO = Path(__file__).resolve().parents[3]
JAN_2024_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
JAN_2025_MS = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)


def veloz(store: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veloz", "data", *map(str, args)],
        cwd=REPO,
        env={**os.environ, "VELOZ_DATA_DIR": str(store)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_import_both_timestamp_forms_then_list_and_inspect(tmp_path: Path) -> None:
    store = tmp_path / "market"
    # January 2024 in milliseconds with minute 2 missing; January 2025 in microseconds
    old = write_zip(
        tmp_path,
        "BTCUSDT-1m-2024-01.zip",
        [kline_row(t) for t in minutes(JAN_2024_MS, 4, skip=frozenset({2}))],
    )
    new = write_zip(
        tmp_path,
        "BTCUSDT-1m-2025-01.zip",
        [kline_row(t, micro=True) for t in minutes(JAN_2025_MS, 2)],
    )
    done = veloz(store, "import", old, new)
    assert done.returncode == 0, done.stderr
    assert f"{old}: 3 bars (binance, ms) -> binance/BTCUSDT/1m" in done.stdout
    assert f"{new}: 2 bars (binance, us) -> binance/BTCUSDT/1m" in done.stdout
    assert "binance/BTCUSDT/1m: 5 added, 0 already stored, 0 replaced" in done.stdout
    assert _tree(store / "binance" / "BTCUSDT" / "1m") == ["2024-01.parquet", "2025-01.parquet"]

    again = veloz(store, "import", old)
    assert "0 added, 3 already stored" in again.stdout

    listed = veloz(store, "list")
    assert listed.stdout.split() == [
        "binance/BTCUSDT/1m", "2024-01-01T00:00:00Z", "..", "2025-01-01T00:01:00Z", "5", "bars",
    ]  # fmt: skip
    inspected = veloz(store, "inspect", "btcusdt")
    assert inspected.returncode == 0
    minutes_between = (JAN_2025_MS - JAN_2024_MS) // 60_000
    expected = minutes_between + 2
    assert f"bars      5 of {expected} ({expected - 5} missing)" in inspected.stdout
    assert "gap after 2024-01-01T00:01:00Z until 2024-01-01T00:03:00Z: 1 bars missing" in (
        inspected.stdout
    )
    assert "gaps      2" in inspected.stdout


def test_the_nautilus_sample_imports_in_place(tmp_path: Path) -> None:
    store = tmp_path / "market"
    sample = sample_path()
    before = sample.stat().st_mtime_ns
    done = veloz(store, "import", sample, "--symbol", "BTC-PERP", "--venue", "sim")
    assert done.returncode == 0, done.stderr
    with sample.open() as lines:
        rows = sum(1 for _ in lines) - 1
    assert f"sim/BTC-PERP/1m: {rows} added" in done.stdout
    assert sample.stat().st_mtime_ns == before
    inspected = veloz(store, "inspect", "BTC-PERP", "--interval", "1m")
    assert "first     2021-12-31T23:01:00Z" in inspected.stdout
    assert f"bars      {rows} of" in inspected.stdout


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ("import", "missing.zip"), "missing.zip: no such file"),
        (b"not a zip", ("import", "BTCUSDT-1m-2024-01.zip"), "not a readable zip file"),
        (
            b"open,high\n1,2\n",
            ("import", "bars.csv", "--symbol", "X"),
            "line 1: 2 fields, expected 6",
        ),
        (None, ("import", "x.zip", "--format", "csv"), "--format must be one of"),
        (None, ("import", "x.zip", "--interval", "7m"), "unknown interval '7m'"),
        (None, ("inspect", "ETHUSDT"), "no data for ETHUSDT"),
        (None, ("inspect", "../etc"), "bad symbol '../etc'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, setup: bytes | None, args: tuple[str, ...], message: str
) -> None:
    store = tmp_path / "market"
    name = next((a for a in args if "." in a and not a.startswith("..")), None)
    if setup is not None and name is not None:
        (tmp_path / name).write_bytes(setup)
    done = veloz(store, *(str(tmp_path / a) if a == name else a for a in args))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("veloz: ") and done.stderr.count("\n") == 1
    assert message in done.stderr
    assert _tree(store) == []
