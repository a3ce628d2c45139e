"""A mapping that keeps only its most recently used entries: what lets an episode's
bookkeeping stay the same size at step 100,000 as at step 1,000."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Up to `size` entries; reading or writing one makes it the most recent, and a write past
    the size forgets the least recent."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a Recent mapping keeps at least one entry")
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
