"""`veloz data import`: files read and checked (all of them) before anything is written,
then merged into the store per series. Which series a file belongs to: `symbol` and
`interval` as given, else from a Binance file name (`BTCUSDT-1m-2024-01.zip`), else (the
interval only) the most common step between the file's bars."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from veloz.data.bars import (
    DataError,
    check_symbol,
    format_ns,
    interval_name,
    interval_ns,
    sort_and_dedupe,
)
from veloz.data.formats import FileFormat, read_file
from veloz.data.store import ParquetStore, SeriesKey, WriteResult


@dataclass(frozen=True)
class ImportedFile:
    path: Path
    key: SeriesKey
    fmt: str
    unit: str
    bars: int
    duplicates: int  # identical repeated bars dropped


def plan_file(
    path: Path, fmt: FileFormat, venue: str, symbol: str | None, interval: str | None
) -> tuple[ImportedFile, pl.DataFrame]:
    read = read_file(path, fmt)
    chosen = symbol or read.symbol
    if chosen is None:
        raise DataError(f"{path}: the symbol is not in the file name: give --symbol")
    frame, duplicates = sort_and_dedupe(read.frame, str(path))
    step = interval or read.interval or _common_step(frame, path)
    check_grid(frame, interval_ns(step), f"{path}")
    key = SeriesKey(venue, check_symbol(chosen), step)
    return ImportedFile(path, key, read.fmt, read.unit, len(frame), duplicates), frame


def _common_step(frame: pl.DataFrame, path: Path) -> str:
    if len(frame) < 2:
        raise DataError(f"{path}: one bar has no interval: give --interval")
    steps, counts = np.unique(np.diff(frame["ts_ns"].to_numpy()), return_counts=True)
    step = int(steps[np.argmax(counts)])
    name = interval_name(step)
    if name is None:
        raise DataError(f"{path}: bars {step} ns apart are no known interval: give --interval")
    return name


def check_grid(frame: pl.DataFrame, step_ns: int, where: str) -> None:
    """Consecutive bars a whole number of intervals apart (more is a gap, fine)."""
    ts = frame["ts_ns"].to_numpy()
    off = np.flatnonzero(np.diff(ts) % step_ns)
    if len(off):
        i = int(off[0])
        raise DataError(
            f"{where}: bars at {format_ns(int(ts[i]))} and {format_ns(int(ts[i + 1]))} are "
            f"not a whole number of {step_ns // 1_000_000_000}s intervals apart"
        )


def import_files(
    store: ParquetStore,
    paths: Sequence[Path],
    *,
    fmt: FileFormat = "auto",
    venue: str = "binance",
    symbol: str | None = None,
    interval: str | None = None,
    replace: bool = False,
) -> tuple[list[ImportedFile], dict[SeriesKey, WriteResult]]:
    if interval is not None:
        interval_ns(interval)
    planned = [plan_file(Path(p), fmt, venue, symbol, interval) for p in paths]
    by_key: dict[SeriesKey, list[pl.DataFrame]] = {}
    for info, frame in planned:
        by_key.setdefault(info.key, []).append(frame)
    merged = {}
    for key, frames in by_key.items():
        frame, _ = sort_and_dedupe(pl.concat(frames), str(key))
        check_grid(frame, interval_ns(key.interval), str(key))
        merged[key] = frame
    for key, frame in merged.items():  # a conflict in any series stops before any write
        store.write(key, frame, replace=replace, dry_run=True)
    return [info for info, _ in planned], {
        key: store.write(key, frame, replace=replace) for key, frame in merged.items()
    }
