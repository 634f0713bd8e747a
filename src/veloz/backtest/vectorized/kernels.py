"""The numba kernels of the vectorised backtest: per strategy, the signal of every bar;
for all of them, the orders those signals make, their fills on one account, and the
running sums the statistics need (see `metrics.py`).

A signal is one code (a byte) per bar, so a strategy's indicators and the account never
share a loop: the bits `ENTER`/`LEAVE` for the long-or-flat strategies, `LONG`/`SHORT`
(the target position) for `ema_cross`. Each signal kernel repeats its strategy's float64
arithmetic operation for operation, in the same order (`veloz.strategy.builtin`): the
same bits, so the same comparisons, so the same orders. No `fastmath`: a fused
multiply-add would round differently from CPython.

The account follows the backtester for MARKET orders (`BacktestEngine`, the trading core,
`SimExchange`), in float64 where it keeps Decimal:
- the order is sent on the signal's bar; it fills at that bar's close (fill model close)
  or at the next bar's open (next_open), the price moved by slippage against it;
- refused before it is sent (`denied`): a notional below the instrument's minimum at the
  reference price (the bar's close); on a cash account a BUY whose qty x close exceeds
  the free quote balance or a SELL of more than the free base; on a margin account (1x) an
  order that would grow the position beyond the equity at the close;
- refused by the exchange (`rejected`, counted as an order): a cash BUY whose notional at
  the fill price plus the fee reserve (rounded up to 1e-8) exceeds the free quote;
- the fee is the taker rate on the fill's notional, in the quote asset, rounded half up to
  1e-8.
Positions are whole multiples of the strategy's qty (`units`).
"""

import math

import numba
import numpy as np
from numpy.typing import NDArray

ENTER, LEAVE = 1, 2  # long-or-flat: buy qty when flat; sell all when long
LONG, SHORT = 1, 2  # ema_cross: the target position is +qty / -qty
MODE_TARGET, MODE_LONG_FLAT = 0, 1

# One parameter set's result row (`out[s]`), read by `sweep.py`.
(
    END_EQUITY,
    SUM_R,
    SUM_R2,
    SUM_DOWN2,
    MIN_R,
    MAX_R,
    MAX_DD,
    EXPOSED,
    TRADES,
    FILLS,
    FEES,
    MIN_EQUITY,
    ORDERS,
    DENIED,
    REJECTED,
) = range(15)
ROW = 15

# The account's constants (`costs`), as the kernel reads them.
(
    QTY,
    QUOTE0,
    BASE0,
    FEE_RATE,
    RESERVE_RATE,
    SLIP_BUY,
    SLIP_SELL,
    MIN_NOTIONAL,
    MARGIN,
    NEXT_OPEN,
) = range(10)
COSTS = 10

# error_model "numpy": a division by zero gives inf or NaN (an equity of 0 leaves the
# returns undefined, which the caller knows from MIN_EQUITY), not an exception.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_jit_parallel = numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
# NO_KEYWORD_ONLY: numba 0.68 fails to compile a call from one kernel to another that has
# keyword-only parameters (`fold_arguments` IndexError), so the kernels take their many
# arguments positionally-or-by-keyword and their callers name them.


# -- signals -------------------------------------------------------------------------------


@_jit
def ema_cross_signal(
    close: NDArray[np.float64], fast: int, slow: int, codes: NDArray[np.int8]
) -> None:
    """`EmaCross.on_bar`: both EMAs seeded with the first close and updated with it."""
    fast_alpha = 2.0 / (fast + 1)
    slow_alpha = 2.0 / (slow + 1)
    fast_ema = close[0]
    slow_ema = close[0]
    for i in range(close.shape[0]):
        c = close[i]
        prev_fast = fast_ema
        prev_slow = slow_ema
        fast_ema = fast_alpha * c + (1.0 - fast_alpha) * prev_fast
        slow_ema = slow_alpha * c + (1.0 - slow_alpha) * prev_slow
        code = 0
        if i >= slow:  # ready on this bar and the one before
            if prev_fast <= prev_slow and fast_ema > slow_ema:
                code = LONG
            elif prev_fast >= prev_slow and fast_ema < slow_ema:
                code = SHORT
        codes[i] = code


@_jit
def rsi_signal(
    close: NDArray[np.float64],
    period: int,
    oversold: float,
    overbought: float,
    codes: NDArray[np.int8],
) -> None:
    """`RsiReversion.on_bar` with `WilderRsi`: seeded with the mean of the first `period`
    changes, then Wilder's smoothing."""
    n = period
    avg_gain = 0.0
    avg_loss = 0.0
    codes[0] = 0
    for i in range(1, close.shape[0]):
        change = close[i] - close[i - 1]
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        if i <= n:
            avg_gain += gain / n
            avg_loss += loss / n
            if i < n:
                codes[i] = 0
                continue
        else:
            avg_gain = (avg_gain * (n - 1) + gain) / n
            avg_loss = (avg_loss * (n - 1) + loss) / n
        if avg_loss == 0.0:
            rsi = 50.0 if avg_gain == 0.0 else 100.0
        else:
            rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
        code = 0
        if rsi < oversold:
            code |= ENTER
        if rsi > overbought:
            code |= LEAVE
        codes[i] = code


