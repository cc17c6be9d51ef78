"""A writer's compact copy of a version's dense article vectors, read from the vectors blob
without ever holding a float32 copy of a whole part, so one replica places upserts into a
million-article corpus in about 2 GB (benchmarks/RESULTS.md).

- Dense rows (LSA, embeddings) are int8 with one float32 scale per row: a quarter of float32,
  and a dot product of unit rows is off by about 4e-4, under 2e-3 (tests/test_compact.py).
- The blob is read member by member from a file, a block of rows at a time.
The TF-IDF postings are in recommender/live/postings.py, the embedding sketch index in
recommender/live/sketch.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from recommender.live.arrayfiles import ArrayStore

BLOCK_ROWS = 65_536
"""Rows read, converted or scanned at a time: bounds the temporary float32 copies."""
DOT_ROWS = 512
"""Rows converted to float32 at a time for dot products (a chunk of 384-d rows: 768 kB)."""


@dataclass(frozen=True)
class Int8Rows:
    """Rows stored as int8 codes times a per-row float32 scale."""

    codes: NDArray[np.int8]
    scales: NDArray[np.float32]

    @classmethod
    def of(
        cls, blocks: Iterator[NDArray[np.float32]], rows: int, dims: int,
        store: ArrayStore | None = None, name: str = "rows",
    ) -> Int8Rows:  # fmt: skip
        """Quantise float rows arriving in blocks (symmetric: the largest |x| maps to 127),
        into the store's arrays `name`.codes and `name`.scales (memory without one)."""
        store = store or ArrayStore()
        codes = store.empty(f"{name}.codes", (rows, dims), np.int8)
        scales = store.empty(f"{name}.scales", (rows,), np.float32)
        start = 0
        for block in blocks:
            top = np.abs(block).max(axis=1) if block.size else np.zeros(len(block), np.float32)
            scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
            codes[start : start + len(block)] = np.rint(block / scale[:, None])
            scales[start : start + len(block)] = scale
            start += len(block)
        return cls(codes, scales)

    @classmethod
    def stored(cls, arrays: Mapping[str, NDArray[Any]], name: str) -> Int8Rows:
        """The rows `of` put in a store under `name`."""
        return cls(arrays[f"{name}.codes"], arrays[f"{name}.scales"])

    @classmethod
    def from_array(cls, rows: NDArray[np.float32]) -> Int8Rows:
        """Quantise rows already in memory."""
        return cls.of(iter([np.asarray(rows, dtype=np.float32)]), *rows.shape)

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, rows: NDArray[np.intp]) -> NDArray[np.float32]:
        """Those rows as float32."""
        return self.codes[rows].astype(np.float32) * self.scales[rows, None]

    def dots(self, rows: NDArray[np.intp], vector: NDArray[np.float32]) -> NDArray[np.float32]:
        """Dot products of those rows with a float vector, DOT_ROWS at a time: the float32
        copy of a chunk stays in cache (three times faster than converting all at once)."""
        out = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), DOT_ROWS):
            chunk = rows[start : start + DOT_ROWS]
            out[start : start + DOT_ROWS] = self.codes[chunk].astype(np.float32) @ vector
        return out * self.scales[rows]

    def blocks(self) -> Iterator[NDArray[np.float32]]:
        """Every row as float32, a block at a time."""
        for start in range(0, len(self), BLOCK_ROWS):
            yield self.take(np.arange(start, min(start + BLOCK_ROWS, len(self))))


class Blob:
    """The vectors .npz (recommender/store/vectors.write_vectors) read one member at a time."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.archive = zipfile.ZipFile(handle)
        self.names = {n[: -len(".npy")] for n in self.archive.namelist()}

    def array(self, name: str) -> NDArray[Any]:
        """A whole (small) member."""
        with self.archive.open(name + ".npy") as member:
            return np.lib.format.read_array(member, allow_pickle=False)

    def blocks(self, name: str, rows: int = BLOCK_ROWS) -> Iterator[NDArray[Any]]:
        """A member's rows, `rows` at a time (the first axis), as float32 for float data."""
        with self.archive.open(name + ".npy") as member:
            shape, fortran, dtype = _header(member)
            if fortran or dtype.hasobject:
                raise ValueError(f"vectors blob member {name!r} is not a plain C array")
            width = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            for start in range(0, shape[0] if shape else 1, rows):
                count = min(rows, shape[0] - start)
                raw = member.read(count * width * dtype.itemsize)
                yield np.frombuffer(raw, dtype=dtype).reshape((count, *shape[1:]))

    def int8_rows(self, name: str, store: ArrayStore | None = None) -> Int8Rows:
        """A float member quantised block by block (into the store, under its own name)."""
        with self.archive.open(name + ".npy") as member:
            shape = _header(member)[0]
        blocks = (b.astype(np.float32) for b in self.blocks(name))
        return Int8Rows.of(blocks, int(shape[0]), int(shape[1]), store, name)


def _header(member: IO[bytes]) -> tuple[Any, bool, np.dtype[Any]]:
    """Shape, Fortran order and dtype of an .npy member, read past its header."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    return np.lib.format.read_array_header_2_0(member)


def settle_heap() -> None:
    """After loading what a server keeps for good: collect once, then move every object alive
    to the collector's permanent generation (gc.freeze), and hand free pages back. A full
    collection of a loaded writer took 43-55 ms (63,000 objects, a million-article version)
    and came every few hundred upserts, a tenth of them slower for it; frozen objects are
    never scanned again. Called again after each load (unfreezing first, so what the last
    load kept and has since dropped is collected)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    release_free_memory()


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc): loading frees hundreds of MB of
    temporaries that would otherwise stay in the process's RSS. A no-op without glibc."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim(0)
