"""`veloz backtest run --data store:VENUE/SYMBOL/INTERVAL` reads the bars `veloz data import`
keeps under VELOZ_DATA_DIR, and gives the same backtest as the file they came from."""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.sample_bars import sample_path


def veloz(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"VELOZ_DATA_DIR": str(tmp_path / "market"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "veloz", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def backtest(tmp_path: Path, data: str, name: str) -> dict[str, object]:
    out = tmp_path / f"{name}.json"
    done = veloz(
        tmp_path,
        "backtest", "run", "--strategy", "ema_cross", "--data", data, "--symbol", "BTCUSDT",
        "--param", "fast=10", "--param", "slow=30", "--param", "qty=0.01", "--account",
        "margin", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary: dict[str, object] = json.loads(out.read_text())
    for timing in ("seconds", "bars_per_s"):
        del summary[timing]
    assert summary.pop("data") == [{"symbol": "BTCUSDT", "source": data, "bars": 45_031}]
    return summary


def test_stored_bars_backtest_as_their_file_does(tmp_path):
    bars = sample_path()
    imported = veloz(tmp_path, "data", "import", str(bars), "--symbol", "BTCUSDT")
    assert imported.returncode == 0, imported.stderr
    from_store = backtest(tmp_path, "store:binance/BTCUSDT/1m", "store")
    from_file = backtest(tmp_path, str(bars), "file")
    assert from_store["bars"] == 45_031 and int(str(from_store["fills"])) > 100
    assert from_store == from_file


def test_a_series_not_stored_is_one_line_and_exit_2(tmp_path):
    for spec in ("store:binance/ETHUSDT/1m", "store:binance/BTCUSDT", "store:Bad Venue/X/1m"):
        done = veloz(
            tmp_path, "backtest", "run", "--strategy", "ema_cross", "--data", spec, "--symbol", "X"
        )
        assert done.returncode == 2, (spec, done.stderr)
        assert done.stderr.startswith("veloz: ") and len(done.stderr.strip().splitlines()) == 1
        assert spec in done.stderr
