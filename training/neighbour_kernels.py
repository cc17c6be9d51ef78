"""Building blocks of training/neighbours.py: row-wise top-m selection, the pruned index, the
inverted file on the dense part, and blocks of rows on threads (the compiled inner loops are in
training/search_kernels.py).

All of them work a bounded chunk at a time (PAD_BUDGET cells), so memory stays flat however many
rows there are; none holds the GIL in a Python loop per row.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from numpy.typing import NDArray
from tqdm import tqdm

PAD_BUDGET = 1 << 23
"""Cells of one chunk's padded or dense temporary arrays (32 MB of float32)."""


def keep_top_per_row(matrix: sp.csr_matrix, m: int) -> sp.csr_matrix:
    """The matrix with only each row's m largest entries (rows stay in storage order)."""
    lens = np.diff(matrix.indptr)
    long_rows = np.flatnonzero(lens > m)
    if len(long_rows) == 0:
        return matrix
    # Rows sorted by length, then padded a chunk at a time to (rows x longest) for argpartition:
    # similar lengths keep the padding small whether rows are articles or long posting lists.
    long_rows = long_rows[np.argsort(lens[long_rows], kind="stable")]
    keep = np.ones(matrix.nnz, dtype=bool)
    start = 0
    while start < len(long_rows):
        widths = lens[long_rows[start:]]
        cells = np.arange(1, len(widths) + 1) * widths
        stop = start + max(1, int(np.searchsorted(cells, PAD_BUDGET, side="right")))
        rows = long_rows[start:stop]
        row_lens = lens[rows]
        first = matrix.indptr[rows]
        local = np.repeat(np.arange(len(rows)), row_lens)
        pos = np.arange(int(row_lens.sum())) - np.repeat(np.cumsum(row_lens) - row_lens, row_lens)
        source = np.repeat(first, row_lens) + pos
        padded = np.full((len(rows), int(row_lens.max())), -np.inf, dtype=np.float32)
        padded[local, pos] = matrix.data[source]
        best = np.argpartition(-padded, m - 1, axis=1)[:, :m]
        keep[source] = False
        keep[(first[:, None] + best).ravel()] = True
        start = stop
    kept = np.minimum(lens, m)
    indptr = np.concatenate([[0], np.cumsum(kept)]).astype(matrix.indptr.dtype)
    return sp.csr_matrix(
        (matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape, copy=False
    )


def build_index(
    x: sp.csr_matrix, doc_terms: int, postings: int, allowed: NDArray[np.bool_] | None = None
) -> sp.csr_matrix:
    """Term x article postings: each article's heaviest terms, each term's heaviest articles."""
    docs = keep_top_per_row(x, doc_terms)
    if allowed is not None:
        docs = sp.csr_matrix(sp.diags(allowed.astype(np.float32)) @ docs)
        docs.eliminate_zeros()
    return keep_top_per_row(docs.T.tocsr(), postings)


def top_k_sorted(
    cand: NDArray[np.int64], scores: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each row's k best (candidate, score) pairs, best first, ties by lower index; -1/0 pad
    for missing or non-positive scores."""
    rows = cand.shape[0]
    if cand.shape[1] < k:
        pad = k - cand.shape[1]
        cand = np.hstack([cand, np.full((rows, pad), -1, dtype=cand.dtype)])
        scores = np.hstack([scores, np.full((rows, pad), -np.inf, dtype=np.float32)])
    scores = np.where(cand >= 0, scores, -np.inf)
    if cand.shape[1] > k:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        cand, scores = np.take_along_axis(cand, part, 1), np.take_along_axis(scores, part, 1)
    order = np.lexsort((cand, -scores), axis=1)
    cand, scores = np.take_along_axis(cand, order, 1), np.take_along_axis(scores, order, 1)
    valid = scores > 0
    return np.where(valid, cand, -1), np.where(valid, scores, 0.0).astype(np.float32)


def fresh(current: NDArray[np.int64], offered: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Mask of offered entries (>= 0) that are neither in the row's current list nor repeated."""
    both = np.hstack([current, offered])
    order = np.argsort(both, axis=1, kind="stable")  # stable: current entries come first
    ranked = np.take_along_axis(both, order, 1)
    first = np.ones(both.shape, dtype=bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    unique = np.empty_like(first)
    np.put_along_axis(unique, order, first, 1)
    return unique[:, current.shape[1] :] & (offered >= 0)


def spherical_kmeans(
    rows: NDArray[np.float32], clusters: int, rounds: int = 8, seed: int = 0
) -> NDArray[np.float32]:
    """Unit-norm centres of `clusters` groups of unit-norm rows (Lloyd's rounds on cosine)."""
    rng = np.random.default_rng(seed)
    centres = rows[rng.choice(len(rows), clusters, replace=False)]
    for _ in range(rounds):
        label = np.argmax(rows @ centres.T, axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, label, rows)
        empty = ~sums.any(axis=1)  # an empty cluster restarts on a random row
        sums[empty] = rows[rng.choice(len(rows), int(empty.sum()))]
        centres = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return centres.astype(np.float32)


def cluster_candidates(
    dense: NDArray[np.float32],
    allowed: NDArray[np.bool_] | None,
    want: int,
    probes: int,
    block: int,
    n_jobs: int,
    progress: bool,
) -> NDArray[np.int32]:
    """Each row's best `want` other rows by dense dot product alone, from an inverted file:
    rows grouped by their nearest k-means centre; the rows of a group score (one matrix product)
    the members of the `probes` groups whose centres are nearest to theirs."""
    n = len(dense)
    clusters = int(np.clip(np.sqrt(n), 1, 2048))
    fit_rows = np.random.default_rng(0).choice(n, min(n, 64 * clusters), replace=False)
    centres = spherical_kmeans(dense[np.sort(fit_rows)], clusters)
    label = np.concatenate(
        [np.argmax(dense[a : a + 65536] @ centres.T, axis=1) for a in range(0, n, 65536)]
    )
    order = np.argsort(label, kind="stable")
    bounds = np.searchsorted(label[order], np.arange(clusters + 1))
    near = np.argsort(-(centres @ centres.T), axis=1)[:, :probes]
    out = np.full((n, want), -1, dtype=np.int32)

    def work(start: int, stop: int) -> None:
        for cell in np.unique(label[order[start:stop]]):
            queries = order[bounds[cell] : bounds[cell + 1]]
            pool = np.concatenate([order[bounds[c] : bounds[c + 1]] for c in near[cell]])
            if allowed is not None:
                pool = pool[allowed[pool]]
            if len(pool) == 0:
                continue
            step = max(1, PAD_BUDGET // len(pool))  # bounds the score block's memory
            for a in range(0, len(queries), step):
                rows = queries[a : a + step]
                sims = dense[rows] @ dense[pool].T
                sims[rows[:, None] == pool[None, :]] = -np.inf  # never the article itself
                take = min(want, len(pool))
                best = np.argpartition(-sims, take - 1, axis=1)[:, :take]
                ok = np.isfinite(np.take_along_axis(sims, best, 1))
                out[rows, :take] = np.where(ok, pool[best], -1)

    # Blocks of whole clusters, about `block` queries each.
    cuts = np.unique(np.searchsorted(bounds, np.arange(0, n, block), side="right") - 1)
    edges = [*bounds[cuts].tolist(), n]
    blocks = [(a, b) for a, b in itertools.pairwise(edges) if b > a]
    run_blocks(work, n, blocks, n_jobs, "neighbours (dense part)", progress)
    return out


def blocks_by_cost(cost: NDArray[np.int64], budget: int, most: int) -> list[tuple[int, int]]:
    """Consecutive row ranges of at most `most` rows whose summed cost stays within budget."""
    ends = np.cumsum(cost)
    blocks, start = [], 0
    while start < len(cost):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + budget, side="right"))
        stop = min(max(stop, start + 1), start + most, len(cost))
        blocks.append((start, stop))
        start = stop
    return blocks


def run_blocks(
    work: Callable[[int, int], None],
    n: int,
    step: int | list[tuple[int, int]],
    n_jobs: int,
    desc: str,
    progress: bool,
) -> None:
    """Run work(start, stop) over row blocks on threads, with a progress bar (rows, ETA)."""
    blocks = step if isinstance(step, list) else [(s, min(s + step, n)) for s in range(0, n, step)]

    def run(start: int, stop: int) -> int:
        work(start, stop)
        return stop - start

    with tqdm(total=n, desc=desc, unit="art", disable=not progress, smoothing=0.05) as bar:
        jobs = (delayed(run)(a, b) for a, b in blocks)
        for done in Parallel(n_jobs, backend="threading", return_as="generator_unordered")(jobs):
            bar.update(done)
