"""Golden backtests of the strategy library (rsi_reversion, bollinger_reversion,
donchian_breakout, market_making, dca) on small hand-made bar series, every order, fill
and balance worked out by hand in the comments, then one run of each over the public BTC
bars checking invariants.

Common setup unless a test says otherwise: a cash account with 1,000 USDT, 10 bps maker
and taker fees (in USDT), fill model `close` (a MARKET order trades at the close of the
bar that sent it), intrabar path O->H->L->C for resting orders. The instrument is the
default one for a first close of 100: tick 0.0001, lot 0.001. Bars are one minute apart
from 2024-01-01 00:00 UTC; the fills below are (bar index, side, qty, price, fee).
"""

import json
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.support.sample_bars import sample_path
from veloz.backtest.data import BarSeries, load_bars
from veloz.backtest.engine import (
    AccountType,
    BacktestConfig,
    BacktestEngine,
    BacktestResult,
    BarPath,
    FillModel,
)
from veloz.cli.main import app
from veloz.model.enums import OrderSide
from veloz.strategy.host import StrategySpec

D = Decimal
T0 = 1_704_067_200_000_000_000  # 2024-01-01 00:00:00 UTC
MINUTE = 60_000_000_000

Fill = tuple[int, str, Decimal, Decimal, Decimal]


def series(bars: Sequence[tuple[float, float, float, float]]) -> BarSeries:
    """(open, high, low, close) per minute."""
    array = np.array(bars, dtype=np.float64)
    return BarSeries(
        symbol="BTCUSDT",
        source="test",
        ts_ns=T0 + MINUTE * np.arange(len(bars), dtype=np.int64),
        open=array[:, 0].copy(),
        high=array[:, 1].copy(),
        low=array[:, 2].copy(),
        close=array[:, 3].copy(),
        volume=np.full(len(bars), 5.0),
    )


def closes_only(closes: Sequence[float]) -> BarSeries:
    """Bars whose open, high and low are the close: only the closes matter."""
    return series([(c, c, c, c) for c in closes])


