"""Small Binance kline dumps written the way data.binance.vision ships them: a zip
holding one headerless 12-column CSV, times in milliseconds (or microseconds)."""

import zipfile
from pathlib import Path

MINUTE_MS = 60_000


def kline_row(open_ms: int, close: str = "42005.00000000", *, micro: bool = False) -> str:
    scale = 1000 if micro else 1
    ts = open_ms * scale
    return (
        f"{ts},42000.10000000,42010.00000000,41990.00000000,{close},1.50000000,"
        f"{ts + MINUTE_MS * scale - 1},63007.50000000,10,0.70000000,29403.50000000,0"
    )


def write_zip(directory: Path, name: str, rows: list[str], header: bool = False) -> Path:
    path = directory / name
    text = "\n".join(rows) + "\n"
    if header:
        text = (
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
            "taker_buy_volume,taker_buy_quote_volume,ignore\n" + text
        )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name.replace(".zip", ".csv"), text)
    return path


def minutes(start_ms: int, count: int, skip: frozenset[int] = frozenset()) -> list[int]:
    return [start_ms + i * MINUTE_MS for i in range(count) if i not in skip]
