"""Vectors of the articles upserted since the version was trained: one per article, and all of
them stacked for scoring, kept exact (float32) because there are few of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


@dataclass
class LiveVector:
    """An upserted article's vector: TF-IDF row, raw LSA projection and final LSA row, raw
    embedding (the encoder's) and final embedding (with feedback)."""

    tfidf: sp.csr_matrix
    raw: NDArray[np.float32] | None = None
    lsa: NDArray[np.float32] | None = None
    embedding_raw: NDArray[np.float32] | None = None
    embedding: NDArray[np.float32] | None = None

    def dense(self) -> NDArray[np.float32] | None:
        """The dense parts as one array, for storage (LiveVector.split reads it back)."""
        parts = (self.raw, self.lsa, self.embedding_raw, self.embedding)
        present = [p for p in parts if p is not None]
        return np.concatenate(present).astype(np.float32) if present else None

    @classmethod
    def split(
        cls, row: sp.csr_matrix, dense: NDArray[np.float32] | None, lsa_dims: int, emb_dims: int
    ) -> LiveVector:
        """Inverse of dense(): the raw and final LSA rows, then the raw and final embedding."""
        if dense is None:
            return cls(row)
        cuts = np.cumsum([lsa_dims, lsa_dims, emb_dims, emb_dims])
        raw, lsa, emb_raw, emb = np.split(dense[: cuts[-1]], cuts[:-1])
        return cls(row, *(part if len(part) else None for part in (raw, lsa, emb_raw, emb)))


DENSE_PARTS = ("raw", "lsa", "embedding_raw", "embedding")
"""A live vector's dense parts, in LiveRows' order."""


@dataclass
class LiveRows:
    """The live articles' rows stacked, in one order: ids, TF-IDF (CSR arrays) and each dense
    part, all in buffers with spare capacity (doubling), so appending an upsert copies one
    row, not all of them."""

    ids: list[str]
    width: int
    buffers: dict[str, NDArray[np.float32]]
    data: NDArray[np.float32]
    indices: NDArray[np.int32]
    indptr: NDArray[np.int64]

    @classmethod
    def of(cls, items: list[tuple[str, LiveVector]], width: int, dims: tuple[int, int]) -> LiveRows:
        """Stack every live vector at once (built from arrays, not row by row)."""
        tfidf = [v.tfidf for _, v in items]
        data = np.concatenate([r.data for r in tfidf]) if tfidf else np.zeros(0)
        indices = np.concatenate([r.indices for r in tfidf]) if tfidf else np.zeros(0)
        sizes = dict(zip(DENSE_PARTS, (dims[0], dims[0], dims[1], dims[1]), strict=True))
        buffers = {name: _stack([getattr(v, name) for _, v in items], sizes[name])
                   for name in DENSE_PARTS}  # fmt: skip
        indptr = np.concatenate([[0], np.cumsum([r.nnz for r in tfidf])]).astype(np.int64)
        return cls([aid for aid, _ in items], width, buffers, data.astype(np.float32),
                   indices.astype(np.int32), indptr)  # fmt: skip

    @property
    def rows(self) -> sp.csr_matrix:
        """The TF-IDF rows (views of the buffers)."""
        count, nnz = len(self.ids), int(self.indptr[len(self.ids)])
        return sp.csr_matrix((self.data[:nnz], self.indices[:nnz], self.indptr[: count + 1]),
                             shape=(count, self.width), copy=False)  # fmt: skip

    def tfidf_dots(self, row: sp.csr_matrix) -> NDArray[np.float32]:
        """Dot products of a TF-IDF row with every live row: against the row made dense, one
        pass over the live entries (a sparse x sparse product cost 10 ms at 10,000 of them)."""
        query = np.zeros(self.width, dtype=np.float32)
        query[row.indices] = row.data
        return np.asarray(self.rows @ query, dtype=np.float32)

    def append(self, article_id: str, vector: LiveVector) -> None:
        """One more live article at the end."""
        count = len(self.ids)
        row = vector.tfidf
        nnz = int(self.indptr[count])
        self.data = _room(self.data, nnz + row.nnz)
        self.indices = _room(self.indices, nnz + row.nnz)
        self.indptr = _room(self.indptr, count + 2)
        self.data[nnz : nnz + row.nnz] = row.data
        self.indices[nnz : nnz + row.nnz] = row.indices
        self.indptr[count + 1] = nnz + row.nnz
        for name, buffer in self.buffers.items():
            self.buffers[name] = buffer = _room(buffer, count + 1)
            part = getattr(vector, name)
            buffer[count] = 0.0 if part is None else part
        self.ids.append(article_id)

    def part(self, name: str) -> NDArray[np.float32]:
        """One dense part's rows (a view of its buffer)."""
        return self.buffers[name][: len(self.ids)]

    @property
    def raw(self) -> NDArray[np.float32]:
        return self.part("raw")

    @property
    def lsa(self) -> NDArray[np.float32]:
        return self.part("lsa")

    @property
    def embedding_raw(self) -> NDArray[np.float32]:
        return self.part("embedding_raw")

    @property
    def embedding(self) -> NDArray[np.float32]:
        return self.part("embedding")


def _room(buffer: NDArray[Any], needed: int) -> NDArray[Any]:
    """The buffer, or a copy twice as long (zero-padded) when it holds fewer than `needed`."""
    if needed <= len(buffer):
        return buffer
    grown = np.zeros((max(16, 2 * len(buffer), needed), *buffer.shape[1:]), dtype=buffer.dtype)
    grown[: len(buffer)] = buffer
    return grown


def _stack(parts: list[NDArray[np.float32] | None], dims: int) -> NDArray[np.float32]:
    """Rows stacked into an (n, dims) array, a missing one as zeros."""
    zero = np.zeros(dims, dtype=np.float32)
    if not parts:
        return np.zeros((0, dims), dtype=np.float32)
    return np.stack([zero if p is None else p for p in parts]).astype(np.float32)
