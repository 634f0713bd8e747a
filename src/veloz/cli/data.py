"""`veloz data`: market data for research, kept as Parquet under VELOZ_DATA_DIR
(default ./data/market). See docs/data.md.

Exit codes: 0 done, 2 bad input (a missing or malformed file, an unknown symbol or
interval, bars that conflict with stored ones, a refused download): one `veloz:` line on
stderr and nothing written. 1: Binance could not be reached (after retries).
"""

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from veloz.cli.help import PlainHelpGroup

if TYPE_CHECKING:  # imported when a command runs, so `veloz --help` stays fast
    import polars as pl

    from veloz.data.store import ParquetStore, SeriesKey

app = typer.Typer(
    help="Import, download and inspect market data (Parquet under VELOZ_DATA_DIR).",
    no_args_is_help=True,
    cls=PlainHelpGroup,
)

Venue = Annotated[str, typer.Option(help="Venue directory in the store")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"veloz: {message}", err=True)
    return typer.Exit(code)


def _store() -> "ParquetStore":
    from veloz.data.store import ParquetStore, data_root

    return ParquetStore(data_root())


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Binance zip/CSV or NautilusTrader CSV")],
    *,
    symbol: Annotated[
        str | None, typer.Option(help="Symbol (default: from a Binance file name)")
    ] = None,
    interval: Annotated[
        str | None, typer.Option(help="Bar interval, e.g. 1m (default: file name or data)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="binance, nautilus or auto")] = "auto",
    venue: Venue = "binance",
    replace: Annotated[
        bool, typer.Option("--replace", help="New bars overwrite stored ones that differ")
    ] = False,
) -> None:
    """Read bar files into the store (idempotent: a file imported twice adds nothing)."""
    from veloz.data.bars import DataError
    from veloz.data.importer import import_files
    from veloz.data.store import check_venue

    if fmt not in ("auto", "binance", "nautilus"):
        raise _fail(f"--format must be one of auto|binance|nautilus, got {fmt!r}")
    try:
        read, written = import_files(
            _store(),
            files,
            fmt=fmt,  # type: ignore[arg-type]
            venue=check_venue(venue),
            symbol=symbol,
            interval=interval,
            replace=replace,
        )
    except DataError as exc:
        raise _fail(str(exc)) from None
    for info in read:
        dropped = f", {info.duplicates} duplicate(s) dropped" if info.duplicates else ""
        typer.echo(
            f"{info.path}: {info.bars} bars ({info.fmt}, {info.unit}) -> {info.key}{dropped}"
        )
    for key, result in written.items():
        typer.echo(
            f"{key}: {result.added} added, {result.unchanged} already stored, "
            f"{result.replaced} replaced"
        )
        _report_gaps(key)


@app.command()
def download(
    *,
    symbol: Annotated[str, typer.Option(help="Binance symbol, e.g. BTCUSDT")],
    start: Annotated[str, typer.Option(help="UTC date or time, inclusive (2024-01-01)")],
    end: Annotated[str, typer.Option(help="UTC date or time, exclusive (2024-01-02)")],
    interval: Annotated[str, typer.Option(help="Bar interval")] = "1m",
    venue: Venue = "binance",
    replace: Annotated[
        bool, typer.Option("--replace", help="New bars overwrite stored ones that differ")
    ] = False,
) -> None:
    """Fetch klines from Binance's REST API (VELOZ_BINANCE_BASE_URL) into the store."""
    import asyncio

    from veloz.binance.endpoints import SPOT
    from veloz.binance.errors import BinanceError, RateLimited, UnknownOutcome
    from veloz.data.bars import DataError, check_symbol, interval_ns
    from veloz.data.store import SeriesKey, check_venue

    try:
        key = SeriesKey(check_venue(venue), check_symbol(symbol), interval)
        step = interval_ns(interval)
        start_ms, end_ms = _ms(start, "--start"), _ms(end, "--end")
    except DataError as exc:
        raise _fail(str(exc)) from None
    if end_ms <= start_ms:
        raise _fail(f"--end {end} is not after --start {start}")
    base_url = (os.environ.get("VELOZ_BINANCE_BASE_URL") or SPOT.rest).rstrip("/")
    store = _store()
    try:
        frame = asyncio.run(_fetch(base_url, key, step, start_ms, end_ms))
        result = store.write(key, frame, replace=replace)
    except DataError as exc:
        raise _fail(str(exc)) from None
    except (RateLimited, UnknownOutcome) as exc:
        raise _fail(f"{base_url}: {exc}", 1) from None
    except BinanceError as exc:
        raise _fail(f"{key.symbol}: Binance refused: {exc}") from None
    typer.echo(
        f"{key}: {len(frame)} bars downloaded, {result.added} added, "
        f"{result.unchanged} already stored, {result.replaced} replaced"
    )
    _report_gaps(key)


async def _fetch(
    base_url: str, key: "SeriesKey", step_ns: int, start_ms: int, end_ms: int
) -> "pl.DataFrame":
    import time

    from veloz.binance.limits import RateLimiter
    from veloz.binance.rest import BinanceRest
    from veloz.data.download import fetch_klines

    rest = BinanceRest(base_url, limiter=RateLimiter())
    try:
        return await fetch_klines(
            rest,
            key.symbol,
            key.interval,
            step_ns=step_ns,
            start_ms=start_ms,
            end_ms=end_ms,
            now_ms=lambda: time.time_ns() // 1_000_000,
        )
    finally:
        await rest.close()


@app.command("list")
def list_() -> None:
    """Every stored series: venue/symbol/interval, first and last bar, bar count."""
    from veloz.data.bars import format_ns

    store = _store()
    keys = list(store.series())
    if not keys:
        typer.echo(f"no data under {store.root}")
        return
    for key in keys:
        ts = store.times(key)
        typer.echo(f"{key}  {format_ns(int(ts[0]))} .. {format_ns(int(ts[-1]))}  {len(ts)} bars")


@app.command()
def inspect(
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT")],
    interval: Annotated[str | None, typer.Option(help="Only this interval")] = None,
    venue: Annotated[str | None, typer.Option(help="Only this venue")] = None,
    show: Annotated[int, typer.Option(help="Gaps listed at most", min=0)] = 20,
) -> None:
    """Range, bar count and gaps of a stored symbol."""
    from veloz.data.bars import DataError

    store = _store()
    try:
        keys = store.find(symbol, interval, venue)
    except DataError as exc:
        raise _fail(str(exc)) from None
    if not keys:
        raise _fail(f"no data for {symbol.upper()} under {store.root} (see `veloz data list`)")
    for key in keys:
        _describe(key, show)


def _describe(key: "SeriesKey", show: int) -> None:
    from veloz.data.bars import format_ns, interval_ns

    store = _store()
    report = store.continuity(key, interval_ns(key.interval))
    assert report.start_ns is not None and report.end_ns is not None
    typer.echo(f"{key}")
    typer.echo(f"  first     {format_ns(report.start_ns)}")
    typer.echo(f"  last      {format_ns(report.end_ns)}")
    typer.echo(f"  bars      {report.bars} of {report.expected} ({report.missing} missing)")
    typer.echo(f"  gaps      {len(report.gaps)}")
    if report.off_grid:
        typer.echo(f"  off grid  {report.off_grid} bars")
    typer.echo(f"  files     {', '.join(p.stem for p in store.months(key))}")
    for gap in report.gaps[:show]:
        typer.echo(
            f"  gap after {format_ns(gap.after_ns)} until {format_ns(gap.before_ns)}: "
            f"{gap.missing} bars missing"
        )
    if len(report.gaps) > show:
        typer.echo(f"  ... {len(report.gaps) - show} more gaps")


def _report_gaps(key: "SeriesKey") -> None:
    from veloz.data.bars import interval_ns

    report = _store().continuity(key, interval_ns(key.interval))
    if report.gaps:
        typer.echo(
            f"{key}: {len(report.gaps)} gap(s), {report.missing} bars missing "
            f"(veloz data inspect {key.symbol} --interval {key.interval})"
        )


def _ms(text: str, option: str) -> int:
    from veloz.data.bars import DataError

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(
            f"{option}: expected a UTC date or time like 2024-01-01, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.utcoffset() != UTC.utcoffset(None):
        raise DataError(f"{option}: UTC only, got {text!r}")
    return int(moment.timestamp() * 1000)
