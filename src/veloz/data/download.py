"""`veloz data download`: klines from Binance's REST API (`GET /api/v3/klines`, weight 2),
`[start, end)` paged 1,000 bars at a time, every call through the rate limiter of
`veloz.binance` (which waits for the next window rather than exceed Binance's budget and
backs off for a 429's Retry-After). A 429, a 5xx or a timeout is retried a few times
after a pause; a refusal (an unknown symbol: -1121) is not. Bars still open at the time
of the call are left out. All pages are fetched before anything is stored, so a failed
download writes nothing."""

import asyncio
from collections.abc import Callable
from typing import Any

import polars as pl

from veloz.binance.errors import RateLimited, UnknownOutcome
from veloz.binance.rest import BinanceRest
from veloz.data.bars import COLUMNS, DataError, canonical_values, check_bars, sort_and_dedupe

PAGE = 1000
KLINES_WEIGHT = 2
RETRIES = 4


async def fetch_klines(
    rest: BinanceRest,
    symbol: str,
    interval: str,
    *,
    step_ns: int,
    start_ms: int,
    end_ms: int,
    now_ms: Callable[[], int],
    on_page: Callable[[int], None] = lambda _bars: None,
    pause_s: float = 1.0,
) -> pl.DataFrame:
    """Every closed bar opening in `[start_ms, end_ms)`, in the form of `veloz.data.bars`."""
    step_ms = step_ns // 1_000_000
    rows: list[list[Any]] = []
    cursor = start_ms
    while cursor < end_ms:
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": cursor,
            "endTime": end_ms - 1,
            "limit": PAGE,
        }
        page = await _call(rest, params, pause_s)
        if not isinstance(page, list):
            raise DataError(f"{symbol}: unexpected answer from /api/v3/klines: {page!r:.200}")
        closed = [k for k in page if int(k[0]) + step_ms <= now_ms()]
        rows.extend(closed)
        on_page(len(closed))
        if len(page) < PAGE:
            break
        cursor = int(page[-1][0]) + step_ms
    return _frame(rows, symbol)


async def _call(rest: BinanceRest, params: dict[str, object], pause_s: float) -> Any:
    for attempt in range(RETRIES + 1):
        try:
            return await rest.public("GET", "/api/v3/klines", params, weight=KLINES_WEIGHT)
        except RateLimited as exc:
            if exc.banned or attempt == RETRIES:
                raise
            await asyncio.sleep(max(exc.retry_after_s, pause_s))
        except UnknownOutcome:
            if attempt == RETRIES:
                raise
            await asyncio.sleep(pause_s * 2**attempt)
    raise AssertionError("unreachable")


def _frame(rows: list[list[Any]], symbol: str) -> pl.DataFrame:
    where = f"{symbol} klines"
    try:
        raw = pl.DataFrame(
            {
                "ts_ns": [int(k[0]) * 1_000_000 for k in rows],
                **{name: [str(k[i + 1]) for k in rows] for i, name in enumerate(COLUMNS[1:])},
            },
            schema={"ts_ns": pl.Int64, **{name: pl.String for name in COLUMNS[1:]}},
        )
    except (TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{where}: malformed kline ({exc})") from None
    frame = canonical_values(raw, where, 1)
    check_bars(frame, where, 1)
    return sort_and_dedupe(frame, where)[0]
