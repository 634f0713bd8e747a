"""Binance's order JSON into our reports (`binance_reports`) and the ledger that tells the
engine each fact once (`binance_ledger`), on the payloads of Binance's own documentation
(rest-api.md, user-data-stream.md)."""

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from veloz.execution.venue import VenueOrder
from veloz.execution.venues.binance_ledger import ReportLedger
from veloz.execution.venues.binance_reports import (
    MalformedMessage,
    account_totals,
    execution_update,
    new_order_params,
    order_update,
    plain,
    position_totals,
    trade_fill,
)
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import OrderFilled, OrderReport
from veloz.model.orders import Order

MS = 1_000_000

# rest-api.md, "New order (TRADE)", Response - FULL (two of its fills).
FULL_ANSWER: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "orderId": 28,
    "orderListId": -1,
    "clientOrderId": "6gCrw2kRUAF9CvJDGP16IP",
    "transactTime": 1507725176595,
    "price": "0.00000000",
    "origQty": "10.00000000",
    "executedQty": "10.00000000",
    "origQuoteOrderQty": "0.000000",
    "cummulativeQuoteQty": "10.00000000",
    "status": "FILLED",
    "timeInForce": "GTC",
    "type": "MARKET",
    "side": "SELL",
    "workingTime": 1507725176595,
    "selfTradePreventionMode": "NONE",
    "fills": [
        {
            "price": "4000.00000000",
            "qty": "1.00000000",
            "commission": "4.00000000",
            "commissionAsset": "USDT",
            "tradeId": 56,
        },
        {
            "price": "3999.00000000",
            "qty": "9.00000000",
            "commission": "35.99100000",
            "commissionAsset": "USDT",
            "tradeId": 57,
        },
    ],
}

# rest-api.md, "Query order (USER_DATA)".
QUERY_ANSWER: dict[str, Any] = {
    "symbol": "LTCBTC",
    "orderId": 1,
    "orderListId": -1,
    "clientOrderId": "myOrder1",
    "price": "0.1",
    "origQty": "1.0",
    "executedQty": "0.0",
    "cummulativeQuoteQty": "0.0",
    "status": "NEW",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
    "stopPrice": "0.0",
    "icebergQty": "0.0",
    "time": 1499827319559,
    "updateTime": 1499827319559,
    "isWorking": True,
    "workingTime": 1499827319559,
    "origQuoteOrderQty": "0.000000",
    "selfTradePreventionMode": "NONE",
}

# rest-api.md, "Cancel order (TRADE)".
CANCEL_ANSWER: dict[str, Any] = {
    "symbol": "LTCBTC",
    "origClientOrderId": "myOrder1",
    "orderId": 4,
    "orderListId": -1,
    "clientOrderId": "cancelMyOrder1",
    "transactTime": 1684804350068,
    "price": "2.00000000",
    "origQty": "1.00000000",
    "executedQty": "0.00000000",
    "origQuoteOrderQty": "0.000000",
    "cummulativeQuoteQty": "0.00000000",
    "status": "CANCELED",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
    "selfTradePreventionMode": "NONE",
}

# rest-api.md, "Account trade list (USER_DATA)".
MY_TRADE: dict[str, Any] = {
    "symbol": "BNBBTC",
    "id": 28457,
    "orderId": 100234,
    "orderListId": -1,
    "price": "4.00000100",
    "qty": "12.00000000",
    "quoteQty": "48.000012",
    "commission": "10.10000000",
    "commissionAsset": "BNB",
    "time": 1499865549590,
    "isBuyer": True,
    "isMaker": False,
    "isBestMatch": True,
}

# user-data-stream.md, "Order Update" (the event inside the subscription's envelope).
EXECUTION_NEW: dict[str, Any] = {
    "e": "executionReport",
    "E": 1499405658658,
    "s": "ETHBTC",
    "c": "mUvoqJxFIILMdfAW5iGSOW",
    "S": "BUY",
    "o": "LIMIT",
    "f": "GTC",
    "q": "1.00000000",
    "p": "0.10264410",
    "P": "0.00000000",
    "F": "0.00000000",
    "g": -1,
    "C": "",
    "x": "NEW",
    "X": "NEW",
    "r": "NONE",
    "i": 4293153,
    "l": "0.00000000",
    "z": "0.00000000",
    "L": "0.00000000",
    "n": "0",
    "N": None,
    "T": 1499405658657,
    "t": -1,
    "I": 8641984,
    "w": True,
    "m": False,
    "M": False,
    "O": 1499405658657,
    "Z": "0.00000000",
    "Y": "0.00000000",
    "Q": "0.00000000",
    "W": 1499405658657,
    "V": "NONE",
}


