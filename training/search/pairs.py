"""Every pair of rows above a similarity threshold, exactly: near-duplicate search."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from training import compute
from training.search.blocks import blocks_by_cost, run_blocks
from training.search.kernels import pair_dots
from training.search.rows import SearchRows
from training.search.sharded import visit_shards


def pairs_above(
    matrix: sp.csr_matrix | sp.csr_array,
    threshold: float,
    n_jobs: int = 2,
    progress: bool = False,
    budget: int = 1 << 24,
    shards: int = 1,
) -> NDArray[np.int32]:
    """Every pair (i, j), i < j, of L2-normalised rows with dot product >= threshold; (P, 2).

    Exact, by prefix filtering (Bayardo et al. 2007): with terms in one global order, most
    frequent first, each row drops its longest leading run of terms whose norm stays below the
    threshold. Two rows that reach the threshold must share a term that neither dropped, so
    the kept "prefixes" times themselves give every candidate pair, each then verified exactly.
    For near-duplicates (0.9) a row keeps only a few rare terms: the product is tiny. With
    `shards` > 1 the rows are cut into shards each kept by one worker (as in
    training/search/sharded.py); the pairs are the same, being exact.
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
    if shards > 1:
        del transposed
        found += _sharded_pairs(prefix, x, threshold, blocks, shards, n_jobs, progress)
    else:
        whole = PairShard(0, transposed, x)
        done = run_blocks(partial(pairs_block, threshold=threshold), (prefix, whole), n, blocks,
                          n_jobs, "duplicates", progress)  # fmt: skip
        found += [pairs for _, _, pairs in done]
    pairs = np.concatenate(found)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def pairs_block(
    prefix: sp.csr_matrix,
    whole: PairShard,
    start: int,
    stop: int,
    threshold: float,
) -> NDArray[np.int32]:
    """The pairs (i, j), start <= i < stop, i < j, at or above threshold (a task: it runs on a
    thread or a dask worker): the rows against one shard holding every row."""
    return shard_pairs_block(whole, 0, stop - start, start, prefix[start:stop], whole.x[start:stop],
                             threshold)  # fmt: skip


@dataclass
class PairShard:
    """Rows start.. of the search: their prefixes by term, and their rows to verify pairs."""

    start: int
    transposed: sp.csr_matrix
    x: sp.csr_matrix


def pair_shard(prefix: sp.csr_matrix, x: sp.csr_matrix, start: int) -> PairShard:
    """A shard (a task: it runs where the shard is kept)."""
    return PairShard(start, prefix.T.tocsr(), x)


def _sharded_pairs(
    prefix: sp.csr_matrix,
    x: sp.csr_matrix,
    threshold: float,
    blocks: list[tuple[int, int]],
    shards: int,
    n_jobs: int,
    progress: bool,
) -> list[NDArray[np.int32]]:
    """pairs_above's blocks against every shard, each kept by one worker."""
    n = x.shape[0]
    cuts = np.linspace(0, n, min(shards, n) + 1).astype(np.int64).tolist()
    with compute.pool("threads", n_jobs) as pool:
        handles = [pool.place(pair_shard, (prefix[a:b], x[a:b], a), where=s)
                   for s, (a, b) in enumerate(itertools.pairwise(cuts))]  # fmt: skip

        def tasks() -> Any:
            for start, stop in blocks:
                block = (prefix[start:stop], x[start:stop], threshold)
                for s, handle in enumerate(handles):
                    yield handle, s, stop - start, start, *block

        total = n * len(handles)
        return [p for _, p in visit_shards(pool, shard_pairs_block, tasks(), total,
                                           "duplicates", progress)]  # fmt: skip


def shard_pairs_block(
    shard: PairShard,
    place: int,
    size: int,
    start: int,
    prefix: sp.csr_matrix,
    x: sp.csr_matrix,
    threshold: float,
) -> NDArray[np.int32]:
    """The pairs (i, j), i in the block of rows start.. (`prefix`, `x`), j in the shard, i < j,
    at or above threshold."""
    shared = sp.coo_matrix(prefix @ shard.transposed)
    left, right = shared.row.astype(np.int64), shared.col.astype(np.int64)
    upper = left + start < right + shard.start
    left, right = left[upper], right[upper]
    sims = pair_dots(shard.x, left, right, x)
    hit = sims >= threshold
    return np.stack([left[hit] + start, right[hit] + shard.start], axis=1).astype(np.int32)
