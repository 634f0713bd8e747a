"""`veloz backtest run`: one strategy over bars from files, on the same trading core that
runs live; a summary on stdout (and as JSON), one CSV row per fill.

Exit codes: 0 done, 2 bad input (unknown strategy or parameter, a value out of bounds, a
data file that is missing, empty or malformed), nothing run.
"""

import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from veloz.backtest.engine import BacktestResult

app = typer.Typer(help="Backtest strategies on bars from files.", no_args_is_help=True)

# Runs shorter than this show no progress bar.
_PROGRESS_AFTER_S = 1.0


@app.command()
def run(
    *,
    strategy: Annotated[
        str, typer.Option(help="A built-in (`veloz strategy catalog`) or module:Class")
    ],
    data: Annotated[
        list[Path],
        typer.Option(
            help="Bars: CSV (NautilusTrader, Binance klines), zip, Parquet, or "
            "store:VENUE/SYMBOL/INTERVAL from `veloz data import|download`"
        ),
    ],
    symbol: Annotated[
        list[str], typer.Option(help="The symbol of each --data, in order; the first is traded")
    ],
    param: Annotated[
        list[str] | None, typer.Option(help="A strategy parameter NAME=VALUE (repeatable)")
    ] = None,
    account: Annotated[str, typer.Option(help="cash (spot) or margin")] = "cash",
    balance: Annotated[str, typer.Option(help="Starting balances ASSET=AMOUNT,...")] = "USDT=10000",
    fee_bps: Annotated[str, typer.Option(help="Maker and taker fee in basis points")] = "10",
    slippage_bps: Annotated[str, typer.Option(help="Taker slippage in basis points")] = "0",
    fill: Annotated[str, typer.Option(help="close or next_open")] = "close",
    path: Annotated[str, typer.Option(help="Intrabar path of limit fills: ohlc or olhc")] = "ohlc",
    strategy_path: Annotated[
        list[str] | None,
        typer.Option(help="Directories to import module:Class strategies from (repeatable)"),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First bar time, ISO 8601 (2022-01-05 or ...T12:00:00Z)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Bars before this time only, ISO 8601")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the summary as JSON here")
    ] = None,
    orders: Annotated[Path | None, typer.Option(help="Write one CSV row per fill here")] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write an HTML report here (one self-contained file, docs/reports.md)"),
    ] = None,
) -> None:
    """Run a backtest."""
    import os

    import msgspec

    from veloz.backtest.data import BarDataError
    from veloz.backtest.engine import AccountType, BarPath, FillModel
    from veloz.backtest.run import BacktestRequest, DataRef, prepare
    from veloz.config import parse_balances
    from veloz.model.errors import CommandRejected
    from veloz.strategy.registry import parse_assignments

    search_path = tuple(strategy_path or ()) + tuple(
        p for p in os.environ.get("VELOZ_STRATEGY_PATH", "").split(os.pathsep) if p
    )
    try:
        if len(data) != len(symbol):
            raise CommandRejected(
                f"give one --symbol per --data ({len(data)} files, {len(symbol)} symbols)"
            )
        request = BacktestRequest(
            strategy=strategy,
            data=[DataRef(symbol=s, source=str(p)) for s, p in zip(symbol, data, strict=True)],
            params=parse_assignments(param or ()),
            account=_choice(AccountType, account, "--account"),
            balances=_balances(parse_balances, balance),
            fee_bps=_decimal(fee_bps, "--fee-bps"),
            slippage_bps=_decimal(slippage_bps, "--slippage-bps"),
            fill=_choice(FillModel, fill, "--fill"),
            path=_choice(BarPath, path, "--path"),
            start=start,
            end=end,
        )
        if report is not None and not report.parent.is_dir():
            raise CommandRejected(f"--report: the directory {report.parent} does not exist")
        if report is not None and report.is_dir():
            raise CommandRejected(f"--report: {report} is a directory; give a file name")
        prepared = prepare(request, search_path)
    except (CommandRejected, BarDataError) as exc:
        typer.echo(f"veloz: {exc.message if isinstance(exc, CommandRejected) else exc}", err=True)
        raise typer.Exit(2) from None
    with _Progress() as progress:
        outcome = prepared.run(progress.update)
    summary = outcome.summary
    _print_summary(summary)
    if json_out is not None:
        json_out.write_bytes(msgspec.json.format(msgspec.json.encode(summary)) + b"\n")
    if orders is not None:
        _write_fills(orders, outcome.result)
    if report is not None:
        from veloz.backtest.report import render_backtest_report

        report.write_text(render_backtest_report(outcome), encoding="utf-8")