def execution(**fields: Any) -> dict[str, Any]:
    return {**EXECUTION_NEW, **fields}


def trade_event(trade_id: int, qty: str, cum: str, status: str, *, maker: bool) -> dict[str, Any]:
    return execution(
        x="TRADE",
        X=status,
        t=trade_id,
        l=qty,
        z=cum,
        L="0.10264410",
        n="0.00000100",
        N="ETH",
        m=maker,
        T=1499405658700 + trade_id,
    )


# -- our order -> Binance ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("0.0100"), "0.01"),
        (Decimal("1E-8"), "0.00000001"),
        (Decimal("50000.00"), "50000"),
        (Decimal("12.5"), "12.5"),
    ],
)
def test_decimals_go_out_in_plain_notation(value: Decimal, text: str) -> None:
    assert plain(value) == text


def test_limit_order_parameters() -> None:
    order = VenueOrder(
        client_order_id="abc-1",
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        qty=Decimal("1E-5"),
        price=Decimal("50000.10"),
    )

    assert new_order_params(order) == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.00001",
        "newClientOrderId": "abc-1",
        "newOrderRespType": "FULL",
        "timeInForce": "IOC",
        "price": "50000.1",
    }


def test_market_order_parameters_have_no_price_nor_time_in_force() -> None:
    order = VenueOrder(
        client_order_id="abc-2",
        symbol="BTCUSDT",
        side=OrderSide.SELL,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.GTC,
        qty=Decimal("0.5"),
        price=None,
    )

    params = new_order_params(order)
    assert "price" not in params and "timeInForce" not in params
    assert params["type"] == "MARKET" and params["quantity"] == "0.5"


# -- Binance -> our terms ------------------------------------------------------------------


def test_full_answer_carries_its_fills_as_taker_fills() -> None:
    update = order_update(FULL_ANSWER)

    assert (update.client_order_id, update.venue_order_id, update.status) == (
        "6gCrw2kRUAF9CvJDGP16IP",
        "28",
        OrderStatus.FILLED,
    )
    assert update.executed_qty == Decimal("10")
    assert update.price is None  # a market order's price is shown as zero
    first, second = update.fills
    assert first == OrderFilled(
        client_order_id="6gCrw2kRUAF9CvJDGP16IP",
        trade_id="56",
        qty=Decimal("1.00000000"),
        price=Decimal("4000.00000000"),
        fee=Decimal("4.00000000"),
        fee_asset="USDT",
        liquidity=LiquiditySide.TAKER,
        symbol="BTCUSDT",
        side=OrderSide.SELL,
        ts_ns=1507725176595 * MS,
    )
    assert second.fee == Decimal("35.99100000") and second.trade_id == "57"


def test_query_answer_is_the_order_state() -> None:
    state = order_update(QUERY_ANSWER).state()

    assert (state.client_order_id, state.venue_order_id, state.status) == (
        "myOrder1",
        "1",
        OrderStatus.ACCEPTED,
    )
    assert (state.symbol, state.side, state.order_qty, state.price) == (
        "LTCBTC",
        OrderSide.BUY,
        Decimal("1.0"),
        Decimal("0.1"),
    )
    assert state.executed_qty == 0 and state.fills == []


def test_cancel_answer_names_our_order_not_the_cancel_request() -> None:
    update = order_update(CANCEL_ANSWER)

    assert (update.client_order_id, update.status) == ("myOrder1", OrderStatus.CANCELLED)
    assert update.ts_ns == 1684804350068 * MS


def test_my_trade_is_a_fill_with_its_side_liquidity_and_fee() -> None:
    fill = trade_fill(MY_TRADE, "ours-1")

    assert fill == OrderFilled(
        client_order_id="ours-1",
        trade_id="28457",
        qty=Decimal("12.00000000"),
        price=Decimal("4.00000100"),
        fee=Decimal("10.10000000"),
        fee_asset="BNB",
        liquidity=LiquiditySide.TAKER,
        symbol="BNBBTC",
        side=OrderSide.BUY,
        ts_ns=1499865549590 * MS,
    )
    maker_sell = trade_fill({**MY_TRADE, "isBuyer": False, "isMaker": True}, "ours-1")
    assert (maker_sell.side, maker_sell.liquidity) == (OrderSide.SELL, LiquiditySide.MAKER)


