"""What the items of an in-memory buffer cost, estimated: the deep size (`sys.getsizeof`
over an object's fields) of an item now and then, so that a buffer bounded in bytes
(`VELOZ_MEMORY_POOL_SIZE`) can say how much it holds and how many items fit.

Deep sizing an order takes tens of microseconds, far too long for every append on the
order path, so `ItemSize` measures the first item and every `every`-th after it and keeps
a running average: items of one buffer are alike (an order event, an order, a fill)."""

import sys
from collections.abc import Mapping
from enum import Enum
from typing import Any

import msgspec

_SCALARS = (str, bytes, int, float, bool, type(None))


def deep_size(obj: Any) -> int:
    """Bytes held by `obj` and what it alone refers to (shared singletons such as enum
    members and None are not counted)."""
    return _deep_size(obj, set())


def _deep_size(obj: Any, seen: set[int]) -> int:
    if isinstance(obj, Enum) or obj is None or isinstance(obj, bool) or id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, _SCALARS):
        return size
    if isinstance(obj, msgspec.Struct):
        return size + sum(_deep_size(getattr(obj, f), seen) for f in obj.__struct_fields__)
    if isinstance(obj, Mapping):
        return size + sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    if isinstance(obj, list | tuple | set | frozenset):
        return size + sum(_deep_size(item, seen) for item in obj)
    return size  # Decimal and other leaves


class ItemSize:
    """A running estimate of one item's bytes in a buffer."""

    __slots__ = ("_every", "_seen", "bytes")

    def __init__(self, every: int = 256) -> None:
        self._every = every
        self._seen = 0
        self.bytes = 0  # 0 until the first item is measured

    def observe(self, item: Any) -> bool:
        """Count `item`, measuring it if it is due; True when the estimate changed."""
        due = self._seen % self._every == 0
        self._seen += 1
        if not due:
            return False
        size = deep_size(item)
        before = self.bytes
        self.bytes = size if before == 0 else (before * 3 + size) // 4
        return self.bytes != before
