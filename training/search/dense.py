"""Candidates by the dense part alone: an inverted file on spherical k-means clusters."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import NDArray

from training.search.blocks import PAD_BUDGET, run_blocks


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


@dataclass(frozen=True)
class Cells:
    """An inverted file on the dense rows: k-means centres, each row's nearest centre, the rows
    grouped by it (order, bounds: group c is order[bounds[c]:bounds[c + 1]]), and each group's
    `probes` nearest groups (near, itself first)."""

    centres: NDArray[np.float32]
    label: NDArray[np.int64]
    order: NDArray[np.int64]
    bounds: NDArray[np.int64]
    near: NDArray[np.int64]

    def members(self, cells: NDArray[np.int64]) -> NDArray[np.int64]:
        """The rows of the given groups, group after group."""
        return np.concatenate([self.order[self.bounds[c] : self.bounds[c + 1]] for c in cells])


def nearest_centres(dense: NDArray[np.float32], centres: NDArray[np.float32]) -> NDArray[np.int64]:
    """Each row's nearest centre by dot product (65,536 rows at a time)."""
    n = len(dense)
    parts = [np.argmax(dense[a : a + 65536] @ centres.T, axis=1) for a in range(0, n, 65536)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def cells_of(dense: NDArray[np.float32], probes: int) -> Cells:
    """The inverted file of `dense`: ~sqrt(n) groups, centres fitted on a sample."""
    n = len(dense)
    clusters = int(np.clip(np.sqrt(n), 1, 2048))
    fit_rows = np.random.default_rng(0).choice(n, min(n, 64 * clusters), replace=False)
    centres = spherical_kmeans(dense[np.sort(fit_rows)], clusters)
    label = nearest_centres(dense, centres)
    order = np.argsort(label, kind="stable")
    bounds = np.searchsorted(label[order], np.arange(clusters + 1))
    near = np.argsort(-(centres @ centres.T), axis=1)[:, :probes]
    return Cells(centres, label, order, bounds, near)


def whole_cell_blocks(bounds: NDArray[np.int64], n: int, block: int) -> list[tuple[int, int]]:
    """Runs of whole groups of about `block` rows each, as ranges of positions in the order."""
    cuts = np.unique(np.searchsorted(bounds, np.arange(0, n, block), side="right") - 1)
    edges = [*bounds[cuts].tolist(), n]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


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
    cells = cells_of(dense, probes)
    out = np.full((n, want), -1, dtype=np.int32)

    def groups(start: int, stop: int) -> tuple[NDArray[np.int64]]:
        return (np.unique(cells.label[cells.order[start:stop]]),)

    shared = (dense, allowed, cells.order, cells.bounds, cells.near)
    blocks = whole_cell_blocks(cells.bounds, n, block)
    done = run_blocks(partial(cluster_block, want=want), shared, n, blocks, n_jobs,
                      "neighbours (dense part)", progress, groups)  # fmt: skip
    for _, _, (rows, found) in done:
        out[rows] = found
    return out


def cluster_block(
    dense: NDArray[np.float32],
    allowed: NDArray[np.bool_] | None,
    order: NDArray[np.int64],
    bounds: NDArray[np.int64],
    near: NDArray[np.int64],
    start: int,
    stop: int,
    cells: NDArray[np.int64],
    want: int,
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """The queries of whole clusters `cells` (rows order[start:stop]) and their best `want`
    candidates, -1 padded (a task: it runs on a thread or a dask worker)."""
    queries = order[start:stop]
    out = np.full((len(queries), want), -1, dtype=np.int32)
    for cell in cells:
        members = order[bounds[cell] : bounds[cell + 1]]
        pool = np.concatenate([order[bounds[c] : bounds[c + 1]] for c in near[cell]])
        if allowed is not None:
            pool = pool[allowed[pool]]
        found, _ = best_by_dot(dense[members], members, dense[pool], pool, want)
        at = bounds[cell] - start  # members are a contiguous run of `queries`
        out[at : at + len(members)] = found
    return queries, out


def best_by_dot(
    queries: NDArray[np.float32],
    query_ids: NDArray[np.int64],
    pool: NDArray[np.float32],
    pool_ids: NDArray[np.int64],
    want: int,
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each query's best `want` pool rows by dot product, never itself (same id): their ids and
    scores, -1 and -inf padded; scored PAD_BUDGET cells at a time."""
    out = np.full((len(queries), want), -1, dtype=np.int64)
    out_scores = np.full((len(queries), want), -np.inf, dtype=np.float32)
    if len(pool_ids) == 0:
        return out, out_scores
    take = min(want, len(pool_ids))
    step = max(1, PAD_BUDGET // len(pool_ids))  # bounds the score block's memory
    for a in range(0, len(queries), step):
        sims = queries[a : a + step] @ pool.T
        sims[query_ids[a : a + step, None] == pool_ids[None, :]] = -np.inf
        best = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        got = np.take_along_axis(sims, best, 1)
        out[a : a + step, :take] = np.where(np.isfinite(got), pool_ids[best], -1)
        out_scores[a : a + step, :take] = got
    return out, out_scores
