"""A writer's compact copy of a version's article vectors, so one replica places upserts into a
million-article corpus in under 2 GB and well under 100 ms (benchmarks/RESULTS.md).

- Dense rows (LSA, embeddings) are int8 with one float32 scale per row: a quarter of float32,
  and a dot product of unit rows is off by about 4e-4, under 2e-3 (tests/test_compact.py).
- TF-IDF postings (terms x articles) keep, per term, only its POSTINGS_PER_TERM heaviest
  weights, in float16: a common term's long tail of small weights moves no article into a
  top list, and scanning it was most of an upsert's time.
- A low-dimensional sketch of the raw embeddings (their SKETCH_DIMS principal directions)
  finds the articles close by meaning but not by words; exact scores are computed for the
  candidates only (recommender/live/vectors.py).
The blob is read member by member from a file, a block of rows at a time, so loading never
holds a float32 copy of a whole dense part.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

POSTINGS_PER_TERM = 2000
"""Heaviest postings kept per term (about: a term keeps a whole weight bucket of ~19%)."""
SKETCH_DIMS = 32
"""Dimensions of the embedding sketch used to find candidates by meaning."""
BLOCK_ROWS = 65_536
"""Rows read, converted or scanned at a time: bounds the temporary float32 copies."""
BUCKETS_PER_OCTAVE = 4
BUCKETS = 64


@dataclass(frozen=True)
class Int8Rows:
    """Rows stored as int8 codes times a per-row float32 scale."""

    codes: NDArray[np.int8]
    scales: NDArray[np.float32]

    @classmethod
    def of(cls, blocks: Iterator[NDArray[np.float32]], rows: int, dims: int) -> Int8Rows:
        """Quantise float rows arriving in blocks (symmetric: the largest |x| maps to 127)."""
        codes = np.empty((rows, dims), dtype=np.int8)
        scales = np.empty(rows, dtype=np.float32)
        start = 0
        for block in blocks:
            top = np.abs(block).max(axis=1) if block.size else np.zeros(len(block), np.float32)
            scale = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
            codes[start : start + len(block)] = np.rint(block / scale[:, None])
            scales[start : start + len(block)] = scale
            start += len(block)
        return cls(codes, scales)

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
        """Dot products of those rows with a float vector."""
        return np.asarray((self.codes[rows].astype(np.float32) @ vector) * self.scales[rows],
                          dtype=np.float32)  # fmt: skip

    def blocks(self) -> Iterator[NDArray[np.float32]]:
        """Every row as float32, a block at a time."""
        for start in range(0, len(self), BLOCK_ROWS):
            yield self.take(np.arange(start, min(start + BLOCK_ROWS, len(self))))


@dataclass(frozen=True)
class Sketch:
    """Rows projected on their principal directions: a full scan costs SKETCH_DIMS per row."""

    basis: NDArray[np.float32]
    """dims x SKETCH_DIMS."""
    rows: NDArray[np.float32]

    @classmethod
    def of(cls, rows: Int8Rows, sample: int = 20_000) -> Sketch:
        """Principal directions from an even sample of rows, then every row projected."""
        step = max(1, len(rows) // sample)
        picked = rows.take(np.arange(0, len(rows), step))
        dims = min(SKETCH_DIMS, *picked.shape) if len(picked) else 0
        _, _, vt = np.linalg.svd(picked, full_matrices=False)
        basis = np.ascontiguousarray(vt[:dims].T, dtype=np.float32)
        projected = np.empty((len(rows), dims), dtype=np.float32)
        for n, block in enumerate(rows.blocks()):
            projected[n * BLOCK_ROWS : n * BLOCK_ROWS + len(block)] = block @ basis
        return cls(basis, projected)

    def nearest(self, vector: NDArray[np.float32], count: int) -> NDArray[np.intp]:
        """The `count` rows with the largest approximate dot product with the vector."""
        approx = self.rows @ (vector @ self.basis)
        count = min(count, len(approx))
        return np.argpartition(-approx, count - 1)[:count] if count else np.zeros(0, np.intp)


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

    def int8_rows(self, name: str) -> Int8Rows:
        """A float member quantised block by block."""
        with self.archive.open(name + ".npy") as member:
            shape = _header(member)[0]
        blocks = (b.astype(np.float32) for b in self.blocks(name))
        return Int8Rows.of(blocks, int(shape[0]), int(shape[1]))


@dataclass(frozen=True)
class Postings:
    """Terms x articles, compressed by term (indptr, article indices, float16 weights)."""

    indptr: NDArray[np.int64]
    indices: NDArray[np.int32]
    weights: NDArray[np.float16]
    articles: int

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.indices.nbytes + self.weights.nbytes)

    def scores(self, terms: NDArray[np.int32], weights: NDArray[np.float32]) -> NDArray[np.float32]:
        """Dot product of a sparse row (terms, weights) with every article: only the postings
        of its own terms are read."""
        starts, ends = self.indptr[terms], self.indptr[terms + 1]
        lengths = ends - starts
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        where = offsets + np.arange(int(lengths.sum()))
        products = self.weights[where].astype(np.float32) * np.repeat(weights, lengths)
        return np.bincount(self.indices[where], products, self.articles).astype(np.float32)


def _header(member: IO[bytes]) -> tuple[Any, bool, np.dtype[Any]]:
    """Shape, Fortran order and dtype of an .npy member, read past its header."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    return np.lib.format.read_array_header_2_0(member)