@_jit
def bollinger_signal(
    close: NDArray[np.float64],
    period: int,
    width: float,
    exit_upper: bool,
    codes: NDArray[np.int8],
) -> None:
    """`BollingerReversion.on_bar` with `RollingBands`: running sums about the first
    close, the oldest value taken out after the newest is added."""
    shift = close[0]
    total = 0.0
    total_sq = 0.0
    n = period
    for i in range(close.shape[0]):
        x = close[i] - shift
        total += x
        total_sq += x * x
        if i >= n:
            old = close[i - n] - shift
            total -= old
            total_sq -= old * old
        elif i < n - 1:
            codes[i] = 0
            continue
        mean = total / n
        variance = max(total_sq / n - mean * mean, 0.0)
        middle = mean + shift
        std = math.sqrt(variance)
        c = close[i]
        target = middle + width * std if exit_upper else middle
        code = 0
        if c < middle - width * std:
            code |= ENTER
        if c >= target:
            code |= LEAVE
        codes[i] = code


@_jit
def previous_extreme(
    values: NDArray[np.float64], period: int, maximum: bool
) -> NDArray[np.float64]:
    """The maximum (or minimum) of the `period` values before each one; NaN until there
    are that many (a comparison with NaN is false, as `RollingExtreme.value` None is)."""
    n = values.shape[0]
    out = np.full(n, np.nan)
    window = np.empty(n, np.int64)  # indices with monotonic values
    head = 0
    tail = 0
    for i in range(n):
        if i >= period:
            while window[head] < i - period:
                head += 1
            out[i] = values[window[head]]
        v = values[i]
        if maximum:
            while tail > head and values[window[tail - 1]] <= v:
                tail -= 1
        else:
            while tail > head and values[window[tail - 1]] >= v:
                tail -= 1
        window[tail] = i
        tail += 1
    return out


@_jit
def donchian_signal(
    close: NDArray[np.float64],
    entry_high: NDArray[np.float64],
    exit_low: NDArray[np.float64],
    codes: NDArray[np.int8],
) -> None:
    """`DonchianBreakout.on_bar`: channels of the bars before this one."""
    for i in range(close.shape[0]):
        c = close[i]
        code = 0
        if c > entry_high[i]:
            code |= ENTER
        if c < exit_low[i]:
            code |= LEAVE
        codes[i] = code


# -- the account ---------------------------------------------------------------------------


@_jit
def _slack(units: float) -> float:
    """How far below its exact value a product of a few float64s (>= 0) in units of 1e-8
    may land: a few ulps. The Decimal product the exchange rounds is exact, and often ends
    exactly on a half or a whole unit (prices of a few decimals times bps), so a float
    landing just short of it must still round as the exact value does."""
    return units * 1e-15 + 1e-9


@_jit
def _round8(value: float) -> float:
    """Half up to 1e-8, as the exchange quantizes a fee."""
    units = value * 1e8
    return math.floor(units + 0.5 + _slack(units)) / 1e8


@_jit
def _ceil8(value: float) -> float:
    """Up to 1e-8, as the exchange rounds a fee reserve."""
    units = value * 1e8
    return math.ceil(units - _slack(units)) / 1e8


@_jit
def _wanted(code: int, mode: int, units: int) -> int:
    """The units the strategy orders on a bar with `code`, holding `units`."""
    if code == 0:
        return 0
    if mode == MODE_TARGET:
        return (1 if code == LONG else -1) - units
    if units <= 0:
        return 1 if code & ENTER else 0
    return -units if code & LEAVE else 0


@_jit
def _risk_refuses(  # noqa: PLR0917  (see NO_KEYWORD_ONLY)
    delta: int, units: int, qty: float, mark: float, quote: float, base: float, margin: bool
) -> bool:
    """The core's pre-trade check at the bar's close: free balances on a cash account; on
    a margin account (1x) a position that grows beyond the equity."""
    if margin:
        worst = abs(units + delta)
        return worst > abs(units) and worst * qty * mark > quote + base * mark
    if delta > 0:
        return delta * qty * mark > quote
    return -delta * qty > base


@_jit
def _cash_covers(  # noqa: PLR0917  (see NO_KEYWORD_ONLY)
    delta: int,
    order_qty: float,
    notional: float,
    quote: float,
    base: float,
    reserve_rate: float,
) -> bool:
    """Whether the exchange can lock what a cash order needs out of the free balance:
    a BUY's notional and a fee reserve (rounded up to 1e-8), a SELL's base."""
    if delta > 0:
        return notional + _ceil8(notional * reserve_rate) <= quote
    return order_qty <= base


