"""Record framing: round trips, and arbitrary bytes never escape as an exception."""

import struct

from hypothesis import assume, given
from hypothesis import strategies as st

from veloz.journal.framing import (
    HEADER_SIZE,
    MAGIC_BYTES,
    Damage,
    EntryType,
    Record,
    Tail,
    encode_record,
    scan,
)


def _records(n: int) -> bytes:
    return b"".join(
        encode_record(EntryType.OrderNew, seq, 1_000 + seq, f"payload-{seq}".encode())
        for seq in range(1, n + 1)
    )


def test_round_trip_keeps_every_field():
    data = encode_record(EntryType.OrderFill, 42, -5, b"\x00\x01abc")
    (record,) = list(scan(data))
    assert record == Record(0, EntryType.OrderFill, 42, -5, b"\x00\x01abc")
    assert len(data) == HEADER_SIZE + 5


def test_header_layout_is_little_endian_as_documented():
    data = encode_record(EntryType.Rotation, 7, 9, b"xy")
    _magic, length, _crc, entry_type, flags, reserved, seq, ts = struct.unpack_from(
        "<IIIBBHQq", data
    )
    assert (length, entry_type, flags, reserved, seq, ts) == (2, 6, 0, 0, 7, 9)
    assert data[:4] == MAGIC_BYTES == b"VELZ"


def test_bit_flip_in_the_middle_is_damage_and_scanning_resumes():
    data = bytearray(_records(5))
    one = len(encode_record(EntryType.OrderNew, 1, 1001, b"payload-1"))
    data[one * 2 + HEADER_SIZE + 2] ^= 0x40  # payload byte of record 3
    items = list(scan(bytes(data)))
    records = [i for i in items if isinstance(i, Record)]
    damage = [i for i in items if isinstance(i, Damage)]
    assert [r.seq for r in records] == [1, 2, 4, 5]
    assert len(damage) == 1 and damage[0].reason == "bad crc"
    assert damage[0].offset == one * 2 and damage[0].length == one


def test_truncated_last_record_is_a_tail_not_damage():
    data = _records(3)
    items = list(scan(data[:-4]))
    assert [i.seq for i in items if isinstance(i, Record)] == [1, 2]
    assert isinstance(items[-1], Tail) and items[-1].reason == "short payload"


def test_garbage_between_records_is_skipped_as_damage():
    good = _records(2)
    items = list(scan(good[: len(good) // 2] + b"garbage!" * 3 + good[len(good) // 2 :]))
    assert any(isinstance(i, Damage) for i in items)


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_decode_or_are_reported(blob: bytes):
    covered = 0
    for item in scan(blob):
        assert isinstance(item, Record | Damage | Tail)
        assert item.offset == covered
        covered += item.size if isinstance(item, Record) else item.length
    assert covered == len(blob)


@given(st.lists(st.binary(max_size=64), max_size=8), st.binary(max_size=64), st.integers(0, 600))
def test_valid_records_survive_leading_garbage(payloads, garbage, cut):
    assume(MAGIC_BYTES not in garbage)
    frames = [encode_record(1, i + 1, i, p) for i, p in enumerate(payloads)]
    blob = garbage + b"".join(frames)
    assert [i.payload for i in scan(blob) if isinstance(i, Record)] == payloads
    for item in scan(blob[:cut]):
        assert isinstance(item, Record | Damage | Tail)
