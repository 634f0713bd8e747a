"""The Parquet store under VELOZ_DATA_DIR (default ./data/market): one file per calendar
month (UTC) of one venue's symbol at one interval,

    <root>/<venue>/<SYMBOL>/<interval>/<YYYY-MM>.parquet   e.g. binance/BTCUSDT/1m/2024-01.parquet

each holding the columns of `veloz.data.bars` (`ts_ns` Int64, prices and volume as exact
decimal text), sorted by `ts_ns`, no time twice.

Writing merges: bars already stored with the same values are left as they are, so
importing the same month twice changes nothing; a bar at a stored time with other values
is a conflict, refused unless `replace=True` (then the new bar wins). Every month is
merged in memory and checked before the first file is written; each file is written to a
temporary name and renamed over the old one, so a reader sees the old month or the new
one, never half of one.
"""

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from veloz.data.bars import COLUMNS, SCHEMA, VALUE_COLUMNS, DataError, check_symbol, format_ns
from veloz.data.continuity import Continuity, check_continuity

DEFAULT_ROOT = Path("./data/market")
_MONTH_FILE = re.compile(r"\d{4}-\d{2}\.parquet")
_VENUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# Folders under VELOZ_DATA_DIR that are not venues: the API's research jobs keep their
# results in `research/` by default (VELOZ_RESEARCH_DIR).
RESERVED = frozenset({"research"})


@dataclass(frozen=True)
class SeriesKey:
    venue: str
    symbol: str
    interval: str

    def __str__(self) -> str:
        return f"{self.venue}/{self.symbol}/{self.interval}"


@dataclass(frozen=True)
class WriteResult:
    added: int  # bars that were not stored before
    unchanged: int  # bars already stored with the same values
    replaced: int  # bars stored with other values, overwritten (replace=True only)
    months: tuple[str, ...]  # the files written (YYYY-MM)


def data_root(environ: Mapping[str, str] | None = None) -> Path:
    """VELOZ_DATA_DIR, default ./data/market (relative to the working directory)."""
    env = os.environ if environ is None else environ
    return Path(env.get("VELOZ_DATA_DIR") or DEFAULT_ROOT)


def check_venue(venue: str) -> str:
    lower = venue.strip().lower()
    if not _VENUE.fullmatch(lower):
        raise DataError(f"bad venue {venue!r}: lower-case letters, digits, '-' and '_' only")
    if lower in RESERVED:
        raise DataError(f"bad venue {venue!r}: that folder holds research job results")
    return lower


class ParquetStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, key: SeriesKey) -> Path:
        return self.root / key.venue / key.symbol / key.interval

    def months(self, key: SeriesKey) -> list[Path]:
        folder = self.directory(key)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if _MONTH_FILE.fullmatch(p.name))

    def series(self) -> Iterator[SeriesKey]:
        """Every series with at least one month stored."""
        if not self.root.is_dir():
            return
        for venue in sorted(
            p for p in self.root.iterdir() if p.is_dir() and p.name not in RESERVED
        ):
            for symbol in sorted(p for p in venue.iterdir() if p.is_dir()):
                for interval in sorted(p for p in symbol.iterdir() if p.is_dir()):
                    key = SeriesKey(venue.name, symbol.name, interval.name)
                    if self.months(key):
                        yield key

    def find(self, symbol: str, interval: str | None, venue: str | None) -> list[SeriesKey]:
        symbol = check_symbol(symbol)
        return [
            key
            for key in self.series()
            if key.symbol == symbol
            and (interval is None or key.interval == interval)
            and (venue is None or key.venue == venue)
        ]

    def read(
        self,
        key: SeriesKey,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        exact: bool = True,
    ) -> pl.DataFrame:
        """The stored bars with `start_ns <= ts_ns < end_ns`, oldest first. `exact`: values
        as the stored decimal text; else Float64 (what numpy backtests want)."""
        files = self.months(key)
        if not files:
            return pl.DataFrame(schema=SCHEMA)
        query = pl.scan_parquet(files)
        if start_ns is not None:
            query = query.filter(pl.col("ts_ns") >= start_ns)
        if end_ns is not None:
            query = query.filter(pl.col("ts_ns") < end_ns)
        if not exact:
            query = query.with_columns(pl.col(VALUE_COLUMNS).cast(pl.Float64))
        return query.sort("ts_ns").collect()

    def times(self, key: SeriesKey) -> "np.ndarray[tuple[int], np.dtype[np.int64]]":
        """Every stored bar time, oldest first (only that column is read)."""
        files = self.months(key)
        if not files:
            return np.empty(0, dtype=np.int64)
        ts = pl.scan_parquet(files).select("ts_ns").sort("ts_ns").collect()["ts_ns"]
        return ts.to_numpy()

    def continuity(self, key: SeriesKey, interval_ns: int) -> Continuity:
        return check_continuity(self.times(key), interval_ns)

    def write(
        self, key: SeriesKey, bars: pl.DataFrame, *, replace: bool = False, dry_run: bool = False
    ) -> WriteResult:
        """Merge `bars` (sorted, no time twice) into the store; see the module docstring.
        `dry_run`: check and count, write nothing."""
        if bars.is_empty():
            return WriteResult(0, 0, 0, ())
        bars = bars.select(COLUMNS).with_columns(
            month=pl.from_epoch("ts_ns", time_unit="ns").dt.strftime("%Y-%m")
        )
        merged: dict[Path, pl.DataFrame] = {}
        added = unchanged = replaced = 0
        for (month,), part in bars.partition_by("month", as_dict=True).items():
            path = self.directory(key) / f"{month}.parquet"
            new = part.drop("month")
            old = pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=SCHEMA)
            both = new.join(old, on="ts_ns", how="inner", suffix="_old")
            differs = pl.any_horizontal(pl.col(c) != pl.col(f"{c}_old") for c in VALUE_COLUMNS)
            clash = both.filter(differs)
            if len(clash) and not replace:
                row = clash.row(0, named=True)
                raise DataError(
                    f"{key}: {len(clash)} bar(s) differ from the stored ones, the first at "
                    f"{format_ns(row['ts_ns'])} (close {row['close_old']} stored, "
                    f"{row['close']} new); pass --replace to overwrite"
                )
            same = len(both) - len(clash)
            if same == len(new):
                unchanged += same
                continue
            unchanged += same
            replaced += len(clash)
            added += len(new) - len(both)
            kept = old.join(new.select("ts_ns"), on="ts_ns", how="anti")
            merged[path] = pl.concat([kept, new]).sort("ts_ns")
        for path, frame in merged.items() if not dry_run else ():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.tmp")
            frame.write_parquet(temporary, statistics=True)
            os.replace(temporary, path)
        return WriteResult(added, unchanged, replaced, tuple(p.stem for p in sorted(merged)))