# One loop over the bars keeps the whole account in registers: split into per-bar calls
# returning the state, it reads no better and numba would pass the state through memory.
@_jit
def account(  # noqa: PLR0915, PLR0917  (see NO_KEYWORD_ONLY)
    codes: NDArray[np.int8],
    mode: int,
    open_: NDArray[np.float64],
    close: NDArray[np.float64],
    costs: NDArray[np.float64],
    out: NDArray[np.float64],
    equity_out: NDArray[np.float64],
    fill_bar: NDArray[np.int64],
    fill_units: NDArray[np.int64],
    fill_order: NDArray[np.int64],
) -> int:
    """Trade `codes` on one account; the result row into `out`. When `equity_out` has a
    slot per bar, also the equity curve and every fill (bar, signed units, the order's
    number among those the core took); returns the number of fills."""
    record = equity_out.shape[0] > 0
    qty = costs[QTY]
    quote = costs[QUOTE0]
    base0 = costs[BASE0]
    base = base0
    fee_rate = costs[FEE_RATE]
    reserve_rate = costs[RESERVE_RATE]
    slip_buy = costs[SLIP_BUY]
    slip_sell = costs[SLIP_SELL]
    min_notional = costs[MIN_NOTIONAL]
    margin = costs[MARGIN] != 0.0
    next_open = costs[NEXT_OPEN] != 0.0
    n = close.shape[0]

    units = 0  # the strategy's position, in qty
    pending = 0  # units of an order waiting for the next open
    pending_id = 0
    ids = 0  # orders the core numbered (risk denials included)
    orders = 0
    denied = 0
    rejected = 0
    fills = 0
    trades = 0
    fees = 0.0
    exposed = 0
    sum_r = 0.0
    sum_r2 = 0.0
    sum_down2 = 0.0
    min_r = math.inf
    max_r = -math.inf
    max_dd = 0.0
    min_equity = math.inf
    equity = quote + base * close[0]  # sample 0: the starting capital
    peak = equity
    if record:
        equity_out[0] = equity

    for i in range(n):
        # Phase 0 is the bar's open, where an order held from the bar before reaches the
        # exchange (next_open); phase 1 its close, where the strategy sees the bar and, on
        # fill model close, its order trades at once.
        for phase in range(2):
            if phase == 1:
                delta = _wanted(codes[i], mode, units)
                if delta != 0:
                    c = close[i]
                    order_qty = abs(delta) * qty
                    if order_qty * c < min_notional:
                        denied += 1  # the instrument's filter: refused before it has an id
                        continue
                    ids += 1
                    if _risk_refuses(
                        delta, units, qty=qty, mark=c, quote=quote, base=base, margin=margin
                    ):
                        denied += 1
                        continue
                    orders += 1
                    pending = delta
                    pending_id = ids
            if pending == 0 or (phase == 0) != next_open:
                continue
            delta = pending
            pending = 0
            order_qty = abs(delta) * qty
            touch = open_[i] if phase == 0 else close[i]
            price = touch * (slip_buy if delta > 0 else slip_sell)
            notional = order_qty * price
            if not margin and not _cash_covers(
                delta,
                order_qty,
                notional=notional,
                quote=quote,
                base=base,
                reserve_rate=reserve_rate,
            ):
                rejected += 1
                continue
            fee = _round8(notional * fee_rate)
            quote += -(notional + fee) if delta > 0 else notional - fee
            after = units + delta
            base = base0 + after * qty  # from the units held: no rounding carried along
            if units != 0 and (after == 0 or (after > 0) != (units > 0)):
                trades += 1  # a round trip closes: flat again, or flipped
            units = after
            fees += fee
            if record:
                fill_bar[fills] = i
                fill_units[fills] = delta
                fill_order[fills] = pending_id
            fills += 1

        # Then the curve: sample i at the close, after the bar's fills (sample 0 is fixed).
        if units != 0:
            exposed += 1
        if i > 0:
            value = quote + base * close[i]
            if equity < min_equity:
                min_equity = equity  # samples before the last
            r = value / equity - 1.0
            sum_r += r
            sum_r2 += r * r
            if r < 0.0:
                sum_down2 += r * r
            min_r = min(min_r, r)
            max_r = max(max_r, r)
            equity = value
            if value > peak:
                peak = value
            elif peak > 0.0:
                max_dd = max(max_dd, (peak - value) / peak)
            if record:
                equity_out[i] = value

    out[END_EQUITY] = equity
    out[SUM_R] = sum_r
    out[SUM_R2] = sum_r2
    out[SUM_DOWN2] = sum_down2
    out[MIN_R] = min_r
    out[MAX_R] = max_r
    out[MAX_DD] = max_dd
    out[EXPOSED] = exposed
    out[TRADES] = trades
    out[FILLS] = fills
    out[FEES] = fees
    out[MIN_EQUITY] = min_equity
    out[ORDERS] = orders
    out[DENIED] = denied
    out[REJECTED] = rejected
    return fills


