"""The codec: journal events through MessagePack and back with exact decimals (stored as
strings), payloads checked against their entry type, and JSON with decimals as numbers that
keep their digits."""

import json
from decimal import Decimal
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veloz.codec import (
    ENTRY_TYPE_OF,
    JournalEvent,
    PayloadError,
    decode_event,
    encode_event,
    encode_json,
    to_builtins,
)
from veloz.journal.framing import EntryType
from veloz.model.enums import (
    LiquiditySide,
    OrderSide,
    OrderType,
    StrategyState,
    TimeInForce,
    TradingMode,
)
from veloz.model.errors import DenialReason
from veloz.model.events import (
    BalanceSet,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    StrategyChanged,
    TradingModeChanged,
)

D = Decimal

decimals = st.decimals(allow_nan=False, allow_infinity=False)
optional_decimals = st.none() | decimals
ids = st.text(min_size=1, max_size=36)
texts = st.text(max_size=50)
ts = st.integers(-(2**63), 2**63 - 1)

EVENT_STRATEGIES: dict[type[Event], st.SearchStrategy[Any]] = {
    OrderSubmitted: st.builds(
        OrderSubmitted,
        ts_ns=ts,
        client_order_id=ids,
        symbol=texts,
        side=st.sampled_from(OrderSide),
        order_type=st.sampled_from(OrderType),
        time_in_force=st.sampled_from(TimeInForce),
        qty=decimals,
        price=optional_decimals,
        reference_price=optional_decimals,
        strategy_id=st.none() | texts,
    ),
    OrderAccepted: st.builds(OrderAccepted, ts_ns=ts, client_order_id=ids, venue_order_id=ids),
    OrderRejected: st.builds(OrderRejected, ts_ns=ts, client_order_id=ids, reason=texts),
    OrderCancelRequested: st.builds(OrderCancelRequested, ts_ns=ts, client_order_id=ids),
    OrderCancelRejected: st.builds(
        OrderCancelRejected, ts_ns=ts, client_order_id=ids, reason=texts
    ),
    OrderCancelled: st.builds(OrderCancelled, ts_ns=ts, client_order_id=ids, reason=texts),
    OrderExpired: st.builds(OrderExpired, ts_ns=ts, client_order_id=ids, reason=texts),
    OrderFilled: st.builds(
        OrderFilled,
        ts_ns=ts,
        client_order_id=ids,
        trade_id=ids,
        qty=decimals,
        price=decimals,
        fee=decimals,
        fee_asset=texts,
        liquidity=st.sampled_from(LiquiditySide),
        symbol=texts,
        side=st.sampled_from(OrderSide),
    ),
    OrderDenied: st.builds(
        OrderDenied,
        ts_ns=ts,
        client_order_id=ids,
        symbol=texts,
        side=st.sampled_from(OrderSide),
        qty=decimals,
        price=optional_decimals,
        reason=st.sampled_from(DenialReason),
        message=texts,
    ),
    TradingModeChanged: st.builds(
        TradingModeChanged,
        ts_ns=ts,
        mode=st.sampled_from(TradingMode),
        reason=texts,
        actor=texts,
    ),
    BalanceSet: st.builds(BalanceSet, ts_ns=ts, asset=texts, total=decimals),
    StrategyChanged: st.builds(
        StrategyChanged,
        ts_ns=ts,
        strategy_id=texts,
        state=st.sampled_from(StrategyState),
        name=texts,
        symbol=texts,
        params=st.dictionaries(texts, st.one_of(st.integers(-(2**60), 2**60), texts), max_size=4),
        reason=texts,
        actor=texts,
    ),
}
any_event = st.one_of(*EVENT_STRATEGIES.values())


def test_every_journal_event_has_an_entry_type_and_a_strategy_here():
    assert set(ENTRY_TYPE_OF) == set(get_args(JournalEvent)) == set(EVENT_STRATEGIES)


@settings(max_examples=500, deadline=None)
@given(event=any_event)
def test_every_event_round_trips_exactly(event):
    entry_type, payload = encode_event(event)
    assert entry_type is ENTRY_TYPE_OF[type(event)]
    decoded = decode_event(entry_type, payload)
    assert type(decoded) is type(event)
    assert decoded == event
    assert repr(decoded) == repr(event)  # same digits and exponent, not only equal values


@pytest.mark.parametrize("value", ["0.10", "1E+5", "-0", "0E-8", "123456789.123456789012345"])
def test_decimals_keep_their_exact_form(value):
    event = BalanceSet(ts_ns=1, asset="USDT", total=D(value))
    decoded = decode_event(EntryType.BalanceSet, encode_event(event)[1])
    assert isinstance(decoded, BalanceSet)
    assert decoded.total.as_tuple() == D(value).as_tuple()


@settings(max_examples=200, deadline=None)
@given(event=EVENT_STRATEGIES[OrderFilled])
def test_decimals_are_strings_in_the_msgpack_payload(event):
    raw = msgspec.msgpack.decode(encode_event(event)[1])
    assert raw["type"] == "OrderFilled"
    for name in ("qty", "price", "fee"):
        assert isinstance(raw[name], str)
        assert D(raw[name]).as_tuple() == getattr(event, name).as_tuple()


