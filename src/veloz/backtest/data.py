"""Bar data for the backtester: OHLCV files read into validated numpy arrays.

Owns the file formats (NautilusTrader-style CSV, Binance kline CSV or its monthly/daily
zip, Parquet), the bar-time convention (a bar's time is the file's timestamp column, or
Binance's `open_time`, as UTC nanoseconds) and the checks a series passes before a
backtest sees it. Every problem is a `BarDataError` naming the file and the 1-based line
(CSV, the header being line 1) or row (Parquet); nothing partial is returned.

Reading is polars (every field as text, then one vectorised cast per column, so a bad
value can be named); the checks are numpy masks, never a Python loop over rows. Measured
on the 2-core dev machine (median of 30): the 45,031-bar sample CSV
(btc-perp-20211231-20220201_1m.csv, 2.9 MB) loads in ≈24 ms, of which ≈6 ms is polars
reading the text, ≈8 ms parsing it and ≈4 ms counting fields per line; the same bars as a
Binance CSV take ≈22 ms, as Parquet ≈4 ms.
"""

import io
import math
import zipfile
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from veloz.data.bars import DataError
from veloz.data.store import ParquetStore, SeriesKey, check_venue, data_root

BarFormat = Literal["auto", "nautilus", "binance", "parquet"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_Values = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]  # o, h, l, c, v

VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
NAUTILUS_HEADER = ("timestamp", *VALUE_COLUMNS)
BINANCE_HEADER = (
    "open_time",
    *VALUE_COLUMNS,
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
# A Binance open_time at or above this is microseconds (spot dumps since 2025), below it
# milliseconds: 10^14 ms is the year 5138, 10^14 µs is 1973.
MICROSECONDS_FROM = 10**14
_ISO_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
_ISO_FAST = "%Y-%m-%d %H:%M:%S.%6f"  # the sample's six-digit form: parsed ≈4x faster


class BarDataError(ValueError):
    """A bar file that cannot be used; the message names the file and the line or row."""


@dataclass(frozen=True, eq=False)
class BarSeries:
    """One symbol's bars, oldest first: `ts_ns` strictly increasing UTC nanoseconds (the
    bar time), the other arrays float64 of the same length. The arrays are read-only."""

    symbol: str
    source: str
    ts_ns: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        values = (self.open, self.high, self.low, self.close, self.volume)
        if self.ts_ns.dtype != np.int64 or any(a.dtype != np.float64 for a in values):
            raise ValueError(f"{self.symbol}: ts_ns must be int64 and the prices float64")
        if self.ts_ns.ndim != 1 or len(self.ts_ns) == 0:
            raise ValueError(f"{self.symbol}: a series needs at least one bar")
        if any(a.shape != self.ts_ns.shape for a in values):
            raise ValueError(f"{self.symbol}: the arrays differ in length")
        for array in (self.ts_ns, *values):
            array.setflags(write=False)

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def start_ns(self) -> int:
        return int(self.ts_ns[0])

    @property
    def end_ns(self) -> int:
        return int(self.ts_ns[-1])

    @cached_property
    def interval_ns(self) -> int:
        """The most common step between consecutive bars (the smallest one on a tie)."""
        if len(self) < 2:
            raise ValueError(f"{self.symbol}: one bar has no interval")
        steps, counts = np.unique(np.diff(self.ts_ns), return_counts=True)
        return int(steps[np.argmax(counts)])

    def slice(self, start: int, stop: int) -> "BarSeries":
        """Bars [start, stop) by index, sharing this series' memory."""
        return replace(
            self,
            ts_ns=self.ts_ns[start:stop],
            open=self.open[start:stop],
            high=self.high[start:stop],
            low=self.low[start:stop],
            close=self.close[start:stop],
            volume=self.volume[start:stop],
        )


def concat_shifted(series: BarSeries, copies: int) -> BarSeries:
    """`copies` copies of `series` end to end, copy k shifted by k × (end − start +
    interval), so every join is one interval wide: a long series out of a short file."""
    if copies < 1:
        raise ValueError(f"copies must be at least 1, not {copies}")
    shift = series.end_ns - series.start_ns + series.interval_ns
    offsets = np.arange(copies, dtype=np.int64) * np.int64(shift)
    return replace(
        series,
        ts_ns=(offsets[:, np.newaxis] + series.ts_ns[np.newaxis, :]).ravel(),
        open=np.tile(series.open, copies),
        high=np.tile(series.high, copies),
        low=np.tile(series.low, copies),
        close=np.tile(series.close, copies),
        volume=np.tile(series.volume, copies),
    )


# `--data store:binance/BTCUSDT/1m`: bars that `veloz data import|download` keep.
STORE_PREFIX = "store:"


def load_bars(path: Path | str, symbol: str, fmt: BarFormat = "auto") -> BarSeries:
    """The bars in `path`. `fmt="auto"` goes by the extension: `.parquet`; `.zip` is a
    Binance dump; `.csv` is Binance when its first field is a number or `open_time`,
    NautilusTrader-style otherwise. A `.zip` is opened whatever `fmt` says.
    `store:VENUE/SYMBOL/INTERVAL` reads the data store instead (`load_stored`)."""
    if str(path).startswith(STORE_PREFIX):
        return load_stored(str(path), symbol)
    path = Path(path)
    if not path.is_file():
        raise BarDataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if fmt == "parquet" or (fmt == "auto" and suffix == ".parquet"):
        where, ts_ns, values = _read_parquet(path)
    elif suffix == ".zip":
        data, label = _zip_member(path)
        where, ts_ns, values = _read_csv(data, label, "binance" if fmt == "auto" else fmt)
    elif fmt == "auto" and suffix != ".csv":
        raise BarDataError(f"{path}: cannot tell the format from the extension: pass fmt")
    else:
        where, ts_ns, values = _read_csv(_file_bytes(path), str(path), fmt)
    _check(where, ts_ns, values)
    return BarSeries(symbol, str(path), ts_ns, *values)


def load_stored(spec: str, symbol: str) -> BarSeries:
    """`store:VENUE/SYMBOL/INTERVAL`: every bar of that series in the data store under
    VELOZ_DATA_DIR ([data.md](../../../docs/data.md)), as floats like every other source."""
    parts = spec.removeprefix(STORE_PREFIX).split("/")
    if len(parts) != 3 or not all(parts):
        raise BarDataError(
            f"{spec}: expected store:VENUE/SYMBOL/INTERVAL, e.g. store:binance/BTCUSDT/1m"
        )
    store = ParquetStore(data_root())
    try:
        key = SeriesKey(check_venue(parts[0]), parts[1].upper(), parts[2])
        frame = store.read(key, exact=False)
    except (DataError, pl.exceptions.PolarsError, OSError) as exc:
        raise BarDataError(f"{spec}: {exc}") from None
    if frame.is_empty():
        raise BarDataError(
            f"{spec}: no bars stored in {store.directory(key)} (veloz data import|download)"
        )
    opens, highs, lows, closes, volumes = (
        frame[name].to_numpy().astype(np.float64, copy=False) for name in VALUE_COLUMNS
    )
    values: _Values = (opens, highs, lows, closes, volumes)
    ts_ns = frame["ts_ns"].to_numpy()
    _check(_Where(str(store.directory(key)), "row", 1), ts_ns, values)
    return BarSeries(symbol, spec, ts_ns, *values)


@dataclass(frozen=True)
class _Where:
    """Where data row `index` sits in the file, for messages."""

    label: str
    unit: Literal["line", "row"]
    first: int

    def at(self, index: int) -> str:
        return f"{self.unit} {self.first + index}"

    def error(self, index: int, problem: str) -> BarDataError:
        return BarDataError(f"{self.label}: {self.at(index)}: {problem}")


def _file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BarDataError(f"{path}: cannot read: {exc.strerror}") from exc


def _zip_member(path: Path) -> tuple[bytes, str]:
    """The one CSV inside a Binance zip, and the label messages use for it."""
    try:
        with zipfile.ZipFile(io.BytesIO(_file_bytes(path))) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            if len(names) != 1:
                raise BarDataError(f"{path}: expected one CSV inside, found {len(names)} files")
            return archive.read(names[0]), f"{path} [{names[0]}]"
    except zipfile.BadZipFile as exc:
        raise BarDataError(f"{path}: not a readable zip archive: {exc}") from exc


def _lines(data: bytes) -> tuple[IntArray, IntArray]:
    """The end offset and the comma-separated field count (0 when empty) of every line."""
    if not data:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buffer == ord("\n"))
    if buffer[-1] != ord("\n"):
        ends = np.append(ends, len(buffer))
    starts = np.concatenate(([0], ends[:-1] + 1))
    commas = np.flatnonzero(buffer == ord(","))
    count = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
    length = ends - starts - (buffer[ends - 1] == ord("\r"))
    return ends.astype(np.int64), np.where(length > 0, count + 1, 0).astype(np.int64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(data: bytes, label: str, fmt: BarFormat) -> tuple[_Where, IntArray, _Values]:
    ends, fields = _lines(data)
    filled = np.flatnonzero(fields)
    if len(filled) == 0:
        raise BarDataError(f"{label}: no bars (empty file)")
    last = int(filled[-1])
    if last < len(fields) - 1:  # blank lines at the end, which polars would read as rows
        data, ends, fields = data[: int(ends[last])], ends[: last + 1], fields[: last + 1]
    first_line = data[: int(ends[0])].decode("utf-8-sig", errors="replace").rstrip("\r")
    names = [name.strip() for name in first_line.split(",")]
    header = not _is_number(names[0])
    binance = fmt == "binance" or (fmt == "auto" and (not header or names[0] == "open_time"))
    expected = _check_header(label, names if header else None, binance)
    where = _Where(label, "line", 2 if header else 1)
    fields = fields[1 if header else 0 :]
    if len(fields) == 0:
        raise BarDataError(f"{label}: no bars")
    bad = _first_true(fields != expected)
    if bad is not None:
        found = int(fields[bad])
        kind = "a Binance kline" if binance else "a bar"
        problem = f"expected {expected} comma-separated fields for {kind}, found {found}"
        raise where.error(bad, problem)
    try:
        raw = pl.read_csv(
            data,
            has_header=header,
            infer_schema=False,
            quote_char=None,
            columns=list(range(6)) if binance else None,
        )
    except pl.exceptions.PolarsError as exc:
        raise BarDataError(f"{label}: cannot read as CSV: {exc}") from exc
    if binance:
        raw.columns = ["open_time", *VALUE_COLUMNS]
        time = _binance_time()
    elif (raw["timestamp"][0] or "").isdigit():
        time = _integer_time("timestamp", "integer nanoseconds")
    else:
        time = _iso_time(_ISO_FAST, fallback=_iso_time(_ISO_FORMAT))
    parsed = _parse(raw, time)
    if time.fallback is not None and parsed[time.column].null_count() > 0:
        time = time.fallback
        parsed = _parse(raw, time)
    _reject_unparsed(raw, parsed, where, time)
    return where, *_arrays(parsed, time.column)


def _check_header(label: str, names: list[str] | None, binance: bool) -> int:
    """The field count every row must have, once the header (if any) is the expected one."""
    if binance:
        if names is not None and (len(names) != 12 or tuple(names[:6]) != BINANCE_HEADER[:6]):
            found = ",".join(names)
            raise BarDataError(f"{label}: line 1: not a Binance kline header: {found!r}")
        return len(BINANCE_HEADER)
    if names is None or sorted(names) != sorted(NAUTILUS_HEADER):
        found = "no header" if names is None else repr(",".join(names))
        wanted = ",".join(NAUTILUS_HEADER)
        raise BarDataError(f"{label}: line 1: expected the header {wanted}, found {found}")
    return len(NAUTILUS_HEADER)


@dataclass(frozen=True)
class _TimeParser:
    """How a CSV's time column becomes UTC nanoseconds (null where it cannot), and the
    slower parser to try when some rows do not fit this one."""

    column: str
    expression: pl.Expr
    expected: str
    fallback: "_TimeParser | None" = None


def _integer_time(column: str, expected: str) -> _TimeParser:
    return _TimeParser(column, pl.col(column).cast(pl.Int64, strict=False), expected)


def _binance_time() -> _TimeParser:
    parser = _integer_time("open_time", "integer milliseconds or microseconds")
    ms = parser.expression
    ns = pl.when(ms < MICROSECONDS_FROM).then(ms * 1_000_000).otherwise(ms * 1_000)
    return replace(parser, expression=ns)


def _iso_time(time_format: str, fallback: _TimeParser | None = None) -> _TimeParser:
    """Text with a space or T, then an optional Z or +00:00; naive is UTC."""
    ns = (
        pl.col("timestamp")
        .str.replace("T", " ", literal=True)
        .str.strip_suffix("Z")
        .str.strip_suffix("+00:00")
        .str.to_datetime(format=time_format, time_unit="ns", strict=False)
        .dt.epoch("ns")
    )
    expected = "a UTC time like 2021-12-31 23:01:00.000000"
    return _TimeParser("timestamp", ns, expected, fallback)


def _parse(raw: pl.DataFrame, time: _TimeParser) -> pl.DataFrame:
    """The time and value columns parsed in one polars pass, null where a field does not
    parse (or is empty)."""
    return raw.select(
        time.expression.alias(time.column),
        *(pl.col(name).cast(pl.Float64, strict=False) for name in VALUE_COLUMNS),
    )


def _reject_unparsed(
    raw: pl.DataFrame, parsed: pl.DataFrame, where: _Where, time: _TimeParser
) -> None:
    hits = [(_first_true(parsed[c].is_null().to_numpy()), c) for c in parsed.columns]
    found = [(index, name) for index, name in hits if index is not None]
    if found:
        index, name = min(found)
        expected = time.expected if name == time.column else "a number"
        raise where.error(index, f"{name} {raw[name][index] or ''!r} is not {expected}")


def _arrays(parsed: pl.DataFrame, time_column: str) -> tuple[IntArray, _Values]:
    ts_ns = parsed[time_column].to_numpy().astype(np.int64, copy=False)
    opens, highs, lows, closes, volumes = (
        parsed[name].to_numpy().astype(np.float64, copy=False) for name in VALUE_COLUMNS
    )
    return ts_ns, (opens, highs, lows, closes, volumes)


def _read_parquet(path: Path) -> tuple[_Where, IntArray, _Values]:
    try:
        schema = pl.read_parquet_schema(path)
        time_column = _parquet_time_column(path, schema)
        for name in VALUE_COLUMNS:
            if name not in schema or not schema[name].is_numeric():
                raise BarDataError(f"{path}: needs a numeric {name} column")
        frame = pl.read_parquet(path, columns=[time_column, *VALUE_COLUMNS])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BarDataError(f"{path}: cannot read as Parquet: {exc}") from exc
    if frame.height == 0:
        raise BarDataError(f"{path}: no bars")
    where = _Where(str(path), "row", 1)
    for name in frame.columns:
        missing = _first_true(frame[name].is_null().to_numpy())
        if missing is not None:
            raise where.error(missing, f"{name} is missing")
    times = frame[time_column]
    if time_column == "timestamp":
        times = times.dt.epoch("ns")
    values = [
        frame[name].cast(pl.Float64).to_numpy().astype(np.float64, copy=False)
        for name in VALUE_COLUMNS
    ]
    opens, highs, lows, closes, volumes = values
    return where, times.cast(pl.Int64).to_numpy(), (opens, highs, lows, closes, volumes)


def _parquet_time_column(path: Path, schema: dict[str, pl.DataType]) -> str:
    if "ts_ns" in schema and schema["ts_ns"].is_integer():
        return "ts_ns"
    if "timestamp" in schema and isinstance(schema["timestamp"], pl.Datetime):
        return "timestamp"
    raise BarDataError(f"{path}: needs an integer ts_ns or a datetime timestamp column")


def _first_true(mask: npt.NDArray[np.bool_]) -> int | None:
    """The index of the first True in `mask`, or None."""
    if len(mask) == 0:
        return None
    index = int(np.argmax(mask))
    return index if mask[index] else None


def _check(where: _Where, ts_ns: IntArray, values: _Values) -> None:
    """Raise for the earliest row that breaks a rule: values finite, volume ≥ 0,
    low ≤ high, open and close within [low, high], time after the previous row's."""
    opens, highs, lows, closes, volumes = values
    broken = ~np.logical_and.reduce([np.isfinite(array) for array in values])
    broken |= (volumes < 0) | (highs < lows)
    broken |= (opens < lows) | (opens > highs) | (closes < lows) | (closes > highs)
    broken[1:] |= np.diff(ts_ns) <= 0
    index = _first_true(broken)
    if index is not None:
        raise where.error(index, _problem(where, index, ts_ns, values))


def _problem(where: _Where, i: int, ts_ns: IntArray, values: _Values) -> str:
    """The first rule that row `i` breaks, in words."""
    row = dict(zip(VALUE_COLUMNS, (float(array[i]) for array in values), strict=True))
    for name, value in row.items():
        if not math.isfinite(value):
            return f"{name} is {value}"
    low, high = row["low"], row["high"]
    if row["volume"] < 0:
        return f"volume {row['volume']} is negative"
    if high < low:
        return f"high {high} is below low {low}"
    for name in ("open", "close"):
        if not low <= row[name] <= high:
            return f"{name} {row[name]} is outside [low {low}, high {high}]"
    return f"time {_iso(ts_ns[i])} is not after {where.at(i - 1)} ({_iso(ts_ns[i - 1])})"


def _iso(ns: np.int64) -> str:
    return f"{np.datetime64(int(ns), 'ns')}Z"