def _write_fills(path: Path, result: "BacktestResult") -> None:
    import csv

    from veloz.backtest.run import iso

    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["time", "ts_ns", "symbol", "side", "qty", "price", "fee", "fee_asset"])
        for fill in result.fills:
            writer.writerow(
                [
                    iso(fill.ts_ns),
                    fill.ts_ns,
                    fill.symbol,
                    fill.side,
                    fill.qty,
                    fill.price,
                    fill.fee,
                    fill.fee_asset,
                ]
            )


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="backtest", show_header=False)
    for key in ("bars", "orders", "denied", "fills", "fees", "final_equity", "final_position"):
        table.add_row(key, str(summary[key]))
    table.add_row("period", f"{summary['start']} .. {summary['end']}")
    stats = summary.get("statistics")
    if stats is not None:
        trades = stats["trades"]
        drawdown = stats["drawdown"]
        if drawdown is not None:
            bars = f"{drawdown['peak_bar']}..{drawdown['trough_bar']}"
            recovery = "recovered" if drawdown["recovered"] else "not recovered"
            shown_drawdown = f"{_ratio(stats['max_drawdown'])} (bars {bars}, {recovery})"
        else:
            shown_drawdown = _ratio(stats["max_drawdown"])
        rows = {
            "total_return": _ratio(stats["total_return"]),
            "cagr": _ratio(stats["cagr"]),
            "volatility": _ratio(stats["volatility"]),
            "sharpe": _number(stats["sharpe"]),
            "sortino": _number(stats["sortino"]),
            "calmar": _number(stats["calmar"]),
            "max_drawdown": shown_drawdown,
            "exposure": _ratio(stats["exposure"]),
            "turnover": _number(stats["turnover"]),
            "trades": f"{trades['trades']} closed, {trades['open_trades']} open",
            "win_rate": _ratio(trades["win_rate"]),
            "profit_factor": _number(trades["profit_factor"]),
            "average_win": _number(trades["average_win"]),
            "average_loss": _number(trades["average_loss"]),
        }
        for key, shown in rows.items():
            table.add_row(key, shown)
    table.add_row("speed", f"{summary['bars_per_s']:,} bars/s in {summary['seconds']:.3f} s")
    Console().print(table)


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _number(value: float | str | None) -> str:
    return "—" if value is None else f"{float(value):,.4f}"


def _choice(kind: Any, value: str, option: str) -> Any:
    from veloz.model.errors import CommandRejected

    try:
        return kind(value.lower())
    except ValueError:
        allowed = "|".join(member.value for member in kind)
        raise CommandRejected(f"{option} must be one of {allowed}, got {value!r}") from None


def _decimal(value: str, option: str) -> Decimal:
    from veloz.model.errors import CommandRejected

    try:
        number = Decimal(value)
    except ArithmeticError:
        raise CommandRejected(f"{option} must be a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise CommandRejected(f"{option} must be a finite number of at least 0, got {value!r}")
    return number


def _balances(parse: Any, text: str) -> dict[str, Decimal]:
    from veloz.model.errors import CommandRejected

    try:
        balances: dict[str, Decimal] = parse(text)
    except ValueError as exc:
        raise CommandRejected(f"--balance: {exc}") from None
    if not balances:
        raise CommandRejected("--balance needs at least one ASSET=AMOUNT")
    return balances


class _Progress:
    """A rich progress bar on stderr, shown only once a run has taken over a second."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, done: int, total: int) -> None:
        if self._bar is None:
            if time.monotonic() - self._started < _PROGRESS_AFTER_S:
                return
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task("backtest", total=total)
            self._bar.start()
        self._bar.update(self._task, completed=done)
