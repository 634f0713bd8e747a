"""HTML reports: one self-contained file (nothing fetched, the vendored charts inlined and
pinned), under 2 MB on the 45k-bar sample, figures computed from the full data (monthly
returns checked by hand), every value escaped, and `veloz backtest run --report`."""

import hashlib
import json
import os
import re
import shutil
import subprocess
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.support.sample_bars import sample_path
from veloz.backtest.data import BarSeries
from veloz.backtest.engine import AccountType, FillRecord
from veloz.backtest.equity_curve import EquityCurve
from veloz.backtest.report import (
    CHARTS_JS,
    MAX_CANDLES,
    OptimizationReport,
    buckets,
    candles,
    curve_points,
    monthly_returns,
    open_entry,
    render_backtest_report,
    render_optimization_report,
    trade_markers,
)
from veloz.backtest.round_trips import round_trips
from veloz.backtest.run import BacktestOutcome, BacktestRequest, DataRef, prepare
from veloz.cli.main import app
from veloz.model.market import PriceBar
from veloz.strategy.base import Strategy, StrategyParams

FIXTURE = Path(__file__).parents[2] / "fixtures" / "backtest" / "golden_bars.csv"
UPDATE_VENDOR = Path(__file__).parents[3] / "scripts" / "update_ui_vendor.sh"
VENDOR = resources.files("veloz").joinpath("ui", "vendor")
MINUTE_NS = 60 * 10**9
# What the vendored lightweight-charts itself says with a URL: its licence banner, the SVG
# namespace of its logo, and the link to TradingView its licence asks for (an <a>, nothing
# is loaded from it).
LIBRARY_URLS = {
    "https://www.apache.org/licenses/LICENSE-2.0",
    "http://www.w3.org/2000/svg",
    "https://www.tradingview.com/?utm_medium=lwc-link&utm_campaign=lwc-chart",
}
HOSTILE = "</script><script>alert('x')</script><img src=x onerror=alert(1)>&amp;"


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def sample_outcome() -> BacktestOutcome:
    request = msgspec.convert(
        {
            "strategy": "ema_cross",
            "data": [{"symbol": "BTCUSDT", "source": str(sample_path())}],
            "params": {"fast": 12, "slow": 26, "qty": "0.01"},
            "account": "margin",
            "balances": {"USDT": "10000"},
        },
        BacktestRequest,
        strict=False,
    )
    return prepare(request).run()


def chart_data(html: str) -> Any:
    """The report's chart data, as strict as the browser's JSON.parse (no NaN)."""
    found = re.search(r'id="report-data">(.*?)</script>', html, re.S)
    assert found is not None

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(found[1], parse_constant=refuse)


@pytest.fixture(scope="module")
def sample() -> tuple[BacktestOutcome, str]:
    outcome = sample_outcome()
    return outcome, render_backtest_report(outcome)


# -- self-contained, small, pinned -----------------------------------------------------------


def test_the_vendored_charts_match_their_manifest() -> None:
    manifest = json.loads(VENDOR.joinpath("manifest.json").read_text())
    entries = {f["file"]: f for p in manifest["packages"] for f in p["files"]}
    assert CHARTS_JS in entries
    for package in manifest["packages"]:
        assert VENDOR.joinpath(package["licence_file"]).is_file()
    for name, entry in entries.items():
        assert hashlib.sha256(VENDOR.joinpath(name).read_bytes()).hexdigest() == entry["sha256"]


