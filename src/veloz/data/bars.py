"""The one form every bar takes here, whatever file or API it came from: a polars frame
with `ts_ns` (Int64, the bar's open time in UTC nanoseconds) and `open`, `high`, `low`,
`close`, `volume` as decimal text (String), oldest first.

Prices and volumes stay text so that they are stored exactly as the venue wrote them
(polars' Decimal needs one fixed scale per column, and float64 would turn 0.1 into
0.1000000000000000055...). The text is canonical: plain notation, no exponent, no
trailing fractional zeros (`46319.00000000` -> `46319`), so the same bar read from a
Binance zip and from the REST API compares equal. Floats appear only to check the bars
(`high >= low`...), never in what is stored.
"""

import re
from decimal import Decimal, InvalidOperation

import polars as pl

VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
COLUMNS = ("ts_ns", *VALUE_COLUMNS)
SCHEMA = {"ts_ns": pl.Int64, **{name: pl.String for name in VALUE_COLUMNS}}

# Fixed-length intervals, as Binance names them. `1M` (a calendar month) has no fixed
# length, so gaps cannot be counted in it: it is not supported.
INTERVALS_NS = {
    name: seconds * 1_000_000_000
    for name, seconds in {
        "1s": 1,
        "1m": 60,
        "3m": 180,
        "5m": 300,
        "15m": 900,
        "30m": 1800,
        "1h": 3600,
        "2h": 7200,
        "4h": 14_400,
        "6h": 21_600,
        "8h": 28_800,
        "12h": 43_200,
        "1d": 86_400,
        "3d": 259_200,
        "1w": 604_800,
    }.items()
}
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,39}")
_PLAIN = r"^[0-9]+(\.[0-9]+)?$"


class DataError(ValueError):
    """Input that cannot be used: the message names the file (and line) or the symbol."""


def check_symbol(symbol: str) -> str:
    """The symbol upper-cased; letters, digits, `-` and `_` only (it names a directory)."""
    upper = symbol.strip().upper()
    if not _SYMBOL.fullmatch(upper):
        raise DataError(f"bad symbol {symbol!r}: letters, digits, '-' and '_' only")
    return upper


def interval_ns(interval: str) -> int:
    try:
        return INTERVALS_NS[interval]
    except KeyError:
        raise DataError(
            f"unknown interval {interval!r}; one of {', '.join(INTERVALS_NS)}"
        ) from None


def interval_name(step_ns: int) -> str | None:
    return next((name for name, ns in INTERVALS_NS.items() if ns == step_ns), None)


def canonical_values(frame: pl.DataFrame, where: str, first_line: int) -> pl.DataFrame:
    """`frame`'s value columns (text) in canonical form, after checking each is a
    non-negative decimal number; the first bad one raises a DataError naming its line
    (row i is line `first_line + i`)."""
    out = {}
    for name in VALUE_COLUMNS:
        column = frame[name].str.strip_chars()
        plain = column.str.contains(_PLAIN)
        if not plain.all():
            column = _from_exponents(column, plain, name, where, first_line)
        out[name] = (
            column.str.replace(r"^0+([0-9])", "$1")
            .str.replace(r"(\.[0-9]*?)0+$", "$1")
            .str.replace(r"\.$", "")
        )
    return frame.with_columns(**out)


def _from_exponents(
    column: pl.Series, plain: pl.Series, name: str, where: str, first_line: int
) -> pl.Series:
    """Values such as `1e-05` (pandas writes them) rewritten in plain notation; anything
    else that is not a non-negative number is an error."""
    values = column.to_list()
    for index in (~plain).arg_true().to_list():
        text = values[index]
        try:
            number = Decimal(text)
        except (InvalidOperation, TypeError):
            number = Decimal("NaN")
        if not number.is_finite() or number < 0:
            raise DataError(f"{where}: line {first_line + index}: bad {name} {text!r}")
        values[index] = "0" if number.is_zero() else format(number, "f")
    return pl.Series(name, values, dtype=pl.String)


def check_bars(frame: pl.DataFrame, where: str, first_line: int) -> None:
    """Each bar sane: `low <= open, close <= high`. Raises for the earliest bad line."""
    f = frame.select(pl.col(name).cast(pl.Float64) for name in VALUE_COLUMNS)
    bad = (
        (f["high"] < f["low"])
        | (f["open"] < f["low"])
        | (f["open"] > f["high"])
        | (f["close"] < f["low"])
        | (f["close"] > f["high"])
    )
    if bad.any():
        index = int(bad.arg_true()[0])
        row = frame.row(index, named=True)
        raise DataError(
            f"{where}: line {first_line + index}: open {row['open']} high {row['high']} "
            f"low {row['low']} close {row['close']}: not low <= open, close <= high"
        )


def sort_and_dedupe(frame: pl.DataFrame, where: str) -> tuple[pl.DataFrame, int]:
    """`frame` sorted by time with identical repeated bars dropped, and how many were
    dropped. The same time with other values is an error."""
    frame = frame.sort("ts_ns", maintain_order=True)
    unique = frame.unique(maintain_order=True)
    clash = unique.filter(pl.col("ts_ns").is_duplicated())
    if len(clash):
        raise DataError(f"{where}: two different bars at {format_ns(int(clash['ts_ns'][0]))}")
    return unique, len(frame) - len(unique)


def format_ns(ts_ns: int) -> str:
    """UTC ISO 8601 (`2024-01-01T00:00:00Z`), to the second unless finer is needed."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    stamp = pl.Series([seconds * 1_000_000], dtype=pl.Datetime("us")).dt.strftime(
        "%Y-%m-%dT%H:%M:%S"
    )[0]
    return f"{stamp}.{rest:09d}Z" if rest else f"{stamp}Z"
