"""Bar files into the form of `veloz.data.bars`: Binance's public kline dumps
(data.binance.vision: a monthly or daily zip holding one headerless CSV of 12 columns,
or that CSV alone) and NautilusTrader-style CSV (`timestamp,open,high,low,close,volume`).

Binance's `open_time` is milliseconds, or microseconds in spot dumps from 2025 on: the
unit is decided per file from the first row (16 digits or more: microseconds) and every
other row must be in the same unit. A bar's time is its open time; `close_time` and the
other columns (quote volume, trade count, taker volumes) are read, checked for their
count, and not kept.

A file is read whole or refused with a DataError naming the file and the 1-based line
(the header, when there is one, is line 1); nothing partial comes back.
"""

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from veloz.data.bars import (
    COLUMNS,
    VALUE_COLUMNS,
    DataError,
    canonical_values,
    check_bars,
    check_symbol,
)

FileFormat = Literal["auto", "binance", "nautilus"]
BINANCE_FIELDS = 12
NAUTILUS_HEADER = frozenset(("timestamp", *VALUE_COLUMNS))
# An open_time at or above this is microseconds: 10^15 µs is 2001, 10^15 ms the year 33658.
MICROSECONDS_FROM = 10**15
# BTCUSDT-1m-2024-01.zip, BTCUSDT-1m-2024-01-05.csv
_BINANCE_NAME = re.compile(r"([A-Za-z0-9]+)-(\d+[smhdw])-\d{4}-\d{2}(-\d{2})?\.(zip|csv)")


@dataclass(frozen=True)
class ReadFile:
    frame: pl.DataFrame  # ts_ns + canonical text values, in file order
    fmt: Literal["binance", "nautilus"]
    first_line: int  # the line of the first bar (2 when there is a header)
    symbol: str | None  # from a Binance file name
    interval: str | None  # from a Binance file name
    unit: str  # "ms", "us" or "ns"/"text" (nautilus)


def read_file(path: Path, fmt: FileFormat = "auto") -> ReadFile:
    """The bars in `path`. `auto`: a `.zip` is Binance; a `.csv` is Binance when its first
    field is a number or `open_time`, NautilusTrader-style otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = _BINANCE_NAME.fullmatch(path.name)
    symbol = check_symbol(name.group(1)) if name else None
    interval = name.group(2) if name else None
    if path.suffix.lower() == ".zip":
        data, where = _zip_member(path)
    else:
        try:
            data, where = path.read_bytes(), str(path)
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if fmt == "auto":
        if path.suffix.lower() not in (".zip", ".csv"):
            raise DataError(f"{path}: cannot tell the format: give --format binance|nautilus")
        first = data.lstrip()[:32].split(b",", 1)[0].strip()
        fmt = "binance" if first.isdigit() or first == b"open_time" else "nautilus"
    if fmt == "binance":
        frame, first_line, unit = _read_binance(data, where)
        return ReadFile(frame, "binance", first_line, symbol, interval, unit)
    frame, unit = _read_nautilus(data, where)
    return ReadFile(frame, "nautilus", 2, None, None, unit)


def _zip_member(path: Path) -> tuple[bytes, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1 or not names[0].lower().endswith(".csv"):
                raise DataError(f"{path}: expected exactly one .csv inside, found {names}")
            return archive.read(names[0]), f"{path}:{names[0]}"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable zip file ({exc})") from None


def _csv(data: bytes, where: str, has_header: bool, width: int) -> pl.DataFrame:
    """Every field as text; a row with another number of fields names its line."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    for index, line in enumerate(lines):
        if line.count(",") != width - 1:
            fields = line.count(",") + 1 if line else 0
            raise DataError(f"{where}: line {index + 1}: {fields} fields, expected {width}")
    if len(lines) <= int(has_header):
        raise DataError(f"{where}: no bars")
    frame = pl.read_csv(
        io.BytesIO(data),
        has_header=has_header,
        infer_schema=False,
        new_columns=None if has_header else [f"c{i}" for i in range(width)],
    )
    return frame.with_columns(pl.all().fill_null(""))  # an empty field: refused as text


def _read_binance(data: bytes, where: str) -> tuple[pl.DataFrame, int, str]:
    header = data.lstrip()[:9] == b"open_time"
    raw = _csv(data, where, header, BINANCE_FIELDS)
    raw.columns = ["open_time", *VALUE_COLUMNS, *(f"c{i}" for i in range(6, BINANCE_FIELDS))]
    first_line = 2 if header else 1
    times = raw["open_time"].str.strip_chars()
    digits = times.str.contains(r"^[0-9]{1,18}$")
    if not digits.all():
        index = int((~digits).arg_true()[0])
        raise DataError(f"{where}: line {first_line + index}: bad open_time {times[index]!r}")
    ts = times.cast(pl.Int64)
    micro = ts >= MICROSECONDS_FROM
    unit = "us" if micro[0] else "ms"
    mixed = micro != micro[0]
    if mixed.any():
        index = int(mixed.arg_true()[0])
        raise DataError(
            f"{where}: line {first_line + index}: open_time {ts[index]} is not in "
            f"{'microseconds' if unit == 'us' else 'milliseconds'} like line {first_line}"
        )
    scale = 1_000 if unit == "us" else 1_000_000
    frame = raw.select(pl.Series("ts_ns", ts * scale), *VALUE_COLUMNS)
    frame = canonical_values(frame, where, first_line)
    check_bars(frame, where, first_line)
    return frame.select(COLUMNS), first_line, unit


def _read_nautilus(data: bytes, where: str) -> tuple[pl.DataFrame, str]:
    raw = _csv(data, where, True, len(NAUTILUS_HEADER))
    if set(raw.columns) != NAUTILUS_HEADER:
        raise DataError(
            f"{where}: line 1: header {','.join(raw.columns)!r}, expected "
            "timestamp,open,high,low,close,volume (any order)"
        )
    text = raw["timestamp"].str.strip_chars()
    if text.str.contains(r"^[0-9]{1,19}$").all():
        ts, unit = text.cast(pl.Int64), "ns"
    else:
        ts, unit = _parse_times(text, where), "text"
    frame = raw.select(pl.Series("ts_ns", ts), *VALUE_COLUMNS)
    frame = canonical_values(frame, where, 2)
    check_bars(frame, where, 2)
    return frame.select(COLUMNS), unit


def _parse_times(text: pl.Series, where: str) -> pl.Series:
    """`2021-12-31 23:01:00.000000`, `…T…Z` or `…+00:00`: UTC; other offsets refused."""
    offset = text.str.extract(r"([+-][0-9]{2}:?[0-9]{2})$")
    other = offset.is_not_null() & ~offset.is_in(["+00:00", "+0000", "-00:00"])
    naive = text.str.replace(r"(Z|[+-][0-9]{2}:?[0-9]{2})$", "").str.replace("T", " ")
    parsed = naive.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns", strict=False)
    bad = parsed.is_null() | other
    if bad.any():
        index = int(bad.arg_true()[0])
        raise DataError(f"{where}: line {index + 2}: bad timestamp {text[index]!r} (UTC only)")
    return parsed.dt.epoch("ns")
