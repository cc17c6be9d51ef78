"""Compiled inner loops of the pruned neighbour search (numba, released GIL).

The two hot loops of training/neighbours.py at a million articles were sparse products built
from scipy pieces: a block of queries times the pruned index (then each row's best candidates by
padding and argpartition), and exact dot products of (query, candidate) pairs from gathered and
merged rows. Both allocated large temporaries per block and took most of the 21 minutes the two
searches spent in the 1M-article run. Here each is one pass over the postings or the candidate
rows with a dense accumulator that is reset after each query (touched entries only), so the work
is the multiply-adds themselves. nogil=True lets training/neighbour_kernels.run_blocks keep both
cores busy on threads that share the rows.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp
from numba import njit
from numpy.typing import NDArray

_scratch = threading.local()


def _buffer(name: str, size: int, dtype: type) -> NDArray:
    """A zeroed per-thread array of at least `size` items, reused across calls: the kernels
    leave it zeroed, so no call pays to allocate and clear a vocabulary- or corpus-sized array."""
    held = getattr(_scratch, name, None)
    if held is None or len(held) < size or held.dtype != dtype:
        held = np.zeros(size, dtype=dtype)
        setattr(_scratch, name, held)
    return held


@njit(nogil=True, cache=True)
def _pair_dots(  # type: ignore[no-untyped-def]
    q_indptr, q_indices, q_data, indptr, indices, data, left, right, dense_row
):  # fmt: skip
    out = np.empty(len(right), dtype=np.float32)
    current = -1
    for p in range(len(right)):
        q = left[p]
        if q != current:  # pairs come grouped by query: scatter each query row once
            if current >= 0:
                for j in range(q_indptr[current], q_indptr[current + 1]):
                    dense_row[q_indices[j]] = 0.0
            for j in range(q_indptr[q], q_indptr[q + 1]):
                dense_row[q_indices[j]] = q_data[j]
            current = q
        r = right[p]
        total = 0.0
        for j in range(indptr[r], indptr[r + 1]):
            total += data[j] * dense_row[indices[j]]
        out[p] = total
    if current >= 0:
        for j in range(q_indptr[current], q_indptr[current + 1]):
            dense_row[q_indices[j]] = 0.0
    return out


def pair_dots(
    x: sp.csr_matrix,
    left: NDArray[np.int64],
    right: NDArray[np.int64],
    queries: sp.csr_matrix | None = None,
) -> NDArray[np.float32]:
    """Dot products of rows queries[left[p]] (x's own rows by default) and x[right[p]] for each
    pair p (float64 sums).

    Fastest with pairs grouped by left row: each left row is scattered once per group."""
    q = x if queries is None else queries
    dense_row = _buffer("dense_row", max(x.shape[1], q.shape[1]), np.float32)
    return _pair_dots(q.indptr, q.indices, q.data, x.indptr, x.indices, x.data,
                      left.astype(np.int64, copy=False), right.astype(np.int64, copy=False),
                      dense_row)  # fmt: skip


@njit(nogil=True, cache=True)
def _smallest(values, m):  # type: ignore[no-untyped-def]
    """Positions of the m smallest values (ties: earlier positions), in order of position."""
    if len(values) <= m:
        return np.arange(len(values))
    if m <= 0:
        return np.arange(0)
    cut = np.partition(values, m - 1)[m - 1]
    ties = m - np.sum(values < cut)
    out = np.empty(m, dtype=np.int64)
    filled = 0
    for j in range(len(values)):
        if values[j] < cut or (values[j] == cut and ties > 0):
            ties -= values[j] == cut
            out[filled] = j
            filled += 1
    return out[:filled]  # fewer than m only if values hold NaN


@njit(nogil=True, cache=True)
def _index_candidates(  # type: ignore[no-untyped-def]
    indptr, indices, data, start, stop, own, query_terms, idx_indptr, idx_indices, idx_data,
    n_cols, want, acc, seen, touched,
):  # fmt: skip
    out = np.full((stop - start, want), -1, dtype=np.int64)
    for q in range(start, stop):
        count = 0
        lo = indptr[q]
        for t in lo + _smallest(-data[lo : indptr[q + 1]], query_terms):  # heaviest terms
            weight = data[t]
            term = indices[t]
            for p in range(idx_indptr[term], idx_indptr[term + 1]):
                row = idx_indices[p]
                if not seen[row]:
                    seen[row] = True
                    touched[count] = row
                    count += 1
                acc[row] += weight * idx_data[p]
        me = q + own  # the query's own column of the index, if it has one
        if 0 <= me < n_cols:
            acc[me] = 0.0  # never the article itself
        # The `want` largest nonzero scores (ties: first touched), in the order touched; this
        # pass over the touched rows reads their scores and leaves the scratch zeroed.
        scores = np.empty(count, dtype=np.float32)
        nonzero = 0
        for i in range(count):
            row = touched[i]
            if acc[row] != 0.0:
                scores[nonzero] = -acc[row]
                touched[nonzero] = row
                nonzero += 1
            acc[row] = 0.0
            seen[row] = False
        best = _smallest(scores[:nonzero], want)
        out[q - start, : len(best)] = touched[best]
    return out


def index_candidates(
    x: sp.csr_matrix,
    index: sp.csr_matrix,
    query_terms: int,
    want: int,
    start: int,
    stop: int,
    own: int = 0,
) -> NDArray[np.int64]:
    """Rows start..stop's best `want` other rows (-1 pad) by the dot product of each row's
    `query_terms` heaviest terms with the index (term x article postings), in storage order.
    Row q of x is the index's column q + own (itself, never a candidate); x and the index are
    the same articles by default, and a block of queries against a shard's index otherwise."""
    n = index.shape[1]
    acc = _buffer("acc", n, np.float32)
    seen = _buffer("seen", n, np.bool_)
    touched = _buffer("touched", n, np.int64)
    return _index_candidates(x.indptr, x.indices, x.data, start, stop, own, query_terms,
                             index.indptr, index.indices, index.data, n, want, acc, seen,
                             touched)  # fmt: skip
