"""Every pair of rows above a similarity threshold, exactly: near-duplicate search."""

from __future__ import annotations

from functools import partial

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from training.search.blocks import blocks_by_cost, run_blocks
from training.search.kernels import pair_dots
from training.search.rows import SearchRows


def pairs_above(
    matrix: sp.csr_matrix | sp.csr_array,
    threshold: float,
    n_jobs: int = 2,
    progress: bool = False,
    budget: int = 1 << 24,
) -> NDArray[np.int32]:
    """Every pair (i, j), i < j, of L2-normalised rows with dot product >= threshold; (P, 2).

    Exact, by prefix filtering (Bayardo et al. 2007): with terms in one global order, most
    frequent first, each row drops its longest leading run of terms whose norm stays below the
    threshold. Two rows that reach the threshold must share a term that neither dropped, so
    the kept "prefixes" times themselves give every candidate pair, each then verified exactly.
    For near-duplicates (0.9) a row keeps only a few rare terms: the product is tiny.
    """
    x = SearchRows.of(matrix, None, 0.0, None).x
    n = x.shape[0]
    df = np.bincount(x.indices, minlength=x.shape[1])
    rank = np.empty(len(df), dtype=np.int64)
    rank[np.argsort(-df, kind="stable")] = np.arange(len(df))
    kept = np.zeros(x.nnz, dtype=bool)
    lens = np.zeros(n, dtype=np.int64)
    for start in range(0, n, 8192):  # chunks bound the sort's memory
        stop = min(start + 8192, n)
        lo, hi = x.indptr[start], x.indptr[stop]
        rows = np.repeat(np.arange(start, stop), np.diff(x.indptr[start : stop + 1]))
        order = np.lexsort((rank[x.indices[lo:hi]], rows))  # per row, most frequent term first
        ends = np.cumsum(x.data[lo:hi][order].astype(np.float64) ** 2)
        row_start = np.searchsorted(rows, rows)  # rows is sorted, and so is rows[order]
        within = ends - np.concatenate([[0.0], ends])[row_start]
        # Dropped: the leading run whose squared norm stays below threshold^2 (float slack
        # makes the bound conservative: a borderline term is kept, never lost).
        keep = within >= threshold**2 - 1e-6
        kept[lo + order[keep]] = True
        lens[start:stop] = np.bincount(rows[keep] - start, minlength=stop - start)
    prefix = sp.csr_matrix(
        (x.data[kept], x.indices[kept], np.concatenate([[0], np.cumsum(lens)])), shape=x.shape
    )
    transposed = prefix.T.tocsr()
    # Rows per product bounded by its multiply-adds (= most entries it can hold), so memory stays
    # bounded however many pairs share a term at a low threshold.
    ones = sp.csr_matrix((np.ones(prefix.nnz), prefix.indices, prefix.indptr), shape=x.shape)
    cost = (ones @ np.diff(transposed.indptr).astype(np.float64)).astype(np.int64)
    found: list[NDArray[np.int32]] = [np.zeros((0, 2), dtype=np.int32)]
    blocks = blocks_by_cost(cost, budget, 4096)
    done = run_blocks(partial(pairs_block, threshold=threshold), (prefix, transposed, x), n,
                      blocks, n_jobs, "duplicates", progress)  # fmt: skip
    found += [pairs for _, _, pairs in done]
    pairs = np.concatenate(found)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def pairs_block(
    prefix: sp.csr_matrix,
    transposed: sp.csr_matrix,
    x: sp.csr_matrix,
    start: int,
    stop: int,
    threshold: float,
) -> NDArray[np.int32]:
    """The pairs (i, j), start <= i < stop, i < j, at or above threshold (a task: it runs on a
    thread or a dask worker)."""
    shared = sp.coo_matrix(prefix[start:stop] @ transposed)
    left, right = shared.row.astype(np.int64) + start, shared.col.astype(np.int64)
    upper = left < right
    left, right = left[upper], right[upper]
    sims = pair_dots(x, left, right)
    hit = sims >= threshold
    return np.stack([left[hit], right[hit]], axis=1).astype(np.int32)
