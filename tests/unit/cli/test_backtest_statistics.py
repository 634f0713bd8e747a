"""The backtest summary carries the run's statistics (docs/analytics.md): in the JSON and
the printed table, consistent with the summary's own figures; none when they mean nothing."""

import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from tests.unit.cli.test_backtest_cli import args
from veloz.cli.main import app


def test_the_summary_carries_statistics_that_agree_with_it(
    runner: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "summary.json"
    done = runner.invoke(app, args("--account", "margin", "--json", str(out)))
    assert done.exit_code == 0, done.output
    summary = json.loads(out.read_text())
    stats = summary["statistics"]
    assert stats["end_equity"] == float(Decimal(summary["final_equity"]))
    assert stats["start_equity"] == 1000.0  # --balance USDT=1000
    assert Decimal(stats["trades"]["fees"]) == Decimal(summary["fees"])
    assert stats["trades"]["fills"] == summary["fills"]
    assert stats["samples"] == summary["bars"]  # one per bar, at its close
    for row in ("total_return", "sharpe", "max_drawdown", "win_rate", "profit_factor"):
        assert row in done.output


def test_no_starting_equity_gives_no_statistics(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    done = runner.invoke(
        app, [*args("--json", str(out)), "--balance", "USDT=0", "--account", "margin"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(out.read_text())["statistics"] is None
    assert "total_return" not in done.output
