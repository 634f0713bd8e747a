"""Bar files: each format read exactly, every broken file refused naming its line, the
public sample read as it is, and long series built by shifting copies."""

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.support.sample_bars import sample_path
from veloz.backtest.data import (
    BarDataError,
    BarSeries,
    concat_shifted,
    load_bars,
)

HEADER = "timestamp,open,high,low,close,volume"
BINANCE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
SAMPLE = "btc-perp-20211231-20220201_1m.csv"
MINUTE_NS = 60_000_000_000
T0 = 1_640_991_660_000_000_000  # 2021-12-31 23:01:00 UTC


def ns(text: str) -> int:
    """UTC nanoseconds of an ISO time (naive means UTC), independently of the loader."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def write(path: Path, *lines: str, end: str = "\n") -> Path:
    path.write_text(end.join(lines) + end)
    return path


def binance_row(open_time: int, ohlcv: str = "1,2,0.5,1.5,3") -> str:
    return f"{open_time},{ohlcv},{open_time + 59_999},1876949.47,1144,20.1,930.6,0"


def arrays(series: BarSeries) -> list[list[float]]:
    return [a.tolist() for a in (series.open, series.high, series.low, series.close, series.volume)]


def bars(ts_ns: list[int]) -> BarSeries:
    values = np.arange(len(ts_ns), dtype=np.float64) + 1
    return BarSeries("X", "mem", np.array(ts_ns, dtype=np.int64), *(values.copy() for _ in "ohlcv"))


# --- NautilusTrader-style CSV ------------------------------------------------------


def test_nautilus_csv_with_iso_times(tmp_path):
    path = write(
        tmp_path / "bars.csv",
        HEADER,
        "2021-12-31 23:01:00.000000,46319.0,46385.0,46319.0,46377.0,2300413.7295",
        "2021-12-31 23:02:00.000000,46377.0,46411.0,46377.0,46411.0,1829623.1938",
    )
    series = load_bars(path, "BTCUSDT-PERP")
    assert (series.symbol, series.source, len(series)) == ("BTCUSDT-PERP", str(path), 2)
    assert series.ts_ns.dtype == np.int64
    assert series.ts_ns.tolist() == [T0, T0 + MINUTE_NS]
    assert arrays(series) == [
        [46319.0, 46377.0],
        [46385.0, 46411.0],
        [46319.0, 46377.0],
        [46377.0, 46411.0],
        [2300413.7295, 1829623.1938],
    ]


def test_iso_times_accept_t_z_offset_and_any_fraction(tmp_path):
    times = [
        "2022-01-01T00:00:00Z",
        "2022-01-01 00:01:00.5",
        "2022-01-01T00:02:00.123456789+00:00",
        "2022-01-01T00:03:00.000001",
    ]
    path = write(tmp_path / "bars.csv", HEADER, *(f"{t},1,2,0.5,1.5,3" for t in times))
    got = load_bars(path, "X").ts_ns.tolist()
    assert got[0] == ns("2022-01-01T00:00:00+00:00")
    assert got[1] == ns("2022-01-01T00:01:00.5")
    assert got[2] == ns("2022-01-01T00:02:00") + 123_456_789
    assert got[3] == ns("2022-01-01T00:03:00") + 1_000


def test_nautilus_csv_with_integer_nanoseconds_and_crlf(tmp_path):
    rows = [f"{T0 + k * MINUTE_NS},{10 + k},{12 + k},{9 + k},{11 + k},{k}" for k in range(3)]
    path = write(tmp_path / "bars.csv", HEADER, *rows, end="\r\n")
    series = load_bars(path, "X")
    assert series.ts_ns.tolist() == [T0, T0 + MINUTE_NS, T0 + 2 * MINUTE_NS]
    assert series.close.tolist() == [11.0, 12.0, 13.0]
    assert series.volume.tolist() == [0.0, 1.0, 2.0]


def test_columns_are_found_by_header_name(tmp_path):
    path = write(
        tmp_path / "bars.csv",
        "volume,close,low,high,open,timestamp",
        f"5,1.5,0.5,2,1,{T0}",
    )
    series = load_bars(path, "X")
    assert series.ts_ns.tolist() == [T0]
    assert arrays(series) == [[1.0], [2.0], [0.5], [1.5], [5.0]]


def test_trailing_blank_lines_are_not_bars(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(f"{HEADER}\n{T0},1,2,0.5,1.5,3\n\n\r\n\n")
    assert len(load_bars(path, "X")) == 1


# --- Binance klines ---------------------------------------------------------------


def test_binance_csv_without_header(tmp_path):
    ms = 1_640_995_200_000  # 2022-01-01 00:00 UTC
    path = write(
        tmp_path / "BTCUSDT-1m-2022-01.csv",
        binance_row(ms, "46216.93,46271.08,46208.37,46250.00,40.57574"),
        binance_row(ms + 60_000, "46250.00,46300.00,46220.00,46271.11,42.5"),
    )
    series = load_bars(path, "BTCUSDT")
    assert series.ts_ns.tolist() == [ns("2022-01-01T00:00:00"), ns("2022-01-01T00:01:00")]
    assert arrays(series) == [
        [46216.93, 46250.0],
        [46271.08, 46300.0],
        [46208.37, 46220.0],
        [46250.0, 46271.11],
        [40.57574, 42.5],
    ]


def test_binance_csv_with_header(tmp_path):
    path = write(
        tmp_path / "klines.csv", BINANCE_HEADER, binance_row(1_640_995_200_000, "1,2,0,1,3")
    )
    series = load_bars(path, "X")
    assert series.ts_ns.tolist() == [ns("2022-01-01T00:00:00")]
    assert arrays(series) == [[1.0], [2.0], [0.0], [1.0], [3.0]]


def test_binance_milliseconds_and_microseconds_give_the_same_times(tmp_path):
    ms = [1_735_689_600_000 + k * 60_000 for k in range(3)]  # 2025-01-01 00:00 UTC on
    rows = [binance_row(t) for t in ms]
    micro_rows = [binance_row(t * 1000) for t in ms]
    in_ms = load_bars(write(tmp_path / "ms.csv", *rows), "X")
    in_us = load_bars(write(tmp_path / "us.csv", *micro_rows), "X")
    assert in_ms.ts_ns.tolist() == in_us.ts_ns.tolist() == [t * 1_000_000 for t in ms]


def test_binance_zip_is_read_directly(tmp_path):
    ms = 1_640_995_200_000
    content = "\n".join(binance_row(ms + k * 60_000, f"1,2,0.5,1.5,{k}") for k in range(4))
    path = tmp_path / "BTCUSDT-1m-2022-01.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-1m-2022-01.csv", content + "\n")
    series = load_bars(path, "BTCUSDT")
    assert series.source == str(path)
    assert series.ts_ns.tolist() == [(ms + k * 60_000) * 1_000_000 for k in range(4)]
    assert series.volume.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_zip_errors_name_the_member_and_line(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2022-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inner.csv", binance_row(1_640_995_200_000, "1,2,3,1.5,1"))
    with pytest.raises(BarDataError) as raised:
        load_bars(path, "X")
    assert f"{path} [inner.csv]: line 1: high 2.0 is below low 3.0" in str(raised.value)


@pytest.mark.parametrize("members", [[], ["a.csv", "b.csv"]])
def test_a_zip_must_hold_exactly_one_file(tmp_path, members):
    path = tmp_path / "klines.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in members:
            archive.writestr(name, "")
    with pytest.raises(BarDataError, match=f"expected one CSV inside, found {len(members)}"):
        load_bars(path, "X")


def test_a_broken_zip_is_refused(tmp_path):
    path = tmp_path / "klines.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(BarDataError, match="not a readable zip archive") as raised:
        load_bars(path, "X")
    assert str(path) in str(raised.value)


# --- Parquet ----------------------------------------------------------------------


def frame_values() -> dict[str, list[float]]:
    return {
        "open": [1.0, 2.0],
        "high": [2.0, 3.0],
        "low": [0.5, 1.5],
        "close": [1.5, 2.5],
        "volume": [10.0, 0.0],
    }


def test_parquet_with_integer_ts_ns(tmp_path):
    path = tmp_path / "bars.parquet"
    pl.DataFrame({"ts_ns": [T0, T0 + MINUTE_NS], **frame_values()}).write_parquet(path)
    series = load_bars(path, "X")
    assert series.ts_ns.tolist() == [T0, T0 + MINUTE_NS]
    assert arrays(series) == list(frame_values().values())


@pytest.mark.parametrize("time_zone", [None, "UTC"])
def test_parquet_with_a_datetime_timestamp(tmp_path, time_zone):
    path = tmp_path / "bars.parquet"
    moments = [datetime(2021, 12, 31, 23, 1), datetime(2021, 12, 31, 23, 2, 0, 5)]
    frame = pl.DataFrame({"timestamp": moments, **frame_values()})
    if time_zone:
        frame = frame.with_columns(pl.col("timestamp").dt.replace_time_zone(time_zone))
    frame.write_parquet(path)
    series = load_bars(path, "X")
    assert series.ts_ns.tolist() == [T0, T0 + MINUTE_NS + 5_000]
    assert arrays(series) == list(frame_values().values())


def test_parquet_errors_name_the_row(tmp_path):
    path = tmp_path / "bars.parquet"
    values = frame_values() | {"high": [2.0, 1.0]}
    pl.DataFrame({"ts_ns": [T0, T0 + MINUTE_NS], **values}).write_parquet(path)
    with pytest.raises(BarDataError) as raised:
        load_bars(path, "X")
    assert f"{path}: row 2: high 1.0 is below low 1.5" in str(raised.value)


def test_parquet_missing_values_are_refused(tmp_path):
    path = tmp_path / "bars.parquet"
    values = frame_values() | {"close": [1.5, None]}
    pl.DataFrame({"ts_ns": [T0, T0 + MINUTE_NS], **values}).write_parquet(path)
    with pytest.raises(BarDataError, match="row 2: close is missing"):
        load_bars(path, "X")


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"ts_ns": [T0], "open": [1.0]}, "needs a numeric high column"),
        ({"time": [T0], **{k: v[:1] for k, v in frame_values().items()}}, "ts_ns or a"),
        ({"ts_ns": [1.5], **{k: v[:1] for k, v in frame_values().items()}}, "ts_ns or a"),
    ],
)
def test_parquet_needs_its_columns(tmp_path, columns, problem):
    path = tmp_path / "bars.parquet"
    pl.DataFrame(columns).write_parquet(path)
    with pytest.raises(BarDataError, match=problem):
        load_bars(path, "X")


def test_an_empty_parquet_file_has_no_bars(tmp_path):
    path = tmp_path / "bars.parquet"
    pl.DataFrame({"ts_ns": [], **{k: [] for k in frame_values()}}).cast(
        {"ts_ns": pl.Int64, **dict.fromkeys(frame_values(), pl.Float64)}
    ).write_parquet(path)
    with pytest.raises(BarDataError, match="no bars"):
        load_bars(path, "X")


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    path = write(tmp_path / "bars.parquet", HEADER)
    with pytest.raises(BarDataError, match="cannot read as Parquet"):
        load_bars(path, "X")


# --- errors in CSV files ----------------------------------------------------------

GOOD = f"{T0},1,2,0.5,1.5,3"
NEXT = f"{T0 + MINUTE_NS},1,2,0.5,1.5,3"
LAST = f"{T0 + 2 * MINUTE_NS},1,2,0.5,1.5,3"

ERRORS = {
    "too few fields": ([HEADER, GOOD, f"{T0 + MINUTE_NS},1,2,0.5,1.5"], 3, "found 5"),
    "too many fields": ([HEADER, GOOD, NEXT + ",7"], 3, "expected 6 comma-separated fields"),
    "blank line": ([HEADER, GOOD, "", LAST], 3, "found 0"),
    "text for a price": ([HEADER, GOOD, f"{T0 + MINUTE_NS},1,2,abc,1.5,3"], 3, "low 'abc' is not"),
    "empty value": ([HEADER, GOOD, NEXT, f"{T0 + 3 * MINUTE_NS},1,2,0.5,,3"], 4, "close ''"),
    "bad integer time": ([HEADER, GOOD, "16409916x,1,2,0.5,1.5,3"], 3, "integer nanoseconds"),
    "bad iso time": (
        [HEADER, "2022-01-01 00:00:00,1,2,0.5,1.5,3", "2022-01-01 00:01:00+02:00,1,2,0.5,1.5,3"],
        3,
        "'2022-01-01 00:01:00+02:00' is not a UTC time",
    ),
    "same time": ([HEADER, GOOD, NEXT, NEXT], 4, "is not after line 3"),
    "time going back": ([HEADER, NEXT, GOOD], 3, "is not after line 2 (2021-12-31T23:02"),
    "nan": ([HEADER, GOOD, f"{T0 + MINUTE_NS},1,nan,0.5,1.5,3"], 3, "high is nan"),
    "infinite": ([HEADER, GOOD, NEXT, f"{T0 + 3 * MINUTE_NS},1,2,0.5,1.5,inf"], 4, "volume is inf"),
    "negative volume": ([HEADER, GOOD, f"{T0 + MINUTE_NS},1,2,0.5,1.5,-3"], 3, "negative"),
    "high below low": ([HEADER, f"{T0},1,0.5,2,1.5,3"], 2, "high 0.5 is below low 2.0"),
    "open above high": (
        [HEADER, GOOD, f"{T0 + MINUTE_NS},2.5,2,0.5,1.5,3"],
        3,
        "open 2.5 is outside",
    ),
    "open below low": ([HEADER, f"{T0},0.4,2,0.5,1.5,3"], 2, "open 0.4 is outside [low 0.5, high"),
    "close above high": ([HEADER, GOOD, f"{T0 + MINUTE_NS},1,2,0.5,2.01,3"], 3, "close 2.01 is"),
    "close below low": ([HEADER, f"{T0},1,2,0.5,0,3"], 2, "close 0.0 is outside"),
    "earliest row wins": (
        [HEADER, NEXT, GOOD, f"{T0 + 5 * MINUTE_NS},nan,2,0.5,1.5,-3"],
        3,
        "is not after line 2",
    ),
    "first rule broken": ([HEADER, GOOD, f"{T0},1,0.1,0.5,9,-1"], 3, "volume -1.0 is negative"),
    "no header, so Binance": ([GOOD], 1, "12 comma-separated fields for a Binance kline, found 6"),
    "wrong header": (["time,open,high,low,close,volume", GOOD], 1, "found 'time,open"),
    "binance field count": (
        [binance_row(1_640_995_200_000, "1,2,0,1,3"), "1640995260000,1,2,0,1,3"],
        2,
        "expected 12 comma-separated fields for a Binance kline, found 6",
    ),
    "binance bad time": (
        [binance_row(1, "1,2,0,1,3"), "1.5e12" + binance_row(1, "1,2,0,1,3")[1:]],
        2,
        "open_time",
    ),
    "binance header": (
        [BINANCE_HEADER.replace("open,", "o,"), binance_row(1, "1,2,0,1,3")],
        1,
        "kline header",
    ),
}


@pytest.mark.parametrize(("lines", "line", "problem"), ERRORS.values(), ids=ERRORS.keys())
def test_broken_csv_names_the_file_and_line(tmp_path, lines, line, problem):
    path = write(tmp_path / "broken.csv", *lines)
    with pytest.raises(BarDataError) as raised:
        load_bars(path, "X")
    message = str(raised.value)
    assert message.startswith(f"{path}: line {line}: "), message
    assert problem in message


def test_out_of_order_names_both_lines(tmp_path):
    path = write(tmp_path / "bars.csv", HEADER, GOOD, LAST, NEXT)
    with pytest.raises(BarDataError) as raised:
        load_bars(path, "X")
    assert str(raised.value) == (
        f"{path}: line 4: time 2021-12-31T23:02:00.000000000Z is not after line 3 "
        "(2021-12-31T23:03:00.000000000Z)"
    )


def test_bar_data_error_is_a_value_error():
    assert issubclass(BarDataError, ValueError)


@pytest.mark.parametrize("content", ["", "\n\n", HEADER + "\n"])
def test_a_file_without_bars_is_refused(tmp_path, content):
    path = tmp_path / "bars.csv"
    path.write_text(content)
    with pytest.raises(BarDataError, match="no bars") as raised:
        load_bars(path, "X")
    assert str(path) in str(raised.value)


def test_a_missing_file_is_refused(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(BarDataError, match=f"{path}: no such file"):
        load_bars(path, "X")


def test_auto_needs_a_known_extension(tmp_path):
    path = write(tmp_path / "bars.txt", HEADER, GOOD)
    with pytest.raises(BarDataError, match="pass fmt"):
        load_bars(path, "X")
    assert load_bars(path, "X", fmt="nautilus").ts_ns.tolist() == [T0]


def test_an_explicit_format_is_obeyed(tmp_path):
    path = write(tmp_path / "bars.csv", HEADER, GOOD)
    with pytest.raises(BarDataError, match="line 1: not a Binance kline header"):
        load_bars(path, "X", fmt="binance")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(2, 40).flatmap(lambda n: st.permutations(range(n))))
def test_any_out_of_order_permutation_is_reported_at_its_line(tmp_path, order):
    assume(order != sorted(order))
    path = write(
        tmp_path / "shuffled.csv",
        HEADER,
        *(f"{T0 + minute * MINUTE_NS},1,2,0.5,1.5,{minute}" for minute in order),
    )
    first = next(i for i in range(1, len(order)) if order[i] < order[i - 1])
    with pytest.raises(BarDataError) as raised:
        load_bars(path, "X")
    message = str(raised.value)
    assert message.startswith(f"{path}: line {first + 2}: time "), message
    assert f" is not after line {first + 1} (" in message


# --- the public sample ------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> BarSeries:
    return load_bars(sample_path(), "BTCUSDT-PERP")


def test_the_public_sample_loads_as_it_is(sample):
    assert len(sample) == 45_031
    assert sample.start_ns == ns("2021-12-31 23:01:00") == T0
    assert sample.end_ns == ns("2022-02-01 05:31:00")
    assert (sample.close[0], sample.close[-1]) == (46377.0, 38544.0)
    assert (sample.open[0], sample.high[0], sample.low[0]) == (46319.0, 46385.0, 46319.0)
    assert (sample.volume[0], sample.volume[-1]) == (2300413.7295, 685906.9735)
    assert sample.interval_ns == MINUTE_NS
    assert bool(np.all(np.diff(sample.ts_ns) > 0))


def test_ten_copies_of_the_sample(sample):
    long = concat_shifted(sample, 10)
    assert len(long) == 450_310
    assert bool(np.all(np.diff(long.ts_ns) > 0))
    assert long.interval_ns == MINUTE_NS
    assert np.array_equal(long.close[45_031:90_062], sample.close)


# --- series, concat_shifted --------------------------------------------------


def test_interval_is_the_most_common_step():
    assert bars([0, 60, 120, 300, 360, 420]).interval_ns == 60
    assert bars([0, 60, 180, 300]).interval_ns == 120
    assert bars([0, 60, 180]).interval_ns == 60  # a tie: the smaller step
    with pytest.raises(ValueError, match="one bar has no interval"):
        _ = bars([5]).interval_ns


def test_series_arrays_are_read_only():
    series = bars([0, 60])
    assert (series.start_ns, series.end_ns, len(series)) == (0, 60, 2)
    with pytest.raises(ValueError, match="read-only"):
        series.close[0] = 1.0


def test_series_refuses_inconsistent_arrays():
    ts = np.array([0, 60], dtype=np.int64)
    two = np.ones(2)
    with pytest.raises(ValueError, match="differ in length"):
        BarSeries("X", "mem", ts, two, two, two, two, np.ones(3))
    with pytest.raises(ValueError, match="int64"):
        BarSeries("X", "mem", ts.astype(np.float64), two, two, two, two, two)
    with pytest.raises(ValueError, match="at least one bar"):
        BarSeries("X", "mem", ts[:0], *(two[:0] for _ in "ohlcv"))


def test_concat_shifted_puts_one_interval_at_each_join():
    series = bars([100, 160, 220, 400])  # interval 60, span 300
    long = concat_shifted(series, 3)
    assert long.ts_ns.tolist() == [
        *[100, 160, 220, 400],
        *[460, 520, 580, 760],
        *[820, 880, 940, 1120],
    ]
    assert long.close.tolist() == [1.0, 2.0, 3.0, 4.0] * 3
    assert (long.symbol, long.source) == ("X", "mem")
    assert concat_shifted(series, 1).ts_ns.tolist() == series.ts_ns.tolist()
    with pytest.raises(ValueError, match="at least 1"):
        concat_shifted(series, 0)


def test_nautilus_format_needs_its_header(tmp_path):
    path = write(tmp_path / "bars.csv", GOOD)
    with pytest.raises(BarDataError) as raised:
        load_bars(path, "X", fmt="nautilus")
    assert str(raised.value) == (
        f"{path}: line 1: expected the header timestamp,open,high,low,close,volume, found no header"
    )