def test_the_vendor_script_checks_the_files_on_disk(tmp_path: Path) -> None:
    """`--check` in a copy of the tree: it passes, then names a file changed by one byte."""
    script = tmp_path / "scripts" / UPDATE_VENDOR.name
    vendor = tmp_path / "src" / "veloz" / "ui" / "vendor"
    script.parent.mkdir(parents=True)
    shutil.copy(UPDATE_VENDOR, script)
    shutil.copytree(str(VENDOR), vendor)
    passed = subprocess.run([script, "--check"], capture_output=True, text=True, check=False)
    assert passed.returncode == 0, passed.stderr
    with (vendor / CHARTS_JS).open("a") as changed:
        changed.write(";")
    failed = subprocess.run([script, "--check"], capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert f"changed: src/veloz/ui/vendor/{CHARTS_JS} has sha256" in failed.stderr


def test_the_vendor_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is required in CI")
        pytest.skip("no shellcheck on this machine")
    checked = subprocess.run(
        [shellcheck, UPDATE_VENDOR], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout


def test_the_sample_report_is_one_file_under_2_mb_that_fetches_nothing(
    sample: tuple[BacktestOutcome, str],
) -> None:
    outcome, html = sample
    assert outcome.summary["fills"] == 1_664
    assert len(html.encode()) < 2_000_000
    library = VENDOR.joinpath(CHARTS_JS).read_text("utf-8")
    assert html.count(library) == 1  # inlined once, unmodified
    ours = html.replace(library, "")
    assert not re.search(r"https?:|//[a-z]", ours, re.IGNORECASE), "a URL in the page"
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=|@import", ours)
    assert set(re.findall(r"https?://[^\s\"'`$]*", library)) == LIBRARY_URLS
    assert re.search(r"\bfetch\(|XMLHttpRequest|importScripts", library) is None


def test_the_sample_report_shows_the_run(sample: tuple[BacktestOutcome, str]) -> None:
    outcome, html = sample
    stats = outcome.summary["statistics"]
    trips, _ = round_trips(outcome.result.fills)
    assert len(trips) == stats["trades"]["trades"] == 1_663
    assert html.count("<tr><td>") >= len(trips)  # every trade listed (below the cap)
    assert "45,031 bars of 1 min are shown as 2,252 candles of 20 min" in html
    # Every statistic has a row, by its label.
    for group in (stats, stats["trades"], stats["drawdown"]):
        for key, value in group.items():
            if not isinstance(value, dict):
                label = key.removesuffix("_ns").replace("_", " ")
                assert f"<tr><td>{label}</td>" in html, key
    assert f"{stats['total_return']:.2%}" in html
    data = chart_data(html)
    assert len(data["candles"]["t"]) == 2_252 <= MAX_CANDLES
    assert len(data["markers"]) == 2 * len(trips) + 1  # an entry and an exit each, + open
    assert data["curve"]["equity"][-1] == pytest.approx(stats["end_equity"], rel=1e-9)
    assert min(data["curve"]["drawdown"]) == pytest.approx(-stats["max_drawdown"], rel=1e-9)


def test_a_long_trade_list_is_cut_and_says_how_many_are_hidden(
    sample: tuple[BacktestOutcome, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("veloz.backtest.report.MAX_TRADES_SHOWN", 100)
    html = render_backtest_report(sample[0])
    assert "The first 100 are listed; 1,563 more are not shown" in html
    trades = html[html.index('<table id="trades">') :]
    assert trades[: trades.index("</table>")].count("<tr><td>") == 100


# -- the figures -----------------------------------------------------------------------------


def test_monthly_returns_by_hand() -> None:
    times = [
        "2023-12-31T00:00",
        "2024-01-15T00:00",
        "2024-01-31T23:59",
        "2024-02-10T00:00",  # no sample in March
        "2024-04-01T00:00",
        "2024-12-31T12:00",
        "2025-01-02T00:00",
    ]
    equity = np.array([100, 110, 121, 108.9, 120, 150, 165], dtype=np.float64)
    rows = monthly_returns(np.array([ns(t) for t in times], dtype=np.int64), equity)
    assert [row.year for row in rows] == [2023, 2024, 2025]
    assert rows[0].months == [None] * 11 + [0.0]
    assert rows[0].total == 0.0
    jan, feb, mar, apr = rows[1].months[:4]
    assert jan == pytest.approx(121 / 100 - 1)  # the first sample is the base
    assert feb == pytest.approx(108.9 / 121 - 1)  # compounded: last of Feb / last of Jan
    assert mar is None
    assert apr == pytest.approx(120 / 108.9 - 1)
    assert rows[1].months[4:11] == [None] * 7
    assert rows[1].months[11] == pytest.approx(150 / 120 - 1)
    assert rows[1].total == pytest.approx(150 / 100 - 1)
    assert rows[2].months[0] == pytest.approx(165 / 150 - 1)
    assert rows[2].total == pytest.approx(0.1)


def test_candles_aggregate_bars_into_epoch_aligned_buckets() -> None:
    t0 = ns("2024-01-01T00:01")
    n = 10
    series = BarSeries(
        symbol="BTCUSDT",
        source="test",
        ts_ns=np.arange(n, dtype=np.int64) * MINUTE_NS + t0,
        open=np.arange(n, dtype=np.float64) + 100,
        high=np.arange(n, dtype=np.float64) + 110,
        low=np.arange(n, dtype=np.float64) + 90,
        close=np.arange(n, dtype=np.float64) + 101,
        volume=np.ones(n),
    )
    grouped = buckets(series.ts_ns, MINUTE_NS, limit=3)  # 9 minutes: 3-minute buckets
    assert grouped.width_ns == 3 * MINUTE_NS
    # 00:00 (bars 00:01, 00:02), 00:03 .. 00:05, 00:06 .. 00:08, 00:09 (bar 00:10 is in it)
    assert grouped.starts.tolist() == [0, 2, 5, 8]
    shown = candles(series, grouped)
    first = ns("2024-01-01T00:00") // 10**9
    assert shown["t"] == [first, first + 180, first + 360, first + 540]
    assert shown["o"] == [100, 102, 105, 108]
    assert shown["h"] == [111, 114, 117, 119]
    assert shown["l"] == [90, 92, 95, 98]
    assert shown["c"] == [102, 105, 108, 110]


def test_the_curve_keeps_each_buckets_extremes_and_the_drawdown_of_the_full_curve() -> None:
    ts = np.arange(8, dtype=np.int64) * MINUTE_NS
    equity = np.array([100, 120, 90, 110, 105, 130, 60, 70], dtype=np.float64)
    curve = EquityCurve(ts, equity, np.zeros(8, dtype=np.bool_), "USDT")
    points = curve_points(curve, buckets(ts, MINUTE_NS, limit=2))  # 4-minute buckets
    # Bucket [0, 4): first 0, lowest 2, highest 1, deepest drawdown 2; [4, 8): 4, 6, 5, 6;
    # and the last sample.
    assert points["t"] == [0, 60, 120, 240, 300, 360, 420]
    assert points["equity"] == [100, 120, 90, 105, 130, 60, 70]
    assert points["drawdown"] == pytest.approx(
        [0, 0, -0.25, 105 / 120 - 1, 0, 60 / 130 - 1, 70 / 130 - 1]
    )


def fill(ts: int, side: str, qty: str, price: str = "100") -> FillRecord:
    return FillRecord(
        ts_ns=ts,
        symbol="BTCUSDT",
        side=side,
        qty=Decimal(qty),
        price=Decimal(price),
        fee=Decimal(0),
        fee_asset="USDT",
        client_order_id=f"c{ts}",
        strategy_id=None,
    )


def test_markers_show_entries_exits_and_the_position_still_open() -> None:
    fills = [
        fill(0 * MINUTE_NS, "BUY", "1", "100"),
        fill(5 * MINUTE_NS, "SELL", "2", "90"),  # closes the long at a loss, opens a short
        fill(7 * MINUTE_NS, "BUY", "1", "80"),  # closes the short with a win
        fill(9 * MINUTE_NS, "SELL", "1", "85"),  # opens a short still held
    ]
    trips, _ = round_trips(fills)
    assert open_entry(fills) == (9 * MINUTE_NS, "short")
    assert open_entry(fills[:3]) is None
    marks = trade_markers(fills, trips, "BTCUSDT", 2 * MINUTE_NS)
    assert marks == [
        {"t": 0, "k": "long"},
        {"t": 240, "k": "loss"},  # 5 min lies in the bucket of 4 min
        {"t": 240, "k": "short"},
        {"t": 360, "k": "win"},
        {"t": 480, "k": "short"},
    ]


# -- escaping --------------------------------------------------------------------------------


class LabelledParams(StrategyParams, frozen=True, kw_only=True):
    label: str = ""


class Labelled(Strategy):
    """Buys 1 on its second bar and sells it on its fifth, whatever its label says."""

    name = "labelled"
    Params = LabelledParams

    def on_start(self) -> None:
        self.bars = 0

    def on_bar(self, bar: PriceBar) -> None:
        self.bars += 1
        if self.bars == 2:
            self.ctx.buy_market(Decimal(1))
        elif self.bars == 5:
            self.ctx.sell_market(Decimal(1))


def test_every_value_from_the_run_is_escaped(tmp_path: Path) -> None:
    data = tmp_path / "bars <img src=x onerror=alert(2)>.csv"
    data.write_bytes(FIXTURE.read_bytes())
    request = BacktestRequest(
        strategy=f"{__name__}:Labelled",
        data=[DataRef(symbol="BTCUSDT", source=str(data))],
        params={"label": HOSTILE},
    )
    outcome = prepare(request).run()
    assert outcome.summary["params"]["label"] == HOSTILE and outcome.summary["fills"] == 2
    html = render_backtest_report(outcome)
    assert HOSTILE not in html and "<img src=x" not in html and "onerror=alert(2)>" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(&#39;x&#39;)" in html
    assert "&amp;amp;" in html  # escaped once more, not taken as an entity
    assert "bars &lt;img src=x onerror=alert(2)&gt;.csv" in html
    # The chart data is JSON that cannot close its <script> either.
    assert html.count("</script>") == 3


# -- the optimisation report -----------------------------------------------------------------


def optimization_report(**changes: object) -> OptimizationReport:
    metrics = {"total_return": 0.125, "sharpe": 1.5, "max_drawdown": 0.05, "trades": 12}
    report = OptimizationReport(
        strategy="ema_cross",
        objective="sharpe",
        method="grid",
        seed=7,
        data=[{"symbol": "BTCUSDT", "source": "bars.csv", "bars": 11}],
        start="2024-01-01T00:00:00Z",
        end="2024-01-01T00:10:00Z",
        evaluations=40,
        best_params={"fast": 2, "slow": 3},
        best_score=1.5,
        best_metrics=metrics,
        columns=["fast", "slow", "score", *metrics],
        rows=[{"fast": 2, "slow": 3, "score": 1.5, **metrics}, {"fast": 4, "slow": 9}],
        walk_forward=[
            {
                "fold": 1,
                "in_sample_start": "2024-01-01T00:00:00Z",
                "in_sample_end": "2024-01-01T00:07:00Z",
                "out_of_sample_start": "2024-01-01T00:07:00Z",
                "out_of_sample_end": "2024-01-01T00:10:00Z",
                "best_params": {"fast": 2, "slow": 3},
                "in_sample_score": 2.25,
                "out_of_sample": {"total_return": -0.03, "sharpe": None},
            }
        ],
    )
    return msgspec.structs.replace(report, **changes)


def test_the_optimisation_report_shows_the_search_best_rows_and_folds() -> None:
    html = render_optimization_report(optimization_report(), None)
    assert "<title>Optimisation: ema_cross</title>" in html
    assert "objective sharpe · grid search · seed 7 · 40 evaluations" in html
    results = html[html.index('<table id="results">') :]
    results = results[: results.index("</table>")]
    assert results.count("<tr><td>") == 2
    assert "<td>12.50%</td>" in results and "<td>—</td>" in results  # a missing metric
    folds = html[html.index('<table id="walk-forward">') :]
    assert "fast=2, slow=3" in folds and "<td>2.2500</td>" in folds and "<td>-3.00%</td>" in folds
    assert "report-data" not in html  # no backtest given: no charts, no script


def test_the_optimisation_report_charts_the_best_run_and_escapes_its_values() -> None:
    best = prepare(
        BacktestRequest(
            strategy="ema_cross",
            data=[DataRef(symbol="BTCUSDT", source=str(FIXTURE))],
            params={"fast": 2, "slow": 3, "qty": "1"},
        )
    ).run()
    hostile = optimization_report(strategy=HOSTILE, best_params={"fast": HOSTILE})
    html = render_optimization_report(hostile, best)
    assert HOSTILE not in html and "<img src=x" not in html
    assert 'id="equity-chart"' in html and 'id="monthly-returns"' in html
    assert html.count("</script>") == 3


def test_a_run_without_starting_capital_has_no_statistics_and_no_drawdown() -> None:
    outcome = prepare(
        BacktestRequest(
            strategy="ema_cross",
            data=[DataRef(symbol="BTCUSDT", source=str(FIXTURE))],
            params={"fast": 2, "slow": 3, "qty": "1"},
            account=AccountType.MARGIN,
            balances={"USDT": Decimal(0)},
        )
    ).run()
    assert outcome.summary["statistics"] is None
    html = render_backtest_report(outcome)
    assert "No statistics: they have no meaning for this run" in html
    curve = chart_data(html)["curve"]  # no NaN from a zero peak
    assert curve["equity"][0] == 0 and set(curve["drawdown"]) == {0}


def test_a_run_without_trades_has_an_empty_trade_list() -> None:
    outcome = prepare(
        BacktestRequest(
            strategy="ema_cross",
            data=[DataRef(symbol="BTCUSDT", source=str(FIXTURE))],
            params={"fast": 20, "slow": 30},
        )
    ).run()
    html = render_backtest_report(outcome)
    assert outcome.summary["fills"] == 0
    assert "0 closed round trips." in html
    assert '"markers":[]' in html


# -- veloz backtest run --report -------------------------------------------------------------


def cli_args(*extra: str) -> list[str]:
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
        str(FIXTURE),
        "--symbol",
        "BTCUSDT",
        "--account",
        "margin",
        *extra,
    ]


def test_the_cli_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, cli_args("--report", str(out)))
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    assert html.startswith("<!doctype html>") and "Backtest: ema_cross on BTCUSDT" in html


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing/report.html", "--report: the directory {tmp}/missing does not exist"),
        (".", "--report: {tmp} is a directory; give a file name"),
    ],
)
def test_the_cli_refuses_a_report_it_cannot_write_before_running(
    tmp_path: Path, where: str, message: str
) -> None:
    out = tmp_path / where
    summary = tmp_path / "summary.json"
    result = CliRunner().invoke(app, cli_args("--report", str(out), "--json", str(summary)))
    assert result.exit_code == 2
    assert f"veloz: {message.format(tmp=tmp_path)}" in result.output
    assert not summary.exists()  # nothing ran
