"""`veloz optimize run`: search a strategy's parameters over bars (grid, random or Optuna),
optionally walk-forward, on a local process pool or Ray; a progress bar on stderr, the top
results as a table, and the results, summary and report written into `--out`.

Exit codes: 0 done, 2 bad input (unknown strategy, parameter, objective or method, a range
outside the strategy's bounds, a search larger than --max-evaluations, no data in the
period, an --out below a file, a Ray cluster that cannot be reached),
nothing run; 130 interrupted.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from veloz.research.optimize import OptimizationOutcome, OptimizationRequest
    from veloz.research.optimize.space import ParamRange

app = typer.Typer(help="Optimise strategy parameters over bars.", no_args_is_help=True)

_REQUEST_OPTIONS = ("--strategy", "--data", "--symbol", "--param", "--space")


@app.command()
def run(
    *,
    out: Annotated[
        Path, typer.Option(help="Directory for results.parquet|csv, summary.json, report.html")
    ],
    request_file: Annotated[
        Path | None,
        typer.Option(
            "--request", help="The whole request as JSON (as POST /api/optimizations takes)"
        ),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="A built-in (`veloz strategy catalog`) or module:Class")
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(help="Bars: CSV, zip, Parquet, or store:VENUE/SYMBOL/INTERVAL"),
    ] = None,
    symbol: Annotated[
        list[str] | None, typer.Option(help="The symbol of each --data, in order")
    ] = None,
    space: Annotated[
        list[str] | None,
        typer.Option(
            help="A searched parameter: NAME=LOW:HIGH[:STEP][:log] or NAME=values:A,B,C "
            "(repeatable)"
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="A fixed strategy parameter NAME=VALUE (repeatable)")
    ] = None,
    method: Annotated[str | None, typer.Option(help="grid (default), random or optuna")] = None,
    trials: Annotated[int | None, typer.Option(help="Trials of random or optuna")] = None,
    objective: Annotated[
        str | None, typer.Option(help="sharpe (default), sortino, calmar or total_return")
    ] = None,
    min_trades: Annotated[
        int | None, typer.Option(help="Closed trades a trial needs to score (default 0)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of random and optuna (default 0)")] = None,
    walk_forward: Annotated[
        str | None,
        typer.Option(help="FOLDS[:IN_SAMPLE_FRACTION], e.g. 4:0.7: optimise, then test ahead"),
    ] = None,
    anchored: Annotated[
        bool, typer.Option(help="Walk-forward in-sample windows all start at the first bar")
    ] = False,
    executor: Annotated[str | None, typer.Option(help="local (default) or ray")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (ray only)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes (local) or CPUs (ray); default: every core")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="auto (default), vectorized or event")] = None,
    account: Annotated[str | None, typer.Option(help="cash (default) or margin")] = None,
    balance: Annotated[
        str | None, typer.Option(help="Starting balances ASSET=AMOUNT,... (USDT=10000)")
    ] = None,
    fee_bps: Annotated[str | None, typer.Option(help="Fee in basis points (10)")] = None,
    slippage_bps: Annotated[str | None, typer.Option(help="Slippage in basis points (0)")] = None,
    fill: Annotated[str | None, typer.Option(help="close (default) or next_open")] = None,
    start: Annotated[str | None, typer.Option(help="First bar time, ISO 8601")] = None,
    end: Annotated[str | None, typer.Option(help="Bars before this time only, ISO 8601")] = None,
    strategy_path: Annotated[
        list[str] | None,
        typer.Option(help="Directories to import module:Class strategies from (repeatable)"),
    ] = None,
    max_evaluations: Annotated[
        int, typer.Option(help="Refuse a search with more evaluations than this")
    ] = 100_000,
    top: Annotated[int, typer.Option(help="Rows of the results table shown")] = 10,
) -> None:
    """Run an optimisation."""
    import os
    import time

    from veloz.backtest.data import BarDataError
    from veloz.model.errors import CommandRejected
    from veloz.research.optimize import (
        OptimizationCancelled,
        prepare_optimization,
        write,
    )
    from veloz.research.optimize.executor import ExecutorUnavailable

    search_path = tuple(strategy_path or ()) + tuple(
        p for p in os.environ.get("VELOZ_STRATEGY_PATH", "").split(os.pathsep) if p
    )
    given = locals()  # the options by name, for the request built from them
    try:
        _check_out(out)
        if request_file is not None:
            named = [o for o in _REQUEST_OPTIONS if given[o[2:]]]
            if named:
                raise CommandRejected(
                    f"--request carries the whole request; drop {', '.join(named)}"
                )
            request = _read_request(request_file)
        else:
            request = _request(given)
        prepared = prepare_optimization(
            request, max_evaluations=max_evaluations, search_path=search_path
        )
    except (CommandRejected, BarDataError) as exc:
        _fail(exc.message if isinstance(exc, CommandRejected) else str(exc))
    started = time.perf_counter()
    try:
        with _Progress(prepared.planned) as progress:
            outcome = prepared.run(progress.update)
    except ExecutorUnavailable as exc:
        _fail(str(exc))
    except (KeyboardInterrupt, OptimizationCancelled):
        typer.echo("veloz: interrupted; nothing written", err=True)
        raise typer.Exit(130) from None
    written = write(outcome, out)
    _print(outcome, top)
    seconds = time.perf_counter() - started
    evaluations = outcome.summary["evaluations"]
    typer.echo(
        f"{evaluations:,} evaluations in {seconds:.2f} s ({outcome.summary['engine']}, "
        f"{outcome.summary['executor']} x{outcome.summary['workers']}); "
        f"wrote {', '.join(p.name for p in written)} to {out}"
    )


def _fail(message: str) -> NoReturn:
    typer.echo(f"veloz: {message}", err=True)
    raise typer.Exit(2) from None


def _check_out(out: Path) -> None:
    from veloz.model.errors import CommandRejected

    if out.exists() and not out.is_dir():
        raise CommandRejected(f"--out {out} is a file, not a directory")
    # Missing directories are made at the end (as `mkdir -p`); a file in the way would only
    # show then, after the whole search.
    existing = next(p for p in out.parents if p.exists())
    if not existing.is_dir():
        raise CommandRejected(f"--out: {existing} is a file, not a directory")


def _read_request(path: Path) -> "OptimizationRequest":
    import msgspec

    from veloz.model.errors import CommandRejected
    from veloz.research.optimize import OptimizationRequest

    try:
        return msgspec.json.decode(path.read_bytes(), type=OptimizationRequest)
    except OSError as exc:
        raise CommandRejected(f"--request {path}: {exc.strerror}") from None
    except msgspec.DecodeError as exc:  # ValidationError included
        raise CommandRejected(f"--request {path}: {exc}") from None


def _request(given: dict[str, Any]) -> "OptimizationRequest":
    from veloz.backtest.engine import AccountType, FillModel
    from veloz.backtest.run import BacktestRequest, DataRef
    from veloz.cli.backtest import _balances, _choice, _decimal
    from veloz.config import parse_balances
    from veloz.model.errors import CommandRejected
    from veloz.research.optimize import (
        Engine,
        ExecutorKind,
        Method,
        Objective,
        OptimizationRequest,
        WalkForward,
    )
    from veloz.strategy.registry import parse_assignments

    if not given["strategy"] or not given["data"] or not given["space"]:
        raise CommandRejected("give --strategy, --data, --symbol and --space (or --request)")
    data, symbols = given["data"], given["symbol"] or []
    if len(data) != len(symbols):
        raise CommandRejected(
            f"give one --symbol per --data ({len(data)} files, {len(symbols)} symbols)"
        )
    optional: dict[str, Any] = {}
    if given["account"] is not None:
        optional["account"] = _choice(AccountType, given["account"], "--account")
    if given["balance"] is not None:
        optional["balances"] = _balances(parse_balances, given["balance"])
    for name in ("fee_bps", "slippage_bps"):
        if given[name] is not None:
            optional[name] = _decimal(given[name], "--" + name.replace("_", "-"))
    if given["fill"] is not None:
        optional["fill"] = _choice(FillModel, given["fill"], "--fill")
    backtest = BacktestRequest(
        strategy=given["strategy"],
        data=[DataRef(symbol=s, source=str(p)) for s, p in zip(symbols, data, strict=True)],
        params=parse_assignments(given["param"] or ()),
        start=given["start"],
        end=given["end"],
        **optional,
    )
    options: dict[str, Any] = {
        "method": _choice(Method, given["method"] or "grid", "--method"),
        "objective": Objective.named((given["objective"] or "sharpe").lower()),
        "executor": _choice(ExecutorKind, given["executor"] or "local", "--executor"),
        "engine": _choice(Engine, given["engine"] or "auto", "--engine"),
        "trials": given["trials"],
        "workers": given["workers"],
        "address": given["address"],
    }
    for name in ("min_trades", "seed"):
        if given[name] is not None:
            if given[name] < 0:
                raise CommandRejected(f"--{name.replace('_', '-')} must be at least 0")
            options[name] = given[name]
    if given["walk_forward"] is not None:
        folds, in_sample = _walk_forward(given["walk_forward"])
        options["walk_forward"] = WalkForward(
            folds=folds, in_sample=in_sample, anchored=given["anchored"]
        )
    elif given["anchored"]:
        raise CommandRejected("--anchored goes with --walk-forward")
    return OptimizationRequest(backtest=backtest, space=_space(given["space"]), **options)


def _space(items: list[str]) -> "dict[str, ParamRange]":
    from veloz.model.errors import CommandRejected
    from veloz.research.optimize import ParamRange

    space: dict[str, ParamRange] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise CommandRejected(
                f"--space {item!r} must be NAME=LOW:HIGH[:STEP][:log] or NAME=values:A,B"
            )
        if name in space:
            raise CommandRejected(f"--space {name} is given twice")
        kind, _, rest = text.partition(":")
        if kind.strip().lower() == "values":
            values = [v.strip() for v in rest.split(",") if v.strip()]
            if not values:
                raise CommandRejected(f"--space {item!r}: values needs at least one value")
            space[name] = ParamRange(values=values)
            continue
        parts = [p.strip() for p in text.split(":")]
        log = parts[-1].lower() == "log"
        numbers = [_number(item, p) for p in (parts[:-1] if log else parts)]
        if len(numbers) not in (2, 3):
            raise CommandRejected(
                f"--space {item!r} must be NAME=LOW:HIGH[:STEP][:log] or NAME=values:A,B"
            )
        step = numbers[2] if len(numbers) == 3 else None
        space[name] = ParamRange(low=numbers[0], high=numbers[1], step=step, log=log)
    return space


def _number(item: str, text: str) -> int | float:
    from veloz.model.errors import CommandRejected

    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise CommandRejected(
            f"--space {item!r}: {text!r} is not a number (NAME=LOW:HIGH[:STEP][:log] or "
            "NAME=values:A,B)"
        ) from None


def _walk_forward(text: str) -> tuple[int, float]:
    from veloz.model.errors import CommandRejected

    folds_text, _, fraction_text = text.partition(":")
    try:
        folds = int(folds_text)
        in_sample = float(fraction_text) if fraction_text else 0.7
    except ValueError:
        raise CommandRejected(
            f"--walk-forward must be FOLDS[:IN_SAMPLE_FRACTION] (4 or 4:0.7), got {text!r}"
        ) from None
    return folds, in_sample


def _print(outcome: "OptimizationOutcome", top: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = outcome.summary
    frame = outcome.results.sort("score", descending=True, nulls_last=True, maintain_order=True)
    shown = {"fold", "score", "total_return", "max_drawdown", "trades"}
    params = frame.columns[frame.columns.index("trial") + 1 : frame.columns.index("score")]
    columns = [c for c in frame.columns if c in shown or c in params]
    table = Table(
        title=f"{summary['strategy']}: top {min(top, frame.height)} of {frame.height} "
        f"by {summary['objective']} ({summary['method']})"
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in frame.head(top).iter_rows(named=True):
        table.add_row(*(_cell(row[c]) for c in columns))
    console.print(table)
    walk_forward = summary["walk_forward"]
    if walk_forward is not None:
        folds = Table(title="walk-forward (out-of-sample)")
        for column in ("fold", "in sample", "out of sample", "best params", "in", "out"):
            folds.add_column(column)
        for fold in walk_forward["results"]:
            oos = fold["out_of_sample"]
            folds.add_row(
                str(fold["fold"]),
                f"{fold['in_sample_start']} .. {fold['in_sample_end']}",
                f"{fold['out_of_sample_start']} .. {fold['out_of_sample_end']}",
                str(fold["best_params"]),
                _cell(fold["in_sample_score"]),
                _cell(None if oos is None else oos["score"]),
            )
        console.print(folds)
        aggregate = walk_forward["out_of_sample"]
        console.print(
            f"out-of-sample: mean {summary['objective']} {_cell(aggregate['mean_score'])} "
            f"over {aggregate['folds_scored']} of {walk_forward['folds']} folds, "
            f"compounded return {_cell(aggregate['compounded_return'])}"
        )
    best = summary["best"]
    # With walk-forward the best is the last fold's in-sample choice: what one would trade
    # next, scored on the window it was chosen on.
    where = " (last fold, in sample)" if walk_forward is not None else ""
    console.print(
        "best: none scored (too few trades?)"
        if best is None
        else f"best{where}: {best['params']} {summary['objective']}={_cell(best['score'])}"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class _Progress:
    """A rich progress bar of evaluations on stderr."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("optimize"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("optimize", total=total)

    def __enter__(self) -> "_Progress":
        self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._bar.stop()

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)