def pruned_postings(blob: Blob, per_term: int = POSTINGS_PER_TERM) -> Postings:
    """The blob's TF-IDF rows as terms x articles postings, float16, each term keeping about
    its `per_term` heaviest weights: three streaming passes, never the whole matrix twice."""
    articles, terms = (int(x) for x in blob.array("shape"))
    indptr = blob.array("indptr")
    df = np.zeros(terms, dtype=np.int64)
    for indices in blob.blocks("indices", 1 << 22):
        df += np.bincount(indices, minlength=terms)
    floor = _weight_floors(blob, df, per_term)
    kept_terms, kept_articles, kept_weights = [], [], []
    start = 0
    for indices, data in zip(blob.blocks("indices", 1 << 22), blob.blocks("data", 1 << 22),
                             strict=True):  # fmt: skip
        keep = np.flatnonzero(data >= floor[indices])
        kept_terms.append(indices[keep])
        row = np.searchsorted(indptr, start + keep, side="right") - 1
        kept_articles.append(row.astype(np.int32))
        kept_weights.append(data[keep].astype(np.float16))
        start += len(data)
    weights = np.concatenate(kept_weights)
    # Grouped by term with scipy's counting sort; the data rides along as a permutation, as
    # scipy.sparse has no float16.
    order = sp.csr_matrix(
        (np.arange(1, len(weights) + 1, dtype=np.int32),
         (np.concatenate(kept_terms), np.concatenate(kept_articles))),
        shape=(terms, articles),
    )  # fmt: skip
    return Postings(order.indptr.astype(np.int64), order.indices.astype(np.int32, copy=False),
                    weights[order.data - 1], articles)  # fmt: skip


def _weight_floors(blob: Blob, df: NDArray[np.int64], per_term: int) -> NDArray[np.float32]:
    """Per term, the smallest weight kept: 0 for terms with at most `per_term` postings; for
    longer ones, the edge of the log-scale bucket that brings the count to `per_term`."""
    floor = np.zeros(len(df), dtype=np.float32)
    long_terms = np.flatnonzero(df > per_term)
    if not len(long_terms):
        return floor
    slot = np.full(len(df), -1, dtype=np.int64)
    slot[long_terms] = np.arange(len(long_terms))
    counts = np.zeros(len(long_terms) * BUCKETS, dtype=np.int64)
    for indices, data in zip(blob.blocks("indices", 1 << 22), blob.blocks("data", 1 << 22),
                             strict=True):  # fmt: skip
        where = slot[indices]
        inside = where >= 0
        counts += np.bincount(where[inside] * BUCKETS + _bucket(data[inside]),
                              minlength=len(counts))  # fmt: skip
    cumulative = np.cumsum(counts.reshape(len(long_terms), BUCKETS), axis=1)
    last = np.minimum((cumulative < per_term).sum(axis=1), BUCKETS - 1)
    edge = 2.0 ** (-(last + 1) / BUCKETS_PER_OCTAVE)
    floor[long_terms] = np.where(last < BUCKETS - 1, edge, 0.0)  # the last bucket: keep all
    return floor


def _bucket(weights: NDArray[np.float32]) -> NDArray[np.int64]:
    """Log-scale bucket of weights in (0, 1]: 0 holds the heaviest."""
    safe = np.maximum(weights.astype(np.float64), 1e-30)
    return np.clip(np.floor(-np.log2(safe) * BUCKETS_PER_OCTAVE), 0, BUCKETS - 1).astype(np.int64)


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc): loading frees hundreds of MB of
    temporaries that would otherwise stay in the process's RSS. A no-op without glibc."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim(0)