def test_execution_report_new_and_trade() -> None:
    new = execution_update(EXECUTION_NEW)
    assert (new.client_order_id, new.venue_order_id, new.status, new.fills) == (
        "mUvoqJxFIILMdfAW5iGSOW",
        "4293153",
        OrderStatus.ACCEPTED,
        (),
    )
    assert new.ts_ns == 1499405658657 * MS and new.price == Decimal("0.10264410")

    traded = execution_update(trade_event(7, "0.4", "0.4", "PARTIALLY_FILLED", maker=True))
    [fill] = traded.fills
    assert traded.status is OrderStatus.PARTIALLY_FILLED
    assert (fill.trade_id, fill.qty, fill.price, fill.fee, fill.fee_asset, fill.liquidity) == (
        "7",
        Decimal("0.4"),
        Decimal("0.10264410"),
        Decimal("0.00000100"),
        "ETH",
        LiquiditySide.MAKER,
    )


def test_execution_report_of_a_cancel_names_the_original_order() -> None:
    cancelled = execution_update(
        execution(x="CANCELED", X="CANCELED", c="cancel-request-9", C="mUvoqJxFIILMdfAW5iGSOW")
    )
    assert (cancelled.client_order_id, cancelled.status) == (
        "mUvoqJxFIILMdfAW5iGSOW",
        OrderStatus.CANCELLED,
    )


def test_expiry_reason_is_kept() -> None:
    expired = execution_update(
        execution(x="EXPIRED", X="EXPIRED", eR="UNFILLED_IOC_QUANTITY_EXPIRED")
    )
    assert (expired.status, expired.reason) == (
        OrderStatus.EXPIRED,
        "UNFILLED_IOC_QUANTITY_EXPIRED",
    )


def test_balances() -> None:
    account = {
        "balances": [
            {"asset": "BTC", "free": "4723846.89208129", "locked": "0.00000000"},
            {"asset": "LTC", "free": "1.5", "locked": "0.25"},
        ]
    }
    assert account_totals(account) == {
        "BTC": Decimal("4723846.89208129"),
        "LTC": Decimal("1.75"),
    }
    position = {"e": "outboundAccountPosition", "B": [{"a": "ETH", "f": "10", "l": "0.5"}]}
    assert position_totals(position) == {"ETH": Decimal("10.5")}


