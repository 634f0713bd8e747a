"""Sanity checks of an `ema_cross` fills CSV (time,ts_ns,side,qty,price,fee) against the bars.

Stdlib only, so it runs with any Python 3.11:

    python3 bench/peers/check_fills.py --data BARS.csv --orders FILLS.csv [--copies N]

Checks that every fill is at the close of the bar with its timestamp, that each fee is
qty x price x fee rate, and that the fills equal those of an independent float64
implementation of the `ema_cross` definition (EMA seeded with the first close, updated with
every close; signals from the bar after the slow EMA became ready). Exit status 1 on a
mismatch.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

Fill = tuple[int, str, Decimal, Decimal]  # ts_ns, side, qty, price


def load_bars(path: Path, copies: int) -> list[tuple[int, str]]:
    """(ts_ns, close as written) for each bar; copy k shifted by k x (span + 1 minute)."""
    with path.open() as f:
        rows = [(r["timestamp"], r["close"]) for r in csv.DictReader(f)]
    times = [datetime.fromisoformat(t).replace(tzinfo=UTC) for t, _ in rows]
    shift = times[-1] - times[0] + timedelta(minutes=1)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    bars = []
    for k in range(copies):
        for t, (_, close) in zip(times, rows, strict=True):
            delta = t + k * shift - epoch
            bars.append(((delta.days * 86_400 + delta.seconds) * 10**9, close))
    return bars


def ema_cross(bars: list[tuple[int, str]], fast: int, slow: int, qty: Decimal) -> list[Fill]:
    a_fast, a_slow = 2.0 / (fast + 1), 2.0 / (slow + 1)
    ema_fast = ema_slow = 0.0
    count = 0
    position = Decimal(0)
    fills = []
    for ts, close_text in bars:
        close = float(close_text)
        was_ready = count >= slow
        prev_fast, prev_slow = ema_fast, ema_slow
        if count == 0:
            ema_fast = ema_slow = close
        ema_fast = a_fast * close + (1.0 - a_fast) * ema_fast
        ema_slow = a_slow * close + (1.0 - a_slow) * ema_slow
        count += 1
        if not was_ready:
            continue
        if prev_fast <= prev_slow and ema_fast > ema_slow:
            target = qty
        elif prev_fast >= prev_slow and ema_fast < ema_slow:
            target = -qty
        else:
            continue
        if target != position:
            side = "BUY" if target > position else "SELL"
            fills.append((ts, side, abs(target - position), Decimal(close_text)))
            position = target
    return fills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--orders", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--fast", type=int, default=10)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--qty", type=Decimal, default=Decimal("0.001"))
    parser.add_argument("--fee", type=Decimal, default=Decimal("0.001"))
    args = parser.parse_args()

    bars = load_bars(args.data, args.copies)
    close_at = {ts: Decimal(close) for ts, close in bars}
    with args.orders.open() as f:
        rows = list(csv.DictReader(f))
    fills = [(int(r["ts_ns"]), r["side"], Decimal(r["qty"]), Decimal(r["price"])) for r in rows]
    reference = ema_cross(bars, args.fast, args.slow, args.qty)

    checks = {
        "price is the close of the bar at its time": all(
            close_at.get(ts) == px for ts, _, _, px in fills
        ),
        "fee is qty x price x fee rate": all(
            Decimal(r["fee"]) == Decimal(r["qty"]) * Decimal(r["price"]) * args.fee for r in rows
        ),
        "fills equal the float64 reference": fills == reference,
    }
    print(f"fills: {len(fills)} (reference {len(reference)})")
    for row in rows[:5]:
        print("  ", ",".join(row.values()))
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    pairs = zip(fills, reference, strict=False)
    mismatch = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
    if mismatch is not None:
        print(f"first difference at fill {mismatch}: {fills[mismatch]} vs {reference[mismatch]}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
