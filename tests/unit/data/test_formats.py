from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.sample_bars import sample_path
from tests.unit.data.kline_files import kline_row, minutes, write_zip
from veloz.data.bars import DataError
from veloz.data.formats import read_file

JAN_2024_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
JAN_2025_MS = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)


def test_a_millisecond_zip_reads_open_times_as_nanoseconds(tmp_path: Path) -> None:
    times = minutes(JAN_2024_MS, 3)
    path = write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", [kline_row(t) for t in times])
    read = read_file(path)
    assert (read.fmt, read.unit, read.symbol, read.interval) == ("binance", "ms", "BTCUSDT", "1m")
    assert read.frame["ts_ns"].to_list() == [t * 1_000_000 for t in times]
    # canonical exact text: Binance's padding zeros go, the digits stay
    assert read.frame.row(0) == (
        JAN_2024_MS * 1_000_000,
        "42000.1",
        "42010",
        "41990",
        "42005",
        "1.5",
    )


def test_a_microsecond_zip_gives_the_same_nanoseconds(tmp_path: Path) -> None:
    times = minutes(JAN_2025_MS, 3)
    micro = write_zip(tmp_path, "BTCUSDT-1m-2025-01.zip", [kline_row(t, micro=True) for t in times])
    milli = write_zip(tmp_path, "ETHUSDT-1m-2025-01.zip", [kline_row(t) for t in times])
    read_micro, read_milli = read_file(micro), read_file(milli)
    assert read_micro.unit == "us" and read_milli.unit == "ms"
    assert len(str(times[0] * 1000)) == 16  # the 16-digit form
    assert read_micro.frame.equals(read_milli.frame)
    assert read_micro.frame["ts_ns"][0] == JAN_2025_MS * 1_000_000


def test_a_header_line_is_skipped_and_counted(tmp_path: Path) -> None:
    rows = [kline_row(t) for t in minutes(JAN_2024_MS, 2)]
    rows.append(kline_row(JAN_2024_MS + 120_000).replace("41990.00000000", "x"))
    path = write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", rows, header=True)
    with pytest.raises(DataError, match=r"line 4: bad low 'x'"):
        read_file(path)


def test_mixed_units_in_one_file_are_refused(tmp_path: Path) -> None:
    t0, t1 = minutes(JAN_2025_MS, 2)
    path = write_zip(tmp_path, "BTCUSDT-1m-2025-01.zip", [kline_row(t0), kline_row(t1, micro=True)])
    with pytest.raises(DataError, match=r"line 2: .* not in milliseconds like line 1"):
        read_file(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip", "not a readable zip file"),
        (None, "no such file"),
    ],
)
def test_unusable_zip_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "BTCUSDT-1m-2024-01.zip"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_file(path)


def test_wrong_column_count_names_the_line(tmp_path: Path) -> None:
    rows = [kline_row(t) for t in minutes(JAN_2024_MS, 3)]
    rows[1] = rows[1].rsplit(",", 1)[0]
    path = write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", rows)
    with pytest.raises(DataError, match=r"line 2: 11 fields, expected 12"):
        read_file(path)


def test_a_bar_with_high_below_low_is_refused(tmp_path: Path) -> None:
    rows = [kline_row(t) for t in minutes(JAN_2024_MS, 2)]
    rows[1] = rows[1].replace("42010.00000000", "41000.00000000")
    path = write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", rows)
    with pytest.raises(DataError, match=r"line 2: .*not low <= open, close <= high"):
        read_file(path)


def _sample_head(tmp_path: Path, rows: int) -> Path:
    head = tmp_path / "btc.csv"
    with sample_path().open() as source, head.open("w") as target:
        for _ in range(rows + 1):
            target.write(source.readline())
    return head


def test_nautilus_csv_reads_text_times_as_utc(tmp_path: Path) -> None:
    path = _sample_head(tmp_path, 3)
    lines = path.read_text().splitlines()
    read = read_file(path)
    assert read.fmt == "nautilus"
    first = datetime(2021, 12, 31, 23, 1, tzinfo=UTC)
    assert read.frame["ts_ns"].to_list() == [
        int(first.timestamp()) * 10**9 + i * 60 * 10**9 for i in range(3)
    ]
    fields = lines[1].split(",")  # 2021-12-31 23:01:00.000000,46319.0,46385.0,...
    assert read.frame.row(0)[1:] == tuple(
        f.rstrip("0").rstrip(".") if "." in f else f for f in fields[1:]
    )


def test_nautilus_columns_in_another_order_and_iso_times(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "close,timestamp,open,high,low,volume\n"
        "101.5,2024-01-01T00:00:00Z,100,102,99,1e-05\n"
        "101,2024-01-01T00:01:00+00:00,101.5,101.5,100.5,3\n"
    )
    frame = read_file(path).frame
    assert frame["close"].to_list() == ["101.5", "101"]
    assert frame["volume"].to_list() == ["0.00001", "3"]
    assert frame["ts_ns"][1] - frame["ts_ns"][0] == 60 * 10**9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,open,high,low,close,volume\n1,1,1,1,1,1\n", "line 1: header"),
        (
            "timestamp,open,high,low,close,volume\n2024-01-01T00:00:00+02:00,1,1,1,1,1\n",
            "line 2: bad timestamp",
        ),
        ("timestamp,open,high,low,close,volume\n", "no bars"),
        (
            "timestamp,open,high,low,close,volume\n2024-01-01 00:00:00,1,1,,1,1\n",
            "line 2: bad low ''",
        ),
        ("timestamp,open,high,low,close,volume\n,1,1,1,1,1\n", "line 2: bad timestamp ''"),
        (
            "timestamp,open,high,low,close,volume\n2024-01-01 00:00:00,1,1,1,1,-2\n",
            "line 2: bad volume '-2'",
        ),
        (
            "timestamp,open,high,low,close,volume\n2024-01-01 00:00:00,1,1,1,nan,1\n",
            "line 2: bad close 'nan'",
        ),
    ],
)
def test_bad_nautilus_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_file(path, "nautilus")


def test_the_shared_sample_reads_whole_in_place() -> None:
    sample = sample_path()
    read = read_file(sample)
    with sample.open() as lines:
        assert len(read.frame) == sum(1 for _ in lines) - 1
    assert read.frame["ts_ns"].is_sorted()
    steps = read.frame["ts_ns"].diff().drop_nulls()
    assert steps.min() == 60 * 10**9  # strictly increasing minutes, gaps allowed
