"""`veloz optimize run` from the outside on NautilusTrader's BTC bars: the files it writes
and the table it prints, a request file, and every kind of bad input refused with exit 2,
one line naming what is wrong, and nothing written."""

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.support.sample_bars import sample_path
from veloz.cli.main import app


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def args(out: Path, *extra: str) -> list[str]:
    return [
        "optimize",
        "run",
        "--strategy",
        "ema_cross",
        "--data",
        str(sample_path()),
        "--symbol",
        "BTCUSDT",
        "--account",
        "margin",
        "--param",
        "qty=0.1",
        "--out",
        str(out),
        "--workers",
        "1",
        *extra,
    ]


def test_grid_run_writes_the_files_and_prints_the_top(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "grid"
    result = runner.invoke(
        app,
        args(out, "--space", "fast=5:20:5", "--space", "slow=values:30,60", "--top", "3",
             "--objective", "total_return"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "top 3 of 8 by total_return (grid)" in result.output
    assert "8 evaluations in" in result.output
    results = pl.read_parquet(out / "results.parquet")
    assert results.height == 8
    assert sorted(zip(results["fast"], results["slow"], strict=True)) == [
        (f, s) for f in (5, 10, 15, 20) for s in (30, 60)
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["score"] == max(results["total_return"])
    assert summary["data"] == [{"symbol": "BTCUSDT", "source": str(sample_path()), "bars": 45_031}]
    assert (out / "results.csv").read_text().splitlines()[0].startswith("trial,fast,slow,score")


def test_optuna_walk_forward_from_a_request_file(runner: CliRunner, tmp_path: Path) -> None:
    body = {
        "backtest": {
            "strategy": "ema_cross",
            "data": [{"symbol": "BTCUSDT", "source": str(sample_path())}],
            "params": {"qty": "0.1"},
            "account": "margin",
        },
        "space": {"fast": {"low": 2, "high": 50}, "slow": {"low": 20, "high": 200, "step": 10}},
        "method": "optuna",
        "trials": 16,
        "walk_forward": {"folds": 2, "in_sample": 0.7},
        "workers": 1,
    }
    file = tmp_path / "request.json"
    file.write_text(json.dumps(body))
    result = runner.invoke(
        app, ["optimize", "run", "--request", str(file), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "walk-forward (out-of-sample)" in result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [f["fold"] for f in summary["walk_forward"]["results"]] == [1, 2]
    assert summary["evaluations"] == 2 * 16 + 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--space", "fast=0:20", "--space", "slow=values:30"], "fast"),
        (["--space", "speed=1:3"], "unknown parameter speed"),
        (["--space", "fast=5:20", "--objective", "profit"], "unknown objective 'profit'"),
        (["--space", "fast=5:20", "--method", "anneal"], "--method must be one of"),
        (["--space", "fast=5-20"], "'5-20' is not a number (NAME=LOW:HIGH"),
        (["--space", "fast=a:b"], "'a' is not a number"),
        (
            ["--space", "fast=2:29", "--space", "slow=30:3000", "--max-evaluations", "1000"],
            "exceed the limit of 1,000",
        ),
        (["--space", "fast=5:20", "--method", "optuna"], "optuna method needs a number of trials"),
        (["--space", "fast=5:20", "--start", "2030-01-01"], "no bars between 2030-01-01"),
        (["--space", "fast=5:20", "--walk-forward", "x"], "--walk-forward must be FOLDS"),
        (["--space", "fast=5:20", "--anchored"], "--anchored goes with --walk-forward"),
        (["--space", "fast=5:20", "--address", "127.0.0.1:1"], "address is for the ray executor"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    runner: CliRunner, tmp_path: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, args(out, *extra))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("veloz: ")
    assert message in result.output
    assert not out.exists()


def test_out_is_made_with_its_parents_but_not_below_a_file(
    runner: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "out"
    result = runner.invoke(app, args(out, "--space", "fast=5:20"))
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").is_file()
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, args(blocker / "out", "--space", "fast=5:20"))
    assert result.exit_code == 2
    assert f"--out: {blocker} is a file, not a directory" in result.output


def test_request_file_excludes_the_request_options(runner: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "request.json"
    file.write_text("{}")
    result = runner.invoke(
        app,
        [
            "optimize",
            "run",
            "--request",
            str(file),
            "--strategy",
            "x",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "drop --strategy" in result.output
    result = runner.invoke(
        app, ["optimize", "run", "--request", str(file), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "missing required field `backtest`" in result.output
