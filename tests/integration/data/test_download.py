"""`veloz data download` against the fake Binance's GET /api/v3/klines (1m klines, at
most 1,000 per call, as Binance)."""

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.support.fake_binance import FakeBinance, Fault
from veloz.binance.errors import BinanceError
from veloz.binance.limits import RateLimiter
from veloz.binance.rest import BinanceRest
from veloz.data.download import fetch_klines
from veloz.data.store import ParquetStore, SeriesKey

START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
MINUTE_MS = 60_000
BARS = 2_500
REPO = Path(__file__).resolve().parents[3]


def _fill(fake: FakeBinance, symbol: str = "BTCUSDT", count: int = BARS) -> None:
    """`count` closed 1m klines from START_MS, close 42000 + i, in Binance's JSON form."""
    fake.markets[symbol].klines.extend(
        [
            START_MS + i * MINUTE_MS,
            f"{42000 + i}.00000000",
            f"{42001 + i}.50000000",
            f"{41999 + i}.00000000",
            f"{42000 + i}.00000000",
            "1.25000000",
            START_MS + (i + 1) * MINUTE_MS - 1,
            "0",
            3,
            "0",
            "0",
            "0",
        ]
        for i in range(count)
    )


def _kline_calls(fake: FakeBinance) -> list[dict[str, str]]:
    return [r.params for r in fake.requests if r.path == "/api/v3/klines"]


def _now_ms() -> int:
    return START_MS + 10**10


async def test_pages_of_1000_cover_the_range_exactly() -> None:
    async with FakeBinance(secret="s", symbols=("BTCUSDT",)) as fake:
        _fill(fake)
        rest = BinanceRest(fake.rest_url, limiter=RateLimiter())
        end_ms = START_MS + 2_200 * MINUTE_MS  # 2,200 of the 2,500 bars
        try:
            frame = await fetch_klines(
                rest,
                "BTCUSDT",
                "1m",
                step_ns=MINUTE_MS * 1_000_000,
                start_ms=START_MS,
                end_ms=end_ms,
                now_ms=_now_ms,
            )
        finally:
            await rest.close()
    assert len(frame) == 2_200
    assert frame["ts_ns"].to_list() == [(START_MS + i * MINUTE_MS) * 10**6 for i in range(2_200)]
    assert frame["close"][1234] == str(42000 + 1234)
    assert frame["high"][0] == "42001.5"
    calls = _kline_calls(fake)
    assert [int(c["startTime"]) for c in calls] == [
        START_MS,
        START_MS + 1000 * MINUTE_MS,
        START_MS + 2000 * MINUTE_MS,
    ]
    assert {c["limit"] for c in calls} == {"1000"}
    assert {int(c["endTime"]) for c in calls} == {end_ms - 1}


async def test_bars_still_open_are_left_out_and_faults_are_retried() -> None:
    async with FakeBinance(secret="s", symbols=("BTCUSDT",)) as fake:
        _fill(fake, count=10)
        fake.fail_next("/api/v3/klines", Fault.HTTP_503)
        fake.fail_next("/api/v3/klines", Fault.RATE_429)
        rest = BinanceRest(fake.rest_url, limiter=RateLimiter())
        try:
            frame = await fetch_klines(
                rest,
                "BTCUSDT",
                "1m",
                step_ns=MINUTE_MS * 1_000_000,
                start_ms=START_MS,
                end_ms=START_MS + 60 * MINUTE_MS,
                now_ms=lambda: START_MS + 8 * MINUTE_MS + 30_000,  # bar 8 is still open
                pause_s=0.01,
            )
            with pytest.raises(BinanceError, match="-1121"):
                await fetch_klines(
                    rest,
                    "NOPEUSDT",
                    "1m",
                    step_ns=MINUTE_MS * 1_000_000,
                    start_ms=START_MS,
                    end_ms=START_MS + MINUTE_MS,
                    now_ms=_now_ms,
                )
        finally:
            await rest.close()
    assert len(frame) == 8
    assert len(_kline_calls(fake)) == 3 + 1  # 503, 429, the answer; then the bad symbol


async def _veloz(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "veloz",
        "data",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_downloads_into_the_store_once(tmp_path: Path) -> None:
    store_dir = tmp_path / "market"
    async with FakeBinance(secret="s", symbols=("BTCUSDT",)) as fake:
        _fill(fake)
        env = {
            **os.environ,
            "VELOZ_DATA_DIR": str(store_dir),
            "VELOZ_BINANCE_BASE_URL": fake.rest_url,
        }
        day = ("--symbol", "btcusdt", "--interval", "1m", "--start", "2024-01-01")
        code, out, err = await _veloz("download", *day, "--end", "2024-01-02", env=env)
        assert (code, err) == (0, "")
        assert "binance/BTCUSDT/1m: 1440 bars downloaded, 1440 added" in out
        code, out, _ = await _veloz("download", *day, "--end", "2024-01-02T00:10", env=env)
        assert code == 0 and "1450 bars downloaded, 10 added, 1440 already stored" in out
        calls = len(_kline_calls(fake))
        code, out, err = await _veloz(
            "download", "--symbol", "NOPEUSDT", "--start", "2024-01-01", "--end", "2024-01-02",
            env=env,
        )  # fmt: skip
        assert code == 2 and out == ""
        assert err.startswith("veloz: NOPEUSDT: Binance refused") and err.count("\n") == 1
        assert len(_kline_calls(fake)) == calls + 1
        code, _, err = await _veloz(
            "download", "--symbol", "BTCUSDT", "--start", "2024-01-02", "--end", "2024-01-01",
            env=env,
        )  # fmt: skip
        assert code == 2 and "is not after" in err
    stored = ParquetStore(store_dir).read(SeriesKey("binance", "BTCUSDT", "1m"), exact=False)
    assert len(stored) == 1450 and stored["close"][-1] == 42000 + 1449
    assert stored.schema["close"] == pl.Float64
    assert not (store_dir / "binance" / "NOPEUSDT").exists()