# -- many parameter sets at once -----------------------------------------------------------
# Each grid runs `chunks` interleaved slices of the parameter sets over the cores (more
# slices than threads, so an early finisher takes another); a slice reuses one buffer of
# signal codes for all its sets.


@_jit_parallel
def ema_cross_grid(  # noqa: PLR0917  (see NO_KEYWORD_ONLY)
    open_: NDArray[np.float64],
    close: NDArray[np.float64],
    fast: NDArray[np.int64],
    slow: NDArray[np.int64],
    costs: NDArray[np.float64],
    out: NDArray[np.float64],
    chunks: int,
) -> None:
    sets = fast.shape[0]
    no_curve = np.empty(0, np.float64)
    no_fills = np.empty(0, np.int64)
    for chunk in numba.prange(chunks):
        codes = np.empty(close.shape[0], np.int8)  # reused by the chunk's sets
        for s in range(chunk, sets, chunks):
            ema_cross_signal(close, fast[s], slow[s], codes)
            account(
                codes,
                MODE_TARGET,
                open_=open_,
                close=close,
                costs=costs,
                out=out[s],
                equity_out=no_curve,
                fill_bar=no_fills,
                fill_units=no_fills,
                fill_order=no_fills,
            )


@_jit_parallel
def rsi_grid(  # noqa: PLR0917  (see NO_KEYWORD_ONLY)
    open_: NDArray[np.float64],
    close: NDArray[np.float64],
    period: NDArray[np.int64],
    oversold: NDArray[np.float64],
    overbought: NDArray[np.float64],
    costs: NDArray[np.float64],
    out: NDArray[np.float64],
    chunks: int,
) -> None:
    sets = period.shape[0]
    no_curve = np.empty(0, np.float64)
    no_fills = np.empty(0, np.int64)
    for chunk in numba.prange(chunks):
        codes = np.empty(close.shape[0], np.int8)
        for s in range(chunk, sets, chunks):
            rsi_signal(close, period[s], oversold[s], overbought[s], codes)
            account(
                codes,
                MODE_LONG_FLAT,
                open_=open_,
                close=close,
                costs=costs,
                out=out[s],
                equity_out=no_curve,
                fill_bar=no_fills,
                fill_units=no_fills,
                fill_order=no_fills,
            )


@_jit_parallel
def bollinger_grid(  # noqa: PLR0917  (see NO_KEYWORD_ONLY)
    open_: NDArray[np.float64],
    close: NDArray[np.float64],
    period: NDArray[np.int64],
    width: NDArray[np.float64],
    exit_upper: NDArray[np.bool_],
    costs: NDArray[np.float64],
    out: NDArray[np.float64],
    chunks: int,
) -> None:
    sets = period.shape[0]
    no_curve = np.empty(0, np.float64)
    no_fills = np.empty(0, np.int64)
    for chunk in numba.prange(chunks):
        codes = np.empty(close.shape[0], np.int8)
        for s in range(chunk, sets, chunks):
            bollinger_signal(close, period[s], width[s], exit_upper[s], codes)
            account(
                codes,
                MODE_LONG_FLAT,
                open_=open_,
                close=close,
                costs=costs,
                out=out[s],
                equity_out=no_curve,
                fill_bar=no_fills,
                fill_units=no_fills,
                fill_order=no_fills,
            )


@_jit_parallel
def donchian_grid(  # noqa: PLR0917  (see NO_KEYWORD_ONLY)
    open_: NDArray[np.float64],
    close: NDArray[np.float64],
    highs: NDArray[np.float64],
    lows: NDArray[np.float64],
    entry_row: NDArray[np.int64],
    exit_row: NDArray[np.int64],
    costs: NDArray[np.float64],
    out: NDArray[np.float64],
    chunks: int,
) -> None:
    """`highs[k]`/`lows[k]`: the channels of each distinct period, computed once."""
    sets = entry_row.shape[0]
    no_curve = np.empty(0, np.float64)
    no_fills = np.empty(0, np.int64)
    for chunk in numba.prange(chunks):
        codes = np.empty(close.shape[0], np.int8)
        for s in range(chunk, sets, chunks):
            donchian_signal(close, highs[entry_row[s]], lows[exit_row[s]], codes)
            account(
                codes,
                MODE_LONG_FLAT,
                open_=open_,
                close=close,
                costs=costs,
                out=out[s],
                equity_out=no_curve,
                fill_bar=no_fills,
                fill_units=no_fills,
                fill_order=no_fills,
            )
