"""A small bounded in-process cache."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LRU:
    """A small bounded cache; safe for versioned keys because they never change."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any:
        """The cached value or None."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        """Cache a value, evicting the least recently used beyond capacity."""
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)
