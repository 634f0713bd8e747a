"""Pre-trade checks, each at its accept and deny edges, and the order-rate bucket."""

from decimal import Decimal

import pytest

from veloz.model.enums import OrderSide
from veloz.risk.checks import Exposure, OrderIntent, checks_for, needs_margin, pre_trade
from veloz.risk.limits import SymbolLimits
from veloz.risk.rate import TokenBucket

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def intent(qty: str = "1", price: str = "100", side: OrderSide = BUY, limit: bool = True):
    return OrderIntent(symbol="BTCUSDT", side=side, qty=D(qty), price=D(price), is_limit=limit)


def exposure(**changes: object) -> Exposure:
    values: dict[str, object] = dict(
        position_qty=D(0),
        open_buy_qty=D(0),
        open_sell_qty=D(0),
        open_orders_symbol=0,
        open_orders_total=0,
        mark=D(100),
        free_quote=D(1_000_000),
        free_base=D(1_000),
    )
    return Exposure(**(values | changes))  # type: ignore[arg-type]


def reason(
    order: OrderIntent, limits: SymbolLimits, total: int | None = None, seen: Exposure | None = None
) -> str | None:
    denial = pre_trade(order, limits, total, seen or exposure())
    return None if denial is None else denial.reason


@pytest.mark.parametrize(
    ("limits", "ok", "denied", "code"),
    [
        (SymbolLimits(min_qty=D(1)), intent("1"), intent("0.99"), "qty_below_minimum"),
        (SymbolLimits(max_qty=D(2)), intent("2"), intent("2.01"), "qty_above_maximum"),
        (
            SymbolLimits(min_notional=D(100)),
            intent("1", "100"),
            intent("1", "99.99"),
            "notional_below_minimum",
        ),
        (
            SymbolLimits(max_notional=D(200)),
            intent("2", "100"),
            intent("2", "100.01"),
            "notional_above_maximum",
        ),
        (
            SymbolLimits(price_band_pct=D(10)),
            intent(price="110"),
            intent(price="110.01"),
            "price_out_of_band",
        ),
        (
            SymbolLimits(price_band_pct=D(10)),
            intent(price="90"),
            intent(price="89.99"),
            "price_out_of_band",
        ),
        (SymbolLimits(max_position_qty=D(3)), intent("3"), intent("3.5"), "max_position_exceeded"),
        (
            SymbolLimits(max_position_notional=D(300)),
            intent("3"),
            intent("3.01"),
            "max_position_exceeded",
        ),
    ],
)
def test_each_limit_accepts_at_its_edge_and_denies_past_it(limits, ok, denied, code):
    assert reason(ok, limits) is None
    assert reason(denied, limits) == code


def test_market_orders_are_not_held_to_the_price_band():
    assert reason(intent(price="500", limit=False), SymbolLimits(price_band_pct=D(1))) is None


def test_open_and_in_flight_orders_count_towards_the_position():
    limits = SymbolLimits(max_position_qty=D(5))
    assert reason(intent("2"), limits, seen=exposure(position_qty=D(1), open_buy_qty=D(2))) is None
    assert (
        reason(intent("2.1"), limits, seen=exposure(position_qty=D(1), open_buy_qty=D(2)))
        == "max_position_exceeded"
    )
    # Sells are checked against the short side, with open sells counted.
    assert (
        reason(
            intent("3", side=SELL), limits, seen=exposure(position_qty=D(-1), open_sell_qty=D(1))
        )
        is None
    )
    assert (
        reason(
            intent("3.1", side=SELL), limits, seen=exposure(position_qty=D(-1), open_sell_qty=D(1))
        )
        == "max_position_exceeded"
    )


def test_open_order_counts_per_symbol_and_in_total():
    per_symbol = SymbolLimits(max_open_orders=2)
    assert reason(intent(), per_symbol, seen=exposure(open_orders_symbol=1)) is None
    assert reason(intent(), per_symbol, seen=exposure(open_orders_symbol=2)) == "max_open_orders"
    assert reason(intent(), SymbolLimits(), 3, exposure(open_orders_total=2)) is None
    assert reason(intent(), SymbolLimits(), 3, exposure(open_orders_total=3)) == "max_open_orders"


def test_free_balance_after_what_open_orders_hold():
    assert reason(intent("2", "100"), SymbolLimits(), seen=exposure(free_quote=D(200))) is None
    assert (
        reason(intent("2", "100"), SymbolLimits(), seen=exposure(free_quote=D("199.99")))
        == "insufficient_balance"
    )
    assert reason(intent("5", side=SELL), SymbolLimits(), seen=exposure(free_base=D(5))) is None
    assert (
        reason(intent("5.01", side=SELL), SymbolLimits(), seen=exposure(free_base=D(5)))
        == "insufficient_balance"
    )


def test_only_the_checks_a_limit_is_set_for_run_and_the_balance_check_always():
    assert [check.__name__ for check in checks_for(SymbolLimits(), None)] == ["_balance"]
    limits = SymbolLimits(max_qty=D(1), price_band_pct=D(5), max_position_notional=D(9))
    assert [check.__name__ for check in checks_for(limits, 3)] == [
        "_size",
        "_price_band",
        "_open_orders",
        "_position",
        "_balance",
    ]


def test_margin_is_checked_only_for_an_order_that_grows_the_position():
    # Long 1 with no equity valued: flipping to short 1 holds no more, so it passes; going
    # short 1.5 needs margin, and is checked against the equity.
    margin = {"margin_leverage": D(1), "position_qty": D(1)}
    flip, beyond = intent("2", side=SELL, limit=False), intent("2.5", side=SELL, limit=False)
    assert not needs_margin(flip, D(1), D(0), D(0))
    assert needs_margin(beyond, D(1), D(0), D(0))
    assert reason(flip, SymbolLimits(), seen=exposure(**margin)) is None
    assert reason(beyond, SymbolLimits(), seen=exposure(**margin)) == "insufficient_margin"
    assert reason(beyond, SymbolLimits(), seen=exposure(**margin, equity=D(150))) is None


def test_the_bucket_allows_a_burst_of_the_rate_then_holds_to_it():
    now = [0]
    bucket = TokenBucket(5, lambda: now[0])
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    assert bucket.retry_after_s() == pytest.approx(0.2)
    now[0] += 200_000_000  # 0.2 s refills one token
    assert bucket.take() and not bucket.take()
    now[0] += 10_000_000_000  # a long pause refills to the burst size, not beyond
    assert sum(bucket.take() for _ in range(10)) == 5
    with pytest.raises(ValueError):
        TokenBucket(0, lambda: 0)