def test_decimals_are_strings_in_an_order_submitted_payload():
    event = OrderSubmitted(
        ts_ns=1,
        client_order_id="c-1",
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=D("0.010"),
        price=D("50000.5"),
    )
    raw = msgspec.msgpack.decode(encode_event(event)[1])
    assert raw["qty"] == "0.010" and raw["price"] == "50000.5"
    assert raw["reference_price"] is None


SAMPLES: list[Event] = [
    OrderAccepted(ts_ns=1, client_order_id="c", venue_order_id="v"),
    OrderRejected(ts_ns=1, client_order_id="c", reason="r"),
    OrderCancelRequested(ts_ns=1, client_order_id="c"),
    OrderFilled(
        ts_ns=1,
        client_order_id="c",
        trade_id="t",
        qty=D(1),
        price=D(2),
        fee=D(0),
        fee_asset="USDT",
        liquidity=LiquiditySide.MAKER,
        symbol="BTCUSDT",
        side=OrderSide.SELL,
    ),
    OrderCancelled(ts_ns=1, client_order_id="c"),
    BalanceSet(ts_ns=1, asset="USDT", total=D(5)),
    TradingModeChanged(ts_ns=1, mode=TradingMode.READONLY, reason="ops"),
]
WRONG_TYPES = [
    (event, entry_type)
    for event in SAMPLES
    for entry_type in EntryType
    if entry_type is not ENTRY_TYPE_OF[type(event)]
]


@pytest.mark.parametrize(("event", "entry_type"), WRONG_TYPES)
def test_a_payload_under_the_wrong_entry_type_is_refused(event, entry_type):
    _, payload = encode_event(event)
    with pytest.raises(PayloadError, match=type(event).__name__):
        decode_event(entry_type, payload)


def test_a_payload_under_an_unknown_entry_type_is_refused():
    _, payload = encode_event(SAMPLES[0])
    with pytest.raises(PayloadError):
        decode_event(200, payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"garbage",
        b"\xc1",  # never used in MessagePack
        msgspec.msgpack.encode({"type": "OrderExploded", "ts_ns": 1}),
        msgspec.msgpack.encode({"type": "OrderAccepted", "ts_ns": 1}),  # fields missing
        msgspec.msgpack.encode({"type": "BalanceSet", "ts_ns": 1, "asset": "X", "total": "x"}),
        msgspec.msgpack.encode({"type": "BalanceSet", "ts_ns": 1, "asset": "X", "total": 5.5}),
        msgspec.msgpack.encode([1, 2, 3]),
        msgspec.msgpack.encode("OrderAccepted"),
        encode_event(SAMPLES[0])[1] + b"\x00",  # trailing bytes
        encode_event(SAMPLES[0])[1][:-3],  # truncated
    ],
)
def test_garbage_is_a_payload_error(payload):
    with pytest.raises(PayloadError):
        decode_event(EntryType.OrderUpdate, payload)


@settings(max_examples=500, deadline=None)
@given(payload=st.binary(max_size=200), entry_type=st.sampled_from(EntryType))
def test_arbitrary_bytes_decode_or_raise_payload_error(payload, entry_type):
    try:
        event = decode_event(entry_type, payload)
    except PayloadError:
        return
    assert ENTRY_TYPE_OF[type(event)] == entry_type


# -- JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.10", b"0.10"),
        ("50000", b"50000"),
        ("50000.00", b"50000.00"),
        ("-1.5", b"-1.5"),
        ("0.00000001", b"0.00000001"),  # plain notation, never 1E-8
        ("1E+2", b"100"),
        ("123456789012345678901234567890.123", b"123456789012345678901234567890.123"),
    ],
)
def test_encode_json_writes_decimals_as_plain_numbers_with_exact_digits(value, text):
    assert encode_json({"qty": D(value)}) == b'{"qty":' + text + b"}"


@settings(max_examples=500, deadline=None)
@given(value=decimals)
def test_json_decimals_parse_back_to_the_same_digits(value):
    encoded = encode_json({"v": value, "nested": [value]})
    parsed = json.loads(encoded, parse_float=Decimal, parse_int=Decimal)
    assert parsed["v"].as_tuple() == value.as_tuple()
    assert parsed["nested"][0].as_tuple() == value.as_tuple()


def test_encode_json_of_an_event_uses_wire_names_and_numbers():
    event = SAMPLES[3]
    document = json.loads(encode_json(event), parse_float=Decimal, parse_int=Decimal)
    assert document["type"] == "OrderFilled"
    assert document["qty"] == 1 and document["price"] == 2
    assert document["liquidity"] == "MAKER" and document["side"] == "SELL"


def test_to_builtins_keeps_decimals_as_decimals():
    plain = to_builtins(SAMPLES[3])
    assert plain["qty"] == D(1) and isinstance(plain["qty"], Decimal)
    assert plain["side"] == "SELL"
