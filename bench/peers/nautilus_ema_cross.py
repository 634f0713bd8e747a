"""NautilusTrader reference run of VeloZ's `ema_cross` strategy (parity check and benchmark P4).

Runs NautilusTrader's own BacktestEngine (low-level API) on a CSV of 1-minute bars with the
setup described in bench/peers/README.md: a simulated venue with a NETTING, MARGIN account
of 1,000,000 USDT (leverage 1), a linear BTCUSDT perpetual with maker/taker fee 0.001, no
latency, and market orders that fill at the close of the bar the strategy is processing.

Not part of VeloZ: it needs the scratch venv made by bench/peers/setup.sh.

    bench/peers/.venv/bin/python bench/peers/nautilus_ema_cross.py \\
        --data /work/shared/data/btc-perp-20211231-20220201_1m.csv \\
        --json out.json --orders out.csv
"""

# mypy: ignore-errors

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import time
from decimal import Decimal
from pathlib import Path

import nautilus_trader
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import FillModel, MakerTakerFeeModel
from nautilus_trader.config import LoggingConfig
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy

VENUE = Venue("SIM")
INSTRUMENT_ID = InstrumentId(Symbol("BTCUSDT-PERP"), VENUE)
BAR_TYPE = BarType.from_str(f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL")
PRICE_PRECISION = 3  # the file has a few prices like 43613.875
SIZE_PRECISION = 3


class EmaCross(Strategy):
    """VeloZ `ema_cross`: NT's EMA indicators, signals from the bar after slow became ready."""

    def __init__(self, fast: int, slow: int, qty: Decimal) -> None:
        super().__init__()
        self.fast = ExponentialMovingAverage(fast)
        self.slow = ExponentialMovingAverage(slow)
        self.qty = qty
        self.fills: list[OrderFilled] = []

    def on_start(self) -> None:
        self.subscribe_bars(BAR_TYPE)

    def on_stop(self) -> None:
        self.unsubscribe_bars(BAR_TYPE)

    def on_bar(self, bar: Bar) -> None:
        was_ready = self.slow.initialized
        prev_fast, prev_slow = self.fast.value, self.slow.value
        self.fast.handle_bar(bar)
        self.slow.handle_bar(bar)
        if not was_ready:
            return
        fast, slow = self.fast.value, self.slow.value
        if prev_fast <= prev_slow and fast > slow:
            target = self.qty
        elif prev_fast >= prev_slow and fast < slow:
            target = -self.qty
        else:
            return
        delta = target - self.portfolio.net_position(INSTRUMENT_ID)
        if delta == 0:
            return
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        qty = Quantity(abs(delta), SIZE_PRECISION)
        self.submit_order(self.order_factory.market(INSTRUMENT_ID, side, qty))

    def on_order_filled(self, event: OrderFilled) -> None:
        self.fills.append(event)


def make_instrument(fee: Decimal) -> CryptoPerpetual:
    return CryptoPerpetual(
        instrument_id=INSTRUMENT_ID,
        raw_symbol=Symbol("BTCUSDT"),
        base_currency=BTC,
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=PRICE_PRECISION,
        size_precision=SIZE_PRECISION,
        price_increment=Price(10**-PRICE_PRECISION, PRICE_PRECISION),
        size_increment=Quantity(10**-SIZE_PRECISION, SIZE_PRECISION),
        margin_init=Decimal(1),
        margin_maint=Decimal(0),
        maker_fee=fee,
        taker_fee=fee,
        ts_event=0,
        ts_init=0,
    )


def load_bars(path: Path, copies: int, instrument: CryptoPerpetual) -> list[Bar]:
    """The file's bars, `copies` times; copy k shifted by k x (span + 1 minute)."""
    df = pd.read_csv(path)
    df.index = pd.to_datetime(df.pop("timestamp"), utc=True)
    shift = df.index[-1] - df.index[0] + pd.Timedelta(minutes=1)
    frames = []
    for k in range(copies):
        frame = df.copy()
        frame.index = df.index + k * shift
        frames.append(frame)
    data = pd.concat(frames)[["open", "high", "low", "close", "volume"]]
    return BarDataWrangler(BAR_TYPE, instrument).process(data)


def iso(ts_ns: int) -> str:
    return pd.Timestamp(ts_ns, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def build_engine(args: argparse.Namespace, instrument, bars) -> tuple[BacktestEngine, EmaCross]:
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("PEER-001"),
            logging=LoggingConfig(log_level=args.log_level),
        )
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=USDT,
        starting_balances=[Money(args.balance, USDT)],
        default_leverage=Decimal(1),
        fill_model=FillModel(),  # no slippage, no random fills
        fee_model=MakerTakerFeeModel(),  # fee = notional x taker_fee
        latency_model=None,
        bar_execution=True,  # bars move the simulated L1 book: open, high, low, close
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    strategy = EmaCross(args.fast, args.slow, args.qty)
    engine.add_strategy(strategy)
    return engine, strategy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--fast", type=int, default=10)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--qty", type=Decimal, default=Decimal("0.001"))
    parser.add_argument("--fee", type=Decimal, default=Decimal("0.001"))
    parser.add_argument("--balance", type=Decimal, default=Decimal(1_000_000))
    parser.add_argument("--runs", type=int, default=1, help="fresh engines on the same bars")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--orders", type=Path)
    args = parser.parse_args()

    instrument = make_instrument(args.fee)
    t0 = time.perf_counter()
    bars = load_bars(args.data, args.copies, instrument)
    load_seconds = time.perf_counter() - t0

    run_seconds, loadavgs = [], []
    for i in range(args.runs):
        engine, strategy = build_engine(args, instrument, bars)
        loadavgs.append(round(os.getloadavg()[0], 2))  # other work on the machine skews timing
        t0 = time.perf_counter()
        engine.run()
        run_seconds.append(time.perf_counter() - t0)
        if i == 0:  # the process peak with one engine; later runs may add allocator slack
            peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if i < args.runs - 1:
            engine.dispose()
    seconds = statistics.median(run_seconds)

    last_close = bars[-1].close
    account = engine.portfolio.account(VENUE)
    balance = account.balance_total(USDT).as_decimal()
    unrealised = engine.portfolio.unrealized_pnl(INSTRUMENT_ID, price=last_close).as_decimal()
    position = engine.portfolio.net_position(INSTRUMENT_ID)

    rows = []
    for fill in strategy.fills:
        qty, px, fee = fill.last_qty.as_decimal(), fill.last_px.as_decimal(), fill.commission
        rows.append(
            {
                "time": iso(fill.ts_event),
                "ts_ns": fill.ts_event,
                "side": "BUY" if fill.order_side == OrderSide.BUY else "SELL",
                "qty": str(qty),
                "price": str(px),
                "fee": str(fee.as_decimal()),
            }
        )
    # Same equity from the fills alone: cash flows + position marked at the last close.
    cash = args.balance
    for r in rows:
        sign = 1 if r["side"] == "BUY" else -1
        cash -= sign * Decimal(r["qty"]) * Decimal(r["price"]) + Decimal(r["fee"])
    equity_from_fills = cash + position * last_close.as_decimal()

    result = {
        "engine": "nautilus_trader",
        "nautilus_version": nautilus_trader.__version__,
        "data": str(args.data),
        "copies": args.copies,
        "runs": args.runs,
        "fast": args.fast,
        "slow": args.slow,
        "qty": str(args.qty),
        "fee_rate": str(args.fee),
        "starting_balance": str(args.balance),
        "bars": len(bars),
        "start": iso(bars[0].ts_event),
        "end": iso(bars[-1].ts_event),
        "orders": len(engine.cache.orders()),
        "fills": len(rows),
        "fees": str(sum((Decimal(r["fee"]) for r in rows), Decimal(0))),
        "balance": str(balance),
        "unrealised_pnl": str(unrealised),
        "final_equity": str(balance + unrealised),
        "final_equity_from_fills": str(equity_from_fills),
        "final_position": str(position),
        "last_close": str(last_close),
        "load_seconds": round(load_seconds, 3),
        "seconds": round(seconds, 3),
        "runs_seconds": [round(x, 3) for x in run_seconds],
        "bars_per_s": round(len(bars) / seconds),
        "loadavg_1m_before_runs": loadavgs,
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    engine.dispose()

    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    if args.orders:
        args.orders.parent.mkdir(parents=True, exist_ok=True)
        with args.orders.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["time", "ts_ns", "side", "qty", "price", "fee"])
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
