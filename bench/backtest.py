"""P4: the event-driven backtest, `ema_cross` (fast 10, slow 20, qty 0.001, margin account
of 1,000,000 USDT, 0.1 % fee, same-bar-close fills) on NautilusTrader's BTC 1-minute bars,
45,031 bars and 450,310 (10 copies, each shifted by the file's span plus one minute), and
the same bar loop with a strategy that sends no orders.

Every run is a fresh child process (`--child`), so its peak RSS is its own. Timed is
`BacktestEngine.run` (the bar loop and everything the strategy causes), not reading the
file. The reference, in the same run: NautilusTrader on the same bars
(`bench/peers/nautilus_ema_cross.py`, installed by `bench/peers/setup.sh`), whose orders
and final equity must also equal ours.

    .venv/bin/python -m bench.backtest            # about 3 minutes with the peer installed
    .venv/bin/python -m bench.backtest --no-peer  # VeloZ alone
"""

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import Target, emit, figure, median, record
from veloz.backtest.data import concat_shifted, load_bars
from veloz.backtest.engine import AccountType, BacktestConfig, BacktestEngine, FillModel
from veloz.strategy.host import StrategySpec

NAME = "backtest"
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "btc-perp-20211231-20220201_1m.csv"
PEER_PYTHON = ROOT / "bench" / "peers" / ".venv" / "bin" / "python"
PEER_SCRIPT = ROOT / "bench" / "peers" / "nautilus_ema_cross.py"
COPIES = 10

TARGETS = (
    Target("bars_per_s_45k", ">=", 500_000),
    Target("ratio_to_nautilus_45k", ">=", 20),
    Target("ratio_to_nautilus_450k", ">=", 20),
    Target("flatness_450k_to_45k", ">=", 0.9),
)


def child(copies: int, orders: bool, fills_csv: str | None) -> dict[str, Any]:
    """One backtest in this process; what it measured."""
    series = load_bars(DATA, "BTCUSDT")
    if copies > 1:
        series = concat_shifted(series, copies)
    loaded_rss = _rss_mb()
    config = BacktestConfig(
        account=AccountType.MARGIN,
        balances={"USDT": Decimal(1_000_000)},
        maker_fee_bps=Decimal(10),
        taker_fee_bps=Decimal(10),
        fill=FillModel.CLOSE,
    )
    params = {"fast": 10, "slow": 20, "qty": "0.001"}
    name = "ema_cross" if orders else "bench.silent_strategy:Silent"
    spec = StrategySpec(strategy_id="bench", name=name, symbol="BTCUSDT", params=params)
    engine = BacktestEngine(config, {"BTCUSDT": series}, [spec])
    result = engine.run()
    if fills_csv:
        with open(fills_csv, "w", newline="") as out:
            writer = csv.writer(out)
            for fill in result.fills:
                writer.writerow([fill.ts_ns, fill.side, fill.qty, fill.price, fill.fee])
    return {
        "bars": result.bars,
        "seconds": result.seconds,
        "bars_per_s": result.bars_per_s,
        "fills": len(result.fills),
        "final_equity": str(result.final_equity),
        "final_position": str(result.final_positions.get("BTCUSDT", 0)),
        "peak_rss_mb": _rss_mb(),
        "loaded_rss_mb": loaded_rss,
    }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spawn(copies: int, orders: bool, fills_csv: str | None = None) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.backtest", "--child", str(copies)]
    command += ["--orders"] if orders else []
    command += ["--fills", fills_csv] if fills_csv else []
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    measured: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return measured


