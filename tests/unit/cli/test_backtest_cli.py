"""`veloz backtest run` from the outside: the summary and the fills it writes, and every
kind of bad input refused with exit 2, a line naming what is wrong, and nothing written."""

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from veloz.cli.main import app

FIXTURE = Path(__file__).parents[2] / "fixtures" / "backtest" / "golden_bars.csv"


def args(*extra: str, data: Path = FIXTURE) -> list[str]:
    return [
        "backtest",
        "run",
        "--strategy",
        "ema_cross",
        "--param",
        "fast=2",
        "--param",
        "slow=3",
        "--param",
        "qty=1",
        "--data",
        str(data),
        "--symbol",
        "BTCUSDT",
        "--balance",
        "USDT=1000",
        *extra,
    ]


def test_summary_and_fills(runner: CliRunner, tmp_path: Path) -> None:
    summary, fills = tmp_path / "summary.json", tmp_path / "fills.csv"
    result = runner.invoke(
        app,
        args(
            *("--account", "margin", "--fee-bps", "10", "--fill", "close"),
            *("--json", str(summary), "--orders", str(fills)),
        ),
    )
    assert result.exit_code == 0, result.output
    written = json.loads(summary.read_text())
    assert written["bars"] == 11
    assert (written["orders"], written["fills"]) == (3, 3)
    assert Decimal(written["final_equity"]) == Decimal("978.51")
    assert Decimal(written["final_position"]) == 1
    assert Decimal(written["fees"]) == Decimal("0.49")
    assert (written["start"], written["end"]) == ("2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z")
    assert written["seconds"] > 0 and written["bars_per_s"] > 0
    rows = list(csv.DictReader(fills.open()))
    assert [(r["time"], r["side"], Decimal(r["qty"]), Decimal(r["price"])) for r in rows] == [
        ("2024-01-01T00:04:00Z", "BUY", Decimal(1), Decimal(110)),
        ("2024-01-01T00:06:00Z", "SELL", Decimal(2), Decimal(90)),
        ("2024-01-01T00:08:00Z", "BUY", Decimal(2), Decimal(100)),
    ]
    assert [Decimal(r["fee"]) for r in rows] == [Decimal("0.11"), Decimal("0.18"), Decimal("0.2")]
    assert "final_equity" in result.output


def test_next_open_fills(runner: CliRunner, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    result = runner.invoke(
        app, args("--account", "margin", "--fill", "next_open", "--json", str(summary))
    )
    assert result.exit_code == 0, result.output
    assert Decimal(json.loads(summary.read_text())["final_equity"]) == Decimal("970.51")


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _unordered(tmp_path: Path) -> Path:
    lines = FIXTURE.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    path = tmp_path / "unordered.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--strategy", "momentum"], "unknown strategy 'momentum'"),
        (["--param", "speed=3"], "unknown parameter speed"),
        (["--param", "fast=0"], "parameter fast"),
        (["--param", "qty=abc"], "qty"),
        (["--fill", "tomorrow"], "--fill must be one of close|next_open"),
        (["--account", "futures"], "--account must be one of cash|margin"),
        (["--fee-bps", "-1"], "--fee-bps must be a finite number of at least 0"),
        (["--balance", "USDT"], "--balance"),
        (["--symbol", "ETHUSDT"], "one --symbol per --data"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(
    runner: CliRunner, tmp_path: Path, change: list[str], message: str
) -> None:
    summary = tmp_path / "summary.json"
    base = args("--json", str(summary))
    # The later of two single-valued options wins; repeatable ones add.
    result = runner.invoke(app, base + change)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not summary.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.csv", "missing.csv"),
        (lambda tmp: _written(tmp / "empty.csv", ""), "empty.csv"),
        (_unordered, "unordered.csv: line 5"),
    ],
)
def test_bad_data_exits_2_naming_the_file(
    runner: CliRunner, tmp_path: Path, make: object, message: str
) -> None:
    data = make(tmp_path)  # type: ignore[operator]
    summary = tmp_path / "summary.json"
    result = runner.invoke(app, args("--json", str(summary), data=data))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not summary.exists()


def test_start_and_end_cut_the_period(runner: CliRunner, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    period = ("--start", "2024-01-01T00:03:00Z", "--end", "2024-01-01T00:09:00Z")
    result = runner.invoke(app, args(*period, "--json", str(summary)))
    assert result.exit_code == 0, result.output
    written = json.loads(summary.read_text())
    assert (written["bars"], written["start"], written["end"]) == (
        6,
        "2024-01-01T00:03:00Z",
        "2024-01-01T00:08:00Z",
    )


def test_a_period_without_bars_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    result = runner.invoke(app, args("--start", "2030-01-01", "--json", str(summary)))
    assert result.exit_code == 2, result.output
    assert "no bars between 2030-01-01 and the end" in result.output
    assert not summary.exists()