@pytest.mark.parametrize(
    "broken",
    [
        {k: v for k, v in EXECUTION_NEW.items() if k != "z"},
        execution(X="SOMETHING_NEW"),
        execution(z=0.1),  # a float: digits may already be lost
        execution(z="NaN"),
        execution(S="SIDEWAYS"),
        execution(x="TRADE", X="FILLED", t="not a number"),
    ],
)
def test_unreadable_execution_reports_are_malformed(broken: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        execution_update(broken)


def test_unreadable_order_answer_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        order_update({**QUERY_ANSWER, "executedQty": None})
    with pytest.raises(MalformedMessage):
        trade_fill({k: v for k, v in MY_TRADE.items() if k != "commission"}, "x")


# -- the ledger: each fact once, in order --------------------------------------------------


def kinds(reports: list[OrderReport]) -> list[str]:
    return [type(report).__name__ for report in reports]


COID = "mUvoqJxFIILMdfAW5iGSOW"


def ledger_tracking() -> ReportLedger:
    ledger = ReportLedger()
    ledger.track(COID, "ETHBTC", OrderSide.BUY)
    return ledger


def test_stream_then_answer_reports_each_fact_once() -> None:
    ledger = ledger_tracking()
    stream = [
        EXECUTION_NEW,
        trade_event(1, "0.4", "0.4", "PARTIALLY_FILLED", maker=False),
        trade_event(2, "0.6", "1", "FILLED", maker=True),
    ]
    reports = [r for event in stream for r in ledger.apply(execution_update(event)).reports]

    # The REST answer to the same order arrives after the stream told everything.
    answer = execution_update(trade_event(2, "0.6", "1", "FILLED", maker=True))
    assert ledger.apply(answer).reports == []
    assert kinds(reports) == ["OrderAccepted", "OrderFilled", "OrderFilled"]
    assert ledger.is_final(COID)


def test_answer_then_stream_reports_each_fact_once() -> None:
    ledger = ReportLedger()
    ledger.track("6gCrw2kRUAF9CvJDGP16IP", "BTCUSDT", OrderSide.SELL)

    first = ledger.apply(order_update(FULL_ANSWER)).reports
    again = ledger.apply(order_update(FULL_ANSWER)).reports

    assert kinds(first) == ["OrderAccepted", "OrderFilled", "OrderFilled"]
    assert again == []


def test_final_state_waits_for_the_fills_before_it() -> None:
    ledger = ledger_tracking()
    ledger.apply(execution_update(EXECUTION_NEW))
    # The stream missed the trade; the cancel says 0.4 was executed.
    cancelled = execution_update(
        execution(x="CANCELED", X="CANCELED", z="0.4", c="cancel-1", C=COID)
    )

    applied = ledger.apply(cancelled)
    assert applied.reports == [] and applied.missing_fills
    assert not ledger.is_final(COID)

    trade = trade_fill({**MY_TRADE, "symbol": "ETHBTC", "qty": "0.4"}, COID)
    with_trades = ledger.apply(msgspec.structs.replace(cancelled, fills=(trade,)))
    assert kinds(with_trades.reports) == ["OrderFilled", "OrderCancelled"]
    assert ledger.is_final(COID)


def test_cancelled_before_acknowledged_is_accepted_first() -> None:
    ledger = ledger_tracking()
    reports = ledger.apply(
        execution_update(execution(x="CANCELED", X="CANCELED", c="cx", C=COID))
    ).reports
    assert kinds(reports) == ["OrderAccepted", "OrderCancelled"]


def test_expired_ioc_reports_accept_fill_expiry() -> None:
    ledger = ReportLedger()
    ledger.track("6gCrw2kRUAF9CvJDGP16IP", "BTCUSDT", OrderSide.SELL)
    answer = {**FULL_ANSWER, "status": "EXPIRED", "executedQty": "1.00000000"}
    answer["fills"] = FULL_ANSWER["fills"][:1]

    reports = ledger.apply(order_update(answer)).reports
    assert kinds(reports) == ["OrderAccepted", "OrderFilled", "OrderExpired"]


def test_untracked_orders_get_no_reports() -> None:
    ledger = ReportLedger()
    assert ledger.apply(execution_update(EXECUTION_NEW)).reports == []


def test_rejection_is_reported_once_and_never_after_acceptance() -> None:
    ledger = ledger_tracking()
    assert kinds(ledger.reject(COID, "Binance -2010: nope", 1)) == ["OrderRejected"]
    assert ledger.reject(COID, "again", 2) == []

    accepted = ledger_tracking()
    accepted.apply(execution_update(EXECUTION_NEW))
    assert accepted.reject(COID, "late", 3) == []


def test_seeded_order_does_not_repeat_what_the_journal_has() -> None:
    order = Order(
        client_order_id=COID,
        symbol="ETHBTC",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        order_qty=Decimal(1),
        limit_price=Decimal("0.10264410"),
        status=OrderStatus.PARTIALLY_FILLED,
        venue_order_id="4293153",
        executed_qty=Decimal("0.4"),
        trade_ids=["1"],
    )
    ledger = ReportLedger()
    ledger.seed(order)

    reports = [
        r
        for event in (
            trade_event(1, "0.4", "0.4", "PARTIALLY_FILLED", maker=True),
            trade_event(2, "0.6", "1", "FILLED", maker=True),
        )
        for r in ledger.apply(execution_update(event)).reports
    ]
    assert [(type(r), getattr(r, "trade_id", None)) for r in reports] == [(OrderFilled, "2")]
    assert ledger.working() == []


def test_working_lists_acknowledged_live_orders() -> None:
    ledger = ledger_tracking()
    ledger.track("pending-1", "ETHBTC", OrderSide.SELL)
    ledger.apply(execution_update(EXECUTION_NEW))

    assert ledger.working() == [(COID, "ETHBTC", "4293153")]
    assert ledger.pending() == [("pending-1", "ETHBTC")]


def test_old_final_orders_are_forgotten_beyond_the_limit() -> None:
    ledger = ReportLedger(keep_final=1)
    for coid in ("a", "b"):
        ledger.track(coid, "ETHBTC", OrderSide.BUY)
        ledger.reject(coid, "no", 0)
    assert not ledger.knows("a") and ledger.is_final("b")