def _peer(copies: int, directory: Path) -> dict[str, Any] | None:
    if not PEER_PYTHON.exists():
        return None
    summary = directory / f"nautilus_{copies}.json"
    orders = directory / f"nautilus_{copies}.csv"
    subprocess.run(
        [
            str(PEER_PYTHON),
            str(PEER_SCRIPT),
            "--data",
            str(DATA),
            "--copies",
            str(copies),
            "--json",
            str(summary),
            "--orders",
            str(orders),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = json.loads(summary.read_text())
    result["orders_csv"] = str(orders)
    return result


def _same_fills(ours: Path, theirs: Path) -> tuple[bool, str]:
    """Orders equal in time, side, qty and price, one by one."""
    mine = [(int(r[0]), r[1], Decimal(r[2]), Decimal(r[3])) for r in csv.reader(ours.open())]
    with theirs.open() as handle:
        peer = [
            (int(r["ts_ns"]), r["side"], Decimal(r["qty"]), Decimal(r["price"]))
            for r in csv.DictReader(handle)
        ]
    if len(mine) != len(peer):
        return False, f"{len(mine)} fills against {len(peer)}"
    for index, (a, b) in enumerate(zip(mine, peer, strict=True)):
        if a != b:
            return False, f"fill {index} differs: {a} against {b}"
    return True, f"all {len(mine)} fills equal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--orders", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fills", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="skip NautilusTrader")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.orders, args.fills)))
        return
    figures: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="veloz-bench-backtest-") as scratch:
        directory = Path(scratch)
        ours: dict[str, dict[str, Any]] = {}
        for label, copies, orders in (
            ("45k", 1, True),
            ("450k", COPIES, True),
            ("45k_no_orders", 1, False),
            ("450k_no_orders", COPIES, False),
        ):
            runs = [_spawn(copies, orders) for _ in range(args.runs)]
            rate = median(r["bars_per_s"] for r in runs)
            ours[label] = runs[0]
            figures[f"bars_per_s_{label}"] = figure(
                rate, "bars/s", [r["bars_per_s"] for r in runs], bars=runs[0]["bars"]
            )
            figures[f"peak_rss_mb_{label}"] = figure(
                median(r["peak_rss_mb"] for r in runs), "MB", [r["peak_rss_mb"] for r in runs]
            )
            emit(NAME, f"bars_per_s_{label}", rate, "bars/s", fills=runs[0]["fills"])
        per_million = (
            (figures["peak_rss_mb_450k"]["value"] - figures["peak_rss_mb_45k"]["value"])
            / (ours["450k"]["bars"] - ours["45k"]["bars"])
            * 1_000_000
        )
        figures["rss_mb_per_million_bars"] = figure(per_million, "MB")
        figures["flatness_450k_to_45k"] = figure(
            figures["bars_per_s_450k"]["value"] / figures["bars_per_s_45k"]["value"], "ratio"
        )
        figures["fills_45k"] = ours["45k"]["fills"]
        figures["final_equity_45k"] = ours["45k"]["final_equity"]
        figures["final_equity_450k"] = ours["450k"]["final_equity"]
        emit(NAME, "rss_mb_per_million_bars", per_million, "MB")
        if not args.no_peer:
            _compare_with_peer(figures, ours, directory)
    notes = (
        "Each figure is the median of --runs child processes; bars/s times BacktestEngine.run "
        "only (file reading excluded, for both engines). The no-orders loop runs a strategy "
        "that computes the same EMAs and never trades. NautilusTrader runs once per size "
        f"(it takes minutes at 450k). Bench took {time.monotonic() - started:.0f} s."
    )
    path = record(NAME, figures, notes, targets=TARGETS)
    print(f"recorded {path}", file=sys.stderr)


def _compare_with_peer(
    figures: dict[str, Any], ours: dict[str, dict[str, Any]], directory: Path
) -> None:
    for label, copies in (("45k", 1), ("450k", COPIES)):
        peer = _peer(copies, directory)
        if peer is None:
            print("NautilusTrader is not installed: run bench/peers/setup.sh", file=sys.stderr)
            return
        figures[f"nautilus_bars_per_s_{label}"] = figure(peer["bars_per_s"], "bars/s")
        figures[f"nautilus_peak_rss_mb_{label}"] = figure(peer["peak_rss_mb"], "MB")
        ratio = figures[f"bars_per_s_{label}"]["value"] / peer["bars_per_s"]
        figures[f"ratio_to_nautilus_{label}"] = figure(ratio, "ratio")
        emit(NAME, f"ratio_to_nautilus_{label}", ratio, "ratio")
        fills_csv = directory / f"veloz_{copies}.csv"
        mine = _spawn(copies, True, str(fills_csv))
        same, detail = _same_fills(fills_csv, Path(peer["orders_csv"]))
        figures[f"parity_{label}"] = {
            "same_orders": same,
            "detail": detail,
            "final_equity": mine["final_equity"],
            "nautilus_final_equity": peer["final_equity"],
            "same_final_equity": _same_number(mine["final_equity"], peer["final_equity"]),
            "nautilus_version": peer.get("nautilus_version"),
        }
        emit(NAME, f"parity_{label}", float(same), "bool", detail=detail)


def _same_number(a: str, b: str) -> bool:
    return Decimal(a) == Decimal(b)


if __name__ == "__main__":
    main()