def run(
    bars: BarSeries,
    strategy: str,
    params: dict[str, str],
    account: AccountType = AccountType.CASH,
) -> tuple[list[Fill], BacktestEngine, BacktestResult]:
    config = BacktestConfig(
        account=account, balances={"USDT": D(1000)}, fill=FillModel.CLOSE, path=BarPath.OHLC
    )
    spec = StrategySpec(strategy_id="golden", name=strategy, symbol="BTCUSDT", params=params)
    engine = BacktestEngine(config, {"BTCUSDT": bars}, [spec])
    result = engine.run()
    fills = [((f.ts_ns - T0) // MINUTE, f.side, f.qty, f.price, f.fee) for f in result.fills]
    return fills, engine, result


def test_rsi_reversion() -> None:
    """period 2 (Wilder: seeded with the mean of the first 2 changes, then
    avg = (avg + change) / 2), oversold 30, overbought 70, qty 1.

        bar close change avg_gain avg_loss  RSI
        0   100
        1   102    +2
        2   104    +2    2        0         100 (no loss)
        3   101    -3    1        1.5       40
        4    98    -3    0.5      2.25      18.18 < 30 -> BUY 1 at 98 (fee 0.098)
        5    97    -1    0.25     1.625     13.33 (already long)
        6   100    +3    1.625    0.8125    66.67
        7   103    +3    2.3125   0.40625   85.06 > 70 -> SELL 1 at 103 (fee 0.103)
        8   104    +1    1.65625  0.203125  89.07 (flat, not oversold)

    USDT: 1000 - 98 - 0.098 + 103 - 0.103 = 1004.799, flat.
    """
    bars = closes_only([100, 102, 104, 101, 98, 97, 100, 103, 104])
    params = {"period": "2", "oversold": "30", "overbought": "70", "qty": "1"}
    fills, _, result = run(bars, "rsi_reversion", params)
    assert fills == [(4, "BUY", D(1), D(98), D("0.098")), (7, "SELL", D(1), D(103), D("0.103"))]
    assert result.final_balances == {"USDT": D("1004.799"), "BTC": D(0)}
    assert result.final_equity == D("1004.799")
    assert (result.orders, result.denied) == (2, 0)


DONCHIAN_BARS = [  # (open, high, low, close), the table in the Donchian test's docstring
    (100, 101, 99, 100),
    (100, 102, 99, 101),
    (101, 103, 100, 102),
    (102, 105, 101, 104),
    (104, 106, 103, 105),
    (105, 105, 101, 102),
    (102, 102, 98, 99),
    (99, 100, 97, 98),
    (98, 107, 98, 107),
    (107, 108, 106, 106),
]
BOLLINGER_CLOSES = [100, 100, 100, 97, 99, 101, 95, 96, 99, 104]


def test_bollinger_reversion_exits_at_the_middle() -> None:
    """period 3, width 1 (population std), exit middle, qty 1.

        bar close window        mean    std     lower   action
        2   100   100 100 100   100     0       100     100 < 100? no
        3    97   100 100  97    99     1.4142  97.586  97 below -> BUY 1 at 97
        4    99   100  97  99    98.667 1.2472          99 >= middle -> SELL 1 at 99
        5   101    97  99 101    99     1.6330  97.367  no
        6    95    99 101  95    98.333 2.4944  95.839  95 below -> BUY 1 at 95
        7    96   101  95  96    97.333                 96 < middle: hold
        8    99    95  96  99    96.667                 99 >= middle -> SELL 1 at 99
        9   104    96  99 104    99.667 3.2998  96.37   no

    USDT: 1000 + (99 - 97) + (99 - 95) - (0.097 + 0.099 + 0.095 + 0.099) = 1005.61.
    """
    fills, _, result = run(
        closes_only(BOLLINGER_CLOSES),
        "bollinger_reversion",
        {"period": "3", "width": "1", "exit": "middle", "qty": "1"},
    )
    assert fills == [
        (3, "BUY", D(1), D(97), D("0.097")),
        (4, "SELL", D(1), D(99), D("0.099")),
        (6, "BUY", D(1), D(95), D("0.095")),
        (8, "SELL", D(1), D(99), D("0.099")),
    ]
    assert result.final_equity == D("1005.61")


def test_bollinger_reversion_exits_at_the_upper_band() -> None:
    """The same bars with exit upper: the upper band is mean + std.

        3   97  BUY 1 at 97 (as above)
        4   99  upper 98.667 + 1.2472 = 99.914: hold
        5  101  upper 99 + 1.6330 = 100.633: 101 >= -> SELL 1 at 101
        6   95  lower 95.839 -> BUY 1 at 95
        7   96  upper 97.333 + 2.6247 = 99.958: hold
        8   99  upper 96.667 + 1.6997 = 98.366: 99 >= -> SELL 1 at 99

    USDT: 1000 + 4 + 4 - (0.097 + 0.101 + 0.095 + 0.099) = 1007.608.
    """
    fills, _, result = run(
        closes_only(BOLLINGER_CLOSES),
        "bollinger_reversion",
        {"period": "3", "width": "1", "exit": "upper", "qty": "1"},
    )
    assert [(f[0], f[1], f[3]) for f in fills] == [
        (3, "BUY", D(97)),
        (5, "SELL", D(101)),
        (6, "BUY", D(95)),
        (8, "SELL", D(99)),
    ]
    assert result.final_equity == D("1007.608")


def test_donchian_breakout() -> None:
    """entry 3, exit 2, qty 1; the channels are of the bars before the one judged.

        bar  O    H    L    C    high of 3 before  low of 2 before  action
        0   100  101   99  100   -                  -
        1   100  102   99  101   -                  -
        2   101  103  100  102   -                  99
        3   102  105  101  104   103                99   104 > 103 -> BUY 1 at 104
        4   104  106  103  105                      100  hold
        5   105  105  101  102                      101  hold (102 >= 101)
        6   102  102   98   99                      101  99 < 101 -> SELL 1 at 99
        7    99  100   97   98   106                     no (flat)
        8    98  107   98  107   105 (bars 5-7)          107 > 105 -> BUY 1 at 107
        9   107  108  106  106                      97   hold

    USDT: 1000 - 104 - 0.104 + 99 - 0.099 - 107 - 0.107 = 887.69; 1 BTC at 106: 993.69.
    """
    bars = series(DONCHIAN_BARS)
    fills, _, result = run(bars, "donchian_breakout", {"entry": "3", "exit": "2", "qty": "1"})
    assert fills == [
        (3, "BUY", D(1), D(104), D("0.104")),
        (6, "SELL", D(1), D(99), D("0.099")),
        (8, "BUY", D(1), D(107), D("0.107")),
    ]
    assert result.final_balances == {"USDT": D("887.69"), "BTC": D(1)}
    assert result.final_equity == D("993.69")


MM_BARS = [
    (100, 100, 100, 100),  # 0
    (100, 100.5, 99.5, 100),  # 1
    (100, 100.5, 98.5, 100),  # 2
    (100, 100.6, 99.8, 100.2),  # 3
    (100.2, 100.5, 99.9, 100.3),  # 4
    (100.3, 100.9, 100.3, 100.8),  # 5
    (100.8, 101, 100.6, 100.9),  # 6
    (100.9, 101, 100.7, 100.8),  # 7
    (100.8, 101, 100.6, 100.8),  # 8
    (100.8, 102, 100.8, 102),  # 9
]
MM_PARAMS = {
    "spread_bps": "200",  # bid at centre * 0.99, ask at centre * 1.01
    "qty": "1",
    "skew_bps": "100",  # centre = mid * (1 - 0.01 * position / max_position)
    "refresh_bps": "50",  # requote when the close moves more than 0.5 %
    "max_age_s": "180",  # ... or 3 bars after the last quote
}


def _limits(engine: BacktestEngine) -> list[tuple[str, Decimal]]:
    orders = engine.host.open_orders(engine.host.get("golden"))
    return sorted((o.side.value, o.limit_price or D(0)) for o in orders)


def test_market_making_both_sides_with_skew_and_refresh() -> None:
    """Margin account, max_position 2, short allowed. Resting orders trade as makers at
    their own price when the bar's path (O, H, L, C) reaches them, before the strategy
    sees the bar; the strategy then requotes around the close.

        bar 0: first quote around 100: BUY 99, SELL 101                         (2 orders)
        bar 1: nothing reached; mid unchanged; 60 s old: nothing
        bar 2: low 98.5 fills BUY 1 at 99 (fee 0.099). A fill requotes: cancel the SELL;
               position 1 -> centre 100 * (1 - 0.01 / 2) = 99.5: BUY 98.505, SELL 100.495
        bar 3: high 100.6 fills SELL 1 at 100.495 (fee 0.100495). Requote at 100.2, flat:
               BUY 99.198, SELL 101.202
        bar 4: close 100.3, moved 0.1 < 0.5 % of 100.2; 60 s old: nothing
        bar 5: close 100.8, moved 0.6 > 0.501: requote BUY 99.792, SELL 101.808
        bar 6, 7: moved 0.1 / 0; 60 / 120 s old: nothing
        bar 8: 180 s old: requote at 100.8, the same prices again
        bar 9: high 102 fills SELL 1 at 101.808 (fee 0.101808); position -1 -> centre
               102 * 1.005 = 102.51: BUY 101.4849, SELL 103.5351 (both within 2 of 0)

    12 orders: 3 filled, 7 cancelled, 2 open. USDT: 1000 - 99 - 0.099 + 100.495 - 0.100495
    + 101.808 - 0.101808 = 1103.001697; short 1 BTC at 102: equity 1001.001697.
    """
    fills, engine, result = run(
        series(MM_BARS),
        "market_making",
        {**MM_PARAMS, "max_position": "2", "short": "true"},
        account=AccountType.MARGIN,
    )
    assert fills == [
        (2, "BUY", D(1), D(99), D("0.099")),
        (3, "SELL", D(1), D("100.495"), D("0.100495")),
        (9, "SELL", D(1), D("101.808"), D("0.101808")),
    ]
    assert result.orders == 12
    assert _limits(engine) == [("BUY", D("101.4849")), ("SELL", D("103.5351"))]
    assert result.final_positions == {"BTCUSDT": D(-1)}
    assert result.final_balances["USDT"] == D("1103.001697")
    assert result.final_equity == D("1001.001697")


def test_market_making_respects_the_position_limit_and_no_short() -> None:
    """Cash account, max_position 1, short false: no SELL while flat (nothing to sell),
    no BUY while holding 1 (the limit).

        bar 0: BUY 99 only                                                       (1)
        bar 2: low 98.5 fills BUY 1 at 99 (fee 0.099); position 1 = the limit: no BUY;
               centre 100 * (1 - 0.01 * 1 / 1) = 99, 99 * 1.01 = 99.99 would cross the
               mid 100 (and trade as a taker): kept a tick above, SELL 100.0001    (2)
        bar 3: high 100.6 fills SELL 1 at 100.0001 (fee 0.1000001); flat: BUY 99.198 (3)
        bar 5: moved: BUY 99.792 (4); bar 8: 180 s old: BUY 99.792 (5)
        bar 9: low 100.8 reaches nothing; close 102 moved: BUY 100.98             (6)

    USDT: 1000 - 99 - 0.099 + 100.0001 - 0.1000001 = 1000.8010999, flat.
    """
    fills, engine, result = run(
        series(MM_BARS), "market_making", {**MM_PARAMS, "max_position": "1", "short": "false"}
    )
    assert fills == [
        (2, "BUY", D(1), D(99), D("0.099")),
        (3, "SELL", D(1), D("100.0001"), D("0.1000001")),
    ]
    assert (result.orders, result.denied) == (6, 0)
    assert _limits(engine) == [("BUY", D("100.98"))]
    assert result.final_equity == D("1000.8010999")


DCA_CLOSES = [100, 98, 94, 96, 90, 85, 80, 88, 92, 91]
# every 3 bars (bars 0, 3, 6, 9) buy 100 USDT; the dip rule buys 2 x 100 more on a close
# at least 5 % below the last buy, once between two scheduled buys. qty = amount / close
# rounded down to the lot (0.001).
#
#   bar close  reference (last buy)  action
#   0   100    -                     scheduled: 100/100 = 1       BUY 1     fee 0.1
#   1    98    100 (95 needed)       -
#   2    94    100                   dip: 200/94 = 2.1276..       BUY 2.127 fee 0.199938
#   3    96    94                    scheduled: 100/96 = 1.0416.. BUY 1.041 fee 0.099936
#   4    90    96 (91.2 needed)      dip: 200/90 = 2.222..        BUY 2.222 fee 0.19998
#   5    85    90                    (one dip per period already)
#   6    80                          scheduled: 100/80            BUY 1.25  fee 0.1
#   7    88    80                    -
#   8    92    80                    -
#   9    91                          scheduled: 100/91 = 1.0989.. BUY 1.098 fee 0.099918
#
# BTC 8.738; spent 799.772 + fees 0.799772: USDT 199.428228; equity + 8.738 x 91 =
# 994.586228.
DCA_FILLS = [
    (0, "BUY", D(1), D(100), D("0.1")),
    (2, "BUY", D("2.127"), D(94), D("0.199938")),
    (3, "BUY", D("1.041"), D(96), D("0.099936")),
    (4, "BUY", D("2.222"), D(90), D("0.19998")),
    (6, "BUY", D("1.25"), D(80), D("0.1")),
    (9, "BUY", D("1.098"), D(91), D("0.099918")),
]


@pytest.mark.parametrize("every", [{"every_bars": "3"}, {"every_bars": "0", "every_s": "180"}])
def test_dca_with_a_dip_below_the_last_buy(every: dict[str, str]) -> None:
    """Every 3 bars, or every 180 s of bar time (the same on 1-minute bars)."""
    params = {"quote_amount": "100", "dip_pct": "5", "dip_multiplier": "2", **every}
    fills, _, result = run(closes_only(DCA_CLOSES), "dca", params)
    assert fills == DCA_FILLS
    assert result.final_balances == {"USDT": D("199.428228"), "BTC": D("8.738")}
    assert result.final_equity == D("994.586228")


def test_dca_with_a_dip_below_the_moving_average() -> None:
    """One scheduled buy (every 100 bars), dips against SMA(3), 5 %, 1 x 100 USDT.

    bar 2: SMA (100+98+94)/3 = 97.33, 94 > 92.47     bar 3: SMA 96, 96 > 91.2
    bar 4: SMA 93.33, 90 > 88.67                     bar 5: SMA 90.33, 85 <= 85.82
           -> BUY 100/85 = 1.176 at 85 (fee 0.09996); none more before bar 100
    """
    params = {"quote_amount": "100", "every_bars": "100", "dip_pct": "5"}
    params |= {"dip_ref": "sma", "sma_period": "3"}
    fills, _, _ = run(closes_only(DCA_CLOSES), "dca", params)
    assert fills == [
        (0, "BUY", D(1), D(100), D("0.1")),
        (5, "BUY", D("1.176"), D(85), D("0.09996")),
    ]


# -- the public BTC bars -------------------------------------------------------------------

BTC_CASES = [
    ("rsi_reversion", {"qty": "0.01"}, AccountType.CASH),
    ("bollinger_reversion", {"qty": "0.01"}, AccountType.CASH),
    ("donchian_breakout", {"qty": "0.01"}, AccountType.CASH),
    ("market_making", {"qty": "0.01", "max_position": "0.05", "short": "true"}, AccountType.MARGIN),
    ("dca", {"quote_amount": "100", "every_bars": "1440", "dip_pct": "2"}, AccountType.CASH),
]


@pytest.fixture(scope="module")
def btc() -> BarSeries:
    return load_bars(sample_path(), "BTCUSDT")


@pytest.mark.parametrize(
    ("strategy", "params", "account"), BTC_CASES, ids=[c[0] for c in BTC_CASES]
)
def test_btc_sample_invariants(
    btc: BarSeries, strategy: str, params: dict[str, str], account: AccountType
) -> None:
    config = BacktestConfig(account=account, balances={"USDT": D(10_000)})
    spec = StrategySpec(strategy_id="btc", name=strategy, symbol="BTCUSDT", params=params)
    engine = BacktestEngine(config, {"BTCUSDT": btc}, [spec])
    result = engine.run()
    assert engine.host.get("btc").state.value == "running"  # it never raised
    assert result.bars == len(btc) and result.orders > 0 and result.fills
    assert result.denied == 0
    index = {int(t): i for i, t in enumerate(btc.ts_ns)}
    for fill in result.fills:
        i = index[fill.ts_ns]
        price = float(fill.price)
        if strategy != "market_making":  # MARKET orders: at the close (fill model close)
            assert price == btc.close[i], fill
        elif fill.side == "BUY":  # a resting BUY trades at its limit once the bar reaches it
            assert price >= btc.low[i], fill  # (a bar that opens through it: better)
        else:
            assert price <= btc.high[i], fill
        assert fill.fee == (fill.qty * fill.price * D("0.001")).quantize(D("1e-8"))
    assert result.final_balances["USDT"] >= 0
    if account is AccountType.CASH:
        assert all(v >= 0 for v in result.final_balances.values())
    # the position is what the fills add up to
    signed = sum((f.qty if f.side == OrderSide.BUY.value else -f.qty) for f in result.fills)
    assert result.final_positions.get("BTCUSDT", D(0)) == signed
    if strategy == "market_making":
        limit = D(params["max_position"])
        position = D(0)
        for f in result.fills:
            position += f.qty if f.side == "BUY" else -f.qty
            assert abs(position) <= limit
    if strategy == "dca":
        assert {f.side for f in result.fills} == {"BUY"}
        # one scheduled buy a day (32 days and a bit) and at most one dip buy each
        assert 32 <= len(result.fills) <= 2 * 33


# -- from the command line -----------------------------------------------------------------

CLI_CASES = [
    ("rsi_reversion", ["period=2", "oversold=30", "overbought=70", "qty=1"], 2),
    ("bollinger_reversion", ["period=3", "width=1", "qty=1"], 4),
    ("donchian_breakout", ["entry=3", "exit=2", "qty=1"], 3),
    ("market_making", [f"{k}={v}" for k, v in MM_PARAMS.items()] + ["max_position=1"], 2),
    ("dca", ["quote_amount=100", "every_bars=3", "dip_pct=5", "dip_multiplier=2"], 6),
]


def _csv(path: Path, bars: BarSeries) -> Path:
    """The bars in NautilusTrader's CSV layout, as `veloz backtest run --data` reads it."""
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(len(bars)):
        minute = (int(bars.ts_ns[i]) - T0) // MINUTE
        lines.append(
            f"2024-01-01 00:{minute:02d}:00,{bars.open[i]},{bars.high[i]},"
            f"{bars.low[i]},{bars.close[i]},5"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli_bars(strategy: str) -> BarSeries:
    if strategy == "rsi_reversion":
        return closes_only([100, 102, 104, 101, 98, 97, 100, 103, 104])
    if strategy == "bollinger_reversion":
        return closes_only(BOLLINGER_CLOSES)
    if strategy == "dca":
        return closes_only(DCA_CLOSES)
    if strategy == "market_making":
        return series(MM_BARS)
    return series(DONCHIAN_BARS)


def _cli(strategy: str, params: list[str], data: Path, *extra: str) -> list[str]:
    args = ["backtest", "run", "--strategy", strategy, "--data", str(data)]
    for param in params:
        args += ["--param", param]
    return [*args, "--symbol", "BTCUSDT", "--balance", "USDT=1000", *extra]


@pytest.mark.parametrize(("strategy", "params", "fills"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_backtest_run_from_the_cli(
    tmp_path: Path, strategy: str, params: list[str], fills: int
) -> None:
    """The same runs as the golden tests, through `veloz backtest run` in-process."""
    summary = tmp_path / "summary.json"
    data = _csv(tmp_path / "bars.csv", _cli_bars(strategy))
    result = CliRunner().invoke(app, _cli(strategy, params, data, "--json", str(summary)))
    assert result.exit_code == 0, result.output
    written = json.loads(summary.read_text())
    assert written["fills"] == fills


def test_backtest_run_in_a_subprocess(tmp_path: Path) -> None:
    """`python -m veloz backtest run --strategy dca ...` as a user runs it: the golden DCA
    run (6 buys, equity 994.586228); a bound violated exits 2 with one `veloz:` line."""
    data = _csv(tmp_path / "bars.csv", closes_only(DCA_CLOSES))
    summary = tmp_path / "summary.json"
    params = ["quote_amount=100", "every_bars=3", "dip_pct=5", "dip_multiplier=2"]
    done = subprocess.run(
        [sys.executable, "-m", "veloz", *_cli("dca", params, data, "--json", str(summary))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = json.loads(summary.read_text())
    assert (written["orders"], written["fills"]) == (6, 6)
    assert Decimal(written["final_equity"]) == D("994.586228")

    refused_summary = tmp_path / "refused.json"
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "veloz",
            *_cli("dca", ["dip_pct=150"], data, "--json", str(refused_summary)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "veloz: parameter dip_pct of dca: Expected `float` < 100.0"
    ]
    assert not refused_summary.exists()
