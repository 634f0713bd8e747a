"""`encode_json` encodes a Struct of scalars as it is, its decimals rendered into it; the
output must be byte for byte what rendering its `to_builtins` dict gives."""

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veloz.codec import _json_encoder, encode_json, to_builtins
from veloz.engine.views.orders import FillView, OrderAnswer, OrderView
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.instruments import default_instrument
from veloz.model.numbers import Precisions, render, show_with


@pytest.fixture(autouse=True)
def precisions():
    instruments = {
        "BTCUSDT": default_instrument("BTCUSDT", Decimal(40000)),
        "ETHBTC": default_instrument("ETHBTC", Decimal("0.05")),
    }
    show_with(Precisions(instruments, "USDT"))
    yield
    show_with(Precisions())


def walked(value: object) -> bytes:
    return _json_encoder.encode(render(to_builtins(value)))


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d) < 10**15
) | st.sampled_from([Decimal("-0"), Decimal("0E-9"), Decimal("1E+3"), Decimal("1E-9")])
maybe = st.none() | decimals
symbols = st.sampled_from(["BTCUSDT", "ETHBTC", "NOPE"])
assets = st.none() | st.sampled_from(["USDT", "BTC", "BNB"])


@settings(max_examples=300, deadline=None)
@given(
    symbol=symbols,
    qty=decimals,
    price=maybe,
    executed=decimals,
    avg=maybe,
    fee=decimals,
    fee_asset=assets,
)
def test_an_order_answer_encodes_as_its_dict_renders(
    *, symbol, qty, price, executed, avg, fee, fee_asset
):
    answer = OrderAnswer(
        client_order_id="c-1",
        venue_order_id=None,
        symbol=symbol,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        order_qty=qty,
        limit_price=price,
        status=OrderStatus.ACCEPTED,
        executed_qty=executed,
        avg_price=avg,
        fee=fee,
        fee_asset=fee_asset,
        reason="",
        strategy_id=None,
        created_ts_ns=1,
        last_ts_ns=2,
    )
    assert encode_json(answer) == walked(answer)
    view = OrderView.of(answer)  # type: ignore[arg-type]
    assert encode_json(view) == walked(view)


@settings(max_examples=100, deadline=None)
@given(
    symbol=symbols,
    qty=decimals,
    price=decimals,
    fee=decimals,
    fee_asset=st.sampled_from(["USDT", "BTC"]),
)
def test_a_fill_encodes_as_its_dict_renders(*, symbol, qty, price, fee, fee_asset):
    fill = FillView(
        trade_id="t-1",
        client_order_id="c-1",
        symbol=symbol,
        side=OrderSide.SELL,
        qty=qty,
        price=price,
        fee=fee,
        fee_asset=fee_asset,
        liquidity=LiquiditySide.MAKER,
        ts_ns=3,
    )
    assert encode_json(fill) == walked(fill)


class Ratios(msgspec.Struct, rename={"lev": "leverage"}):
    drawdown: Decimal
    lev: Decimal | None
    equity: Decimal
    note: str = ""


class Defaults(msgspec.Struct, omit_defaults=True):
    fee: Decimal = Decimal(0)
    symbol: str = "BTCUSDT"


class SymbolRenamed(msgspec.Struct, rename={"instrument": "symbol", "symbol": "name"}):
    instrument: str  # JSON "symbol": its precisions apply
    symbol: str  # JSON "name": not a symbol to the rules
    price: Decimal


class Nested(msgspec.Struct):
    fills: list[Decimal]


@pytest.mark.parametrize(
    "value",
    [
        Ratios(Decimal("0.123456789"), Decimal("2.50"), Decimal("100")),
        Ratios(Decimal("-0.000000001"), None, Decimal("-0")),
        Defaults(),
        Defaults(Decimal("0.1")),
        Nested([Decimal("1E-8"), Decimal("2")]),
        SymbolRenamed("BTCUSDT", "ETHBTC", Decimal("40000.123")),
        SymbolRenamed("ETHBTC", "BTCUSDT", Decimal("0.0512345678")),
    ],
)
def test_renamed_ratio_defaulted_and_nested_structs_encode_as_their_dicts_render(value):
    assert encode_json(value) == walked(value)
