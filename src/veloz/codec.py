"""The one place that encodes and decodes: JSON for the API, streams and stdio (decimals
as JSON numbers in plain notation at the precision of what they measure, see
`veloz.model.numbers`), MessagePack for journal payloads (decimals as
strings), and the mapping between events and journal entry types."""

from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

from veloz.journal.framing import EntryType
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
from veloz.model.numbers import CONTEXT_FIELDS, render, render_flat

ENTRY_TYPE_OF: dict[type[Event], EntryType] = {
    OrderSubmitted: EntryType.OrderNew,
    OrderAccepted: EntryType.OrderUpdate,
    OrderRejected: EntryType.OrderUpdate,
    OrderCancelRequested: EntryType.OrderUpdate,
    OrderCancelRejected: EntryType.OrderUpdate,
    OrderExpired: EntryType.OrderUpdate,
    OrderFilled: EntryType.OrderFill,
    OrderCancelled: EntryType.OrderCancel,
    OrderDenied: EntryType.OrderDenied,
    TradingModeChanged: EntryType.ModeChange,
    BalanceSet: EntryType.BalanceSet,
    StrategyChanged: EntryType.StrategyChange,
}

JournalEvent = (
    OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderCancelRequested
    | OrderCancelRejected
    | OrderExpired
    | OrderFilled
    | OrderCancelled
    | OrderDenied
    | TradingModeChanged
    | BalanceSet
    | StrategyChanged
)

_T = TypeVar("_T")

_msgpack_encoder = msgspec.msgpack.Encoder()
_event_decoder = msgspec.msgpack.Decoder(JournalEvent)
_json_encoder = msgspec.json.Encoder(decimal_format="number")


class PayloadError(ValueError):
    """A journal payload that does not decode to what its entry type promises."""


def encode_event(event: Event) -> tuple[EntryType, bytes]:
    return ENTRY_TYPE_OF[type(event)], _msgpack_encoder.encode(event)


def decode_event(entry_type: int, payload: bytes) -> Event:
    try:
        event: Event = _event_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"undecodable {entry_type} payload: {exc}") from None
    if ENTRY_TYPE_OF[type(event)] != entry_type:
        raise PayloadError(f"{type(event).__name__} stored under entry type {entry_type}")
    return event


def encode_msgpack(value: Any) -> bytes:
    return _msgpack_encoder.encode(value)


def decode_msgpack(payload: bytes, kind: type[_T]) -> _T:
    return msgspec.msgpack.decode(payload, type=kind)


def encode_json(value: Any) -> bytes:
    """`value` as JSON, its decimals rendered by the one rule (`numbers.render`)."""
    kind = type(value)
    plan = _FLAT[kind] if kind in _FLAT else _flat_plan(kind)
    if plan is not None:
        return _json_encoder.encode(render_flat(value, *plan))
    return _json_encoder.encode(render(to_builtins(value)))


_SCALARS = (
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.FloatType,
    msgspec.inspect.BoolType,
    msgspec.inspect.NoneType,
    msgspec.inspect.EnumType,
    msgspec.inspect.LiteralType,
    msgspec.inspect.DecimalType,
)


# (attribute, JSON name) pairs: a flat Struct's decimal fields, then the fields the
# precision rules read beside them (`numbers.CONTEXT_FIELDS`).
_FlatPlan = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
_FLAT: dict[type, _FlatPlan | None] = {}


def _flat_plan(kind: type) -> _FlatPlan | None:
    """For a Struct type whose fields are all scalars, what rendering it reads; None for
    anything else (rendered through `to_builtins`). Worked out once per type."""
    _FLAT[kind] = None
    if not issubclass(kind, msgspec.Struct):
        return None
    info = msgspec.inspect.type_info(kind)
    if not isinstance(info, msgspec.inspect.StructType) or info.array_like:
        return None
    decimals, context = [], []
    for field in info.fields:
        options = (
            field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        )
        if not all(isinstance(option, _SCALARS) for option in options):
            return None
        if any(isinstance(option, msgspec.inspect.DecimalType) for option in options):
            decimals.append((field.name, field.encode_name))
        if field.encode_name in CONTEXT_FIELDS:
            context.append((field.name, field.encode_name))
    if decimals and kind.__struct_config__.omit_defaults:
        return None  # a rendered default would no longer be left out
    _FLAT[kind] = plan = (tuple(decimals), tuple(context))
    return plan


def to_builtins(value: Any) -> Any:
    """Plain dicts/lists with decimals kept as Decimal (for building JSON documents)."""
    return msgspec.to_builtins(value, builtin_types=(Decimal,))
