"""The market feed a gateway takes from its engine: the bus messages that are not
journaled (quotes, trades, bars, risk alerts), which the Redis stream does not carry.

On the wire (`GET /api/internal/feed`), each message is one frame: a u32 little-endian
length, then the MessagePack of `[kind, message]`. A gateway decodes the frames back
into the engine's own message types and publishes them on its bus, so its streams send
them exactly as the engine's do.
"""

import struct
from typing import Any

import msgspec

from veloz.engine.bus import BusMessage
from veloz.model.market import Bar, QuoteTick, TradeTick
from veloz.risk.monitor import RiskAlert

FeedMessage = QuoteTick | TradeTick | Bar | RiskAlert
MEDIA_TYPE = "application/vnd.veloz.feed"
_KINDS: dict[str, type[Any]] = {
    "quote": QuoteTick,
    "trade": TradeTick,
    "bar": Bar,
    "risk": RiskAlert,
}
_KIND_OF = {kind: name for name, kind in _KINDS.items()}
_HEADER = struct.Struct("<I")
_encoder = msgspec.msgpack.Encoder()
_frame = msgspec.msgpack.Decoder(tuple[str, msgspec.Raw])
_decoders = {name: msgspec.msgpack.Decoder(kind) for name, kind in _KINDS.items()}


class FeedError(ValueError):
    """A frame that is not a feed message: the feed is cut and taken again."""


def feed_frame(message: BusMessage) -> bytes | None:
    """The frame for `message`, or None for a message the feed does not carry."""
    kind = _KIND_OF.get(type(message))
    if kind is None:
        return None
    payload = _encoder.encode((kind, message))
    return _HEADER.pack(len(payload)) + payload


class FeedReader:
    """Frames from a byte stream cut anywhere: `push(chunk)` answers the whole messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def push(self, chunk: bytes) -> list[FeedMessage]:
        self._buffer += chunk
        messages: list[FeedMessage] = []
        at = 0
        view = memoryview(self._buffer)
        try:
            while at + _HEADER.size <= len(view):
                (length,) = _HEADER.unpack_from(view, at)
                end = at + _HEADER.size + length
                if end > len(view):
                    break
                messages.append(_decode(bytes(view[at + _HEADER.size : end])))
                at = end
        finally:
            view.release()
        del self._buffer[:at]
        return messages


def _decode(payload: bytes) -> FeedMessage:
    try:
        kind, raw = _frame.decode(payload)
        decoder = _decoders.get(kind)
        if decoder is None:
            raise FeedError(f"unknown feed message kind {kind!r}")
        message: FeedMessage = decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise FeedError(f"undecodable feed frame: {exc}") from None
    return message
