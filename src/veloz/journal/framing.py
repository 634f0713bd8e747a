"""Record framing: a fixed little-endian header, then a payload.

    magic u32 | length u32 | crc u32 | type u8 | flags u8 | reserved u16 | seq u64 | ts_ns i64

The CRC32 covers everything after the crc field (type .. ts_ns) and the payload. `scan`
turns any byte string into records plus damage reports and never raises: that is what
lets recovery look at a damaged file without crashing.
"""

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

MAGIC = 0x5A4C4556  # b"VELZ" read as a little-endian u32
MAGIC_BYTES = struct.pack("<I", MAGIC)
HEADER = struct.Struct("<IIIBBHQq")
HEADER_SIZE = HEADER.size  # 32
_CRC_START = 12  # the crc covers header bytes from here on, then the payload
_TAIL = struct.Struct("<BBHQq")
MAX_PAYLOAD = 256 * 1024 * 1024  # a length beyond this is garbage, not a record


class EntryType(IntEnum):
    """Journal entry types. The first six are the names the operators' runbooks use."""

    OrderNew = 1  # an order was taken: OrderSubmitted
    OrderUpdate = 2  # venue answer or cancel request: accepted/rejected/cancel requested/...
    OrderFill = 3  # an execution: OrderFilled
    OrderCancel = 4  # the order is cancelled: OrderCancelled
    Checkpoint = 5  # the full engine state; replay starts at the newest valid one
    Rotation = 6  # first entry of every new segment, names the segment before it
    OrderDenied = 7  # refused before entering the book (risk, mode); kept for audit/counts
    ModeChange = 8  # trading mode set (READONLY survives a restart through this)
    BalanceSet = 9  # an asset balance set from the venue (start balances, corrections)
    StrategyChange = 10  # a strategy added, started, paused, stopped or removed


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    entry_type: int
    seq: int
    ts_ns: int
    payload: bytes

    @property
    def size(self) -> int:
        return HEADER_SIZE + len(self.payload)


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes in the middle of a file that are not a valid record; a valid one follows."""

    offset: int
    length: int
    reason: str


@dataclass(frozen=True, slots=True)
class Tail:
    """Bytes at the end that do not form a valid record and are followed by none."""

    offset: int
    length: int
    reason: str


def encode_record(entry_type: int, seq: int, ts_ns: int, payload: bytes) -> bytes:
    tail = _TAIL.pack(entry_type, 0, 0, seq, ts_ns)
    crc = zlib.crc32(payload, zlib.crc32(tail))
    return HEADER.pack(MAGIC, len(payload), crc, entry_type, 0, 0, seq, ts_ns) + payload


def _parse_at(data: bytes, offset: int) -> Record | str:
    """The record at `offset`, or the reason there is none."""
    end = len(data)
    if end - offset < HEADER_SIZE:
        return "short header"
    magic, length, crc, entry_type, _flags, _reserved, seq, ts_ns = HEADER.unpack_from(data, offset)
    if magic != MAGIC:
        return "bad magic"
    if length > MAX_PAYLOAD:
        return "implausible length"
    start = offset + HEADER_SIZE
    if end - start < length:
        return "short payload"
    view = memoryview(data)
    actual = zlib.crc32(view[start : start + length], zlib.crc32(view[offset + _CRC_START : start]))
    if actual != crc:
        return "bad crc"
    return Record(offset, entry_type, seq, ts_ns, bytes(view[start : start + length]))


def _resync(data: bytes, offset: int) -> int | None:
    """The offset of the next valid record after `offset`, if any."""
    position = data.find(MAGIC_BYTES, offset + 1)
    while position != -1:
        if isinstance(_parse_at(data, position), Record):
            return position
        position = data.find(MAGIC_BYTES, position + 1)
    return None


def scan(data: bytes, start: int = 0) -> Iterator[Record | Damage | Tail]:
    """Yield every record in `data` from `start`, a Damage for each invalid stretch that a
    valid record follows, and at most one Tail for invalid bytes at the very end."""
    offset = start
    end = len(data)
    while offset < end:
        parsed = _parse_at(data, offset)
        if isinstance(parsed, Record):
            yield parsed
            offset += parsed.size
            continue
        next_valid = _resync(data, offset)
        if next_valid is None:
            yield Tail(offset, end - offset, parsed)
            return
        yield Damage(offset, next_valid - offset, parsed)
        offset = next_valid
