from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.unit.data.kline_files import MINUTE_MS, kline_row, minutes, write_zip
from veloz.data.bars import DataError
from veloz.data.continuity import check_continuity
from veloz.data.importer import import_files
from veloz.data.store import ParquetStore, SeriesKey, check_venue

JAN_31_MS = int(datetime(2024, 1, 31, 23, 58, tzinfo=UTC).timestamp() * 1000)
KEY = SeriesKey("binance", "BTCUSDT", "1m")


def _files(tree: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()
    }


def test_import_splits_by_month_and_reimport_changes_nothing(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "store")
    times = minutes(JAN_31_MS, 5)  # 23:58, 23:59 in January; 00:00..00:02 in February
    path = write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", [kline_row(t) for t in times])
    _, written = import_files(store, [path])
    assert written[KEY].added == 5 and written[KEY].months == ("2024-01", "2024-02")
    assert [p.name for p in store.months(KEY)] == ["2024-01.parquet", "2024-02.parquet"]
    before = _files(store.root)
    _, again = import_files(store, [path])
    assert (again[KEY].added, again[KEY].unchanged, again[KEY].months) == (0, 5, ())
    assert _files(store.root) == before
    stored = store.read(KEY)
    assert stored["ts_ns"].to_list() == [t * 1_000_000 for t in times]
    assert stored["close"].to_list() == ["42005"] * 5


def test_overlapping_files_merge_and_a_conflict_writes_nothing(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "store")
    first = write_zip(
        tmp_path, "BTCUSDT-1m-2024-01.zip", [kline_row(t) for t in minutes(JAN_31_MS, 2)]
    )
    overlap = write_zip(
        tmp_path, "BTCUSDT-1m-2024-01-31.zip", [kline_row(t) for t in minutes(JAN_31_MS, 3)]
    )
    import_files(store, [first])
    _, written = import_files(store, [overlap])
    assert (written[KEY].added, written[KEY].unchanged) == (1, 2)
    before = _files(store.root)
    changed = [kline_row(t, close="42001") for t in minutes(JAN_31_MS + 2 * MINUTE_MS, 3)]
    clash = write_zip(tmp_path, "BTCUSDT-1m-2024-02.zip", changed)
    with pytest.raises(DataError, match=r"1 bar\(s\) differ .*\(close 42005 stored, 42001 new\)"):
        import_files(store, [clash])
    assert _files(store.root) == before
    _, replaced = import_files(store, [clash], replace=True)
    assert (replaced[KEY].replaced, replaced[KEY].added) == (1, 2)
    assert store.read(KEY)["close"].to_list() == ["42005", "42005", "42001", "42001", "42001"]


def test_one_bad_file_among_several_writes_nothing(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "store")
    good = write_zip(
        tmp_path, "BTCUSDT-1m-2024-01.zip", [kline_row(t) for t in minutes(JAN_31_MS, 2)]
    )
    bad = tmp_path / "ETHUSDT-1m-2024-01.zip"
    bad.write_bytes(b"PK broken")
    with pytest.raises(DataError, match="not a readable zip"):
        import_files(store, [good, bad])
    assert not (tmp_path / "store").exists()


def test_two_different_bars_at_one_time_in_a_file_are_refused(tmp_path: Path) -> None:
    rows = [kline_row(JAN_31_MS), kline_row(JAN_31_MS, close="42001")]
    path = write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", rows)
    with pytest.raises(DataError, match="two different bars at 2024-01-31T23:58:00Z"):
        import_files(ParquetStore(tmp_path / "store"), [path])


def test_identical_repeated_bars_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [kline_row(t) for t in minutes(JAN_31_MS, 2)]
    path = write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", [*rows, rows[0]])
    read, written = import_files(ParquetStore(tmp_path / "store"), [path])
    assert (read[0].bars, read[0].duplicates, written[KEY].added) == (2, 1, 2)


def test_bars_off_the_interval_grid_are_refused(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path, "BTCUSDT-1m-2024-01.zip", [kline_row(JAN_31_MS), kline_row(JAN_31_MS + 90_000)]
    )
    with pytest.raises(DataError, match="not a whole number of 60s intervals"):
        import_files(ParquetStore(tmp_path / "store"), [path])


def test_gaps_are_reported_with_the_missing_bar_count(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "store")
    # minutes 0..9 without 2, and without 5, 6, 7: two holes, 1 and 3 bars
    times = minutes(JAN_31_MS, 10, skip=frozenset({2, 5, 6, 7}))
    path = write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", [kline_row(t) for t in times])
    import_files(store, [path])
    report = store.continuity(KEY, MINUTE_MS * 1_000_000)
    assert (report.bars, report.expected, report.missing) == (6, 10, 4)
    ns = [t * 1_000_000 for t in times]
    assert [(g.after_ns, g.before_ns, g.missing) for g in report.gaps] == [
        (ns[1], ns[2], 1),
        (ns[3], ns[4], 3),
    ]


def test_continuity_counts_bars_off_the_grid() -> None:
    ts = np.array([0, 60, 150, 180, 300], dtype=np.int64)
    report = check_continuity(ts, 60)
    assert report.off_grid == 1  # 150
    assert [(g.after_ns, g.missing) for g in report.gaps] == [(60, 1), (180, 1)]
    empty = check_continuity(np.empty(0, dtype=np.int64), 60)
    assert (empty.bars, empty.expected, empty.gaps) == (0, 0, ())


def test_read_filters_by_time_and_gives_floats_on_request(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "store")
    times = minutes(JAN_31_MS, 4)
    import_files(
        store, [write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", [kline_row(t) for t in times])]
    )
    ns = [t * 1_000_000 for t in times]
    window = store.read(KEY, ns[1], ns[3], exact=False)
    assert window["ts_ns"].to_list() == ns[1:3]
    assert window.schema["close"] == pl.Float64 and window["open"][0] == 42000.1
    assert list(store.series()) == [KEY]
    assert store.find("btcusdt", None, None) == [KEY] and store.find("ETHUSDT", None, None) == []


def test_nautilus_files_need_a_symbol_and_infer_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01 00:00:00,1,2,1,2,5\n2024-01-01 00:05:00,2,3,2,3,5\n"
        "2024-01-01 00:10:00,3,3,2,2,5\n2024-01-01 00:20:00,2,2,2,2,0\n"
    )
    store = ParquetStore(tmp_path / "store")
    with pytest.raises(DataError, match="give --symbol"):
        import_files(store, [path])
    _, written = import_files(store, [path], symbol="btc-perp", venue="nautilus")
    key = SeriesKey("nautilus", "BTC-PERP", "5m")
    assert written[key].added == 4
    assert store.continuity(key, 300 * 10**9).missing == 1


def test_the_research_folder_is_neither_listed_nor_a_venue(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "store")
    import_files(store, [write_zip(tmp_path, "BTCUSDT-1m-2024-01.zip", [kline_row(JAN_31_MS)])])
    # What a month file would look like if one ever landed in a job's folder.
    stray = store.root / "research" / "BACKTESTS" / "1m" / "2024-01.parquet"
    stray.parent.mkdir(parents=True)
    stray.hardlink_to(store.root / KEY.venue / KEY.symbol / KEY.interval / "2024-01.parquet")
    assert list(store.series()) == [KEY]
    with pytest.raises(DataError, match="holds research job results"):
        check_venue("Research")
