"""A version's article ids held compactly by a writer: one UTF-8 buffer with offsets, and a
sorted table of 64-bit hashes for lookups. A Python list and dict of a million ids took about
150 MB of a writer's memory; this takes about 30 MB (benchmarks/RESULTS.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from recommender.live.arrayfiles import ArrayStore


def stable_hash(text: str) -> int:
    """A stable 64-bit hash of an id or a title (Python's own is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class PositionalIds(Sequence[str]):
    """Ids by position: a subclass says how to find the n-th (0 <= n < len)."""

    def _at(self, n: int) -> str:
        raise NotImplementedError

    @overload
    def __getitem__(self, n: int) -> str: ...
    @overload
    def __getitem__(self, n: slice) -> list[str]: ...
    def __getitem__(self, n: int | slice) -> str | list[str]:
        if isinstance(n, slice):
            return [self._at(i) for i in range(*n.indices(len(self)))]
        if not -len(self) <= n < len(self):
            raise IndexError(n)
        return self._at(n % len(self))


class IdTable(PositionalIds):
    """Article ids by position, and positions by id."""

    def __init__(
        self, buffer: NDArray[np.uint8], offsets: NDArray[np.int64], order: NDArray[np.int32],
        hashes: NDArray[np.uint64],
    ) -> None:  # fmt: skip
        self.buffer, self.offsets, self.order, self.hashes = buffer, offsets, order, hashes

    @classmethod
    def of(cls, ids: Iterable[str], store: ArrayStore | None = None) -> IdTable:
        """The table of these ids (arrays "ids.*" of the store, memory without one)."""
        store = store or ArrayStore()
        encoded = [i.encode() for i in ids]
        buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
        hashes = np.fromiter((stable_hash(e.decode()) for e in encoded), dtype=np.uint64,
                             count=len(encoded))  # fmt: skip
        order = np.argsort(hashes, kind="stable").astype(np.int32)
        parts: dict[str, NDArray[Any]] = {
            "buffer": buffer,
            "offsets": offsets,
            "order": order,
            "hashes": hashes[order],
        }
        return cls.stored({f"ids.{k}": store.put(f"ids.{k}", v) for k, v in parts.items()})

    @classmethod
    def stored(cls, arrays: Mapping[str, NDArray[Any]]) -> IdTable:
        """The table `of` put in a store."""
        return cls(arrays["ids.buffer"], arrays["ids.offsets"], arrays["ids.order"],
                   arrays["ids.hashes"])  # fmt: skip

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes + self.offsets.nbytes + self.order.nbytes + self.hashes.nbytes

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _at(self, n: int) -> str:
        return self.buffer[self.offsets[n] : self.offsets[n + 1]].tobytes().decode()

    def position(self, article_id: str) -> int | None:
        """Where the id is, or None."""
        digest = np.uint64(stable_hash(article_id))
        at = int(np.searchsorted(self.hashes, digest))
        while at < len(self.hashes) and self.hashes[at] == digest:
            if self[int(self.order[at])] == article_id:
                return int(self.order[at])
            at += 1
        return None

    def __contains__(self, article_id: object) -> bool:
        return isinstance(article_id, str) and self.position(article_id) is not None
