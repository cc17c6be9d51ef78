"""The pruned search over corpus shards (PrunedParams.shards > 1): memory per worker falls as
workers are added.

The rows are cut into `shards` contiguous runs. Each run is sent once to one worker (shard s to
worker s mod W on a dask cluster, training/compute.py; this process locally), which builds the
run's own pruned index and dense groups and keeps them; a worker never holds another shard's
rows. Each block of queries then visits every shard, and this process keeps the best:
  1. dense candidates: each shard offers its best `dense_candidates` by the dense part alone
     (queries grouped by their nearest group of that shard); the best across shards are kept;
  2. first pass: each shard scores exactly its best 2 x candidates / shards matches (at most
     `candidates`) from its own index, plus the dense candidates it holds; the best `width`
     across shards are kept;
  3. expansion: the neighbours' neighbours, each scored by the shard that holds it.
With one shard this is training/search/pruned.py, result for result (tests/test_sharded.py); with
more, each shard's index keeps `postings` articles a term and offers twice its share of the
candidates (OFFER_FACTOR), so the exact scoring per query grows by a constant factor, not with the
shards, and the lists are at least as good (benchmarks/RESULTS.md).
What is sent: each shard's rows once; each block of queries once per shard and pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from tqdm import tqdm

from training import compute
from training.memory import trim_heap
from training.search.blocks import empty_lists, fresh, row_ranges, top_k_rows
from training.search.dense import (
    Cells,
    best_by_dot,
    cells_of,
    nearest_centres,
    whole_cell_blocks,
)
from training.search.index import build_index
from training.search.kernels import index_candidates
from training.search.pruned import PrunedParams
from training.search.rows import SearchRows

Indices = NDArray[np.int32]
Scores = NDArray[np.float32]

OFFER_FACTOR = 2
"""A shard offers OFFER_FACTOR x candidates / shards of its best index matches (all of them
when there are fewer shards): twice its share, as the global best do not fall evenly. On 6,000
generated articles (candidates 50, block 128) recall@10 against exact search was 0.847
unsharded; 2 shards 0.833 at 1x their share, 0.865 at 1.5x, 0.876 at 2x; 3 shards 0.815,
0.857, 0.880."""


@dataclass
class Shard:
    """A contiguous run of rows with its own pruned index and dense groups (kept by a worker)."""

    start: int
    rows: SearchRows
    index: sp.csr_matrix
    cells: Cells | None

    def local(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Global row ids as this shard's rows; -1 for ids elsewhere (and for -1)."""
        inside = (ids >= self.start) & (ids < self.start + self.rows.n)
        return np.where(inside, ids - self.start, -1)

    def global_ids(self, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.where(rows >= 0, rows + self.start, -1)


def build_shard(
    x: sp.csr_matrix,
    dense: NDArray[np.float32] | None,
    allowed: NDArray[np.bool_] | None,
    scales: tuple[float, float],
    start: int,
    params: PrunedParams,
) -> Shard:
    """A shard of rows start.. (a task: it runs where the shard is kept); dense groups only
    when dense candidates are wanted."""
    rows = SearchRows(x, dense, scales, allowed)
    index = build_index(x, params.doc_terms, params.postings, allowed)
    grouped = dense is not None and params.dense_candidates > 0
    cells = cells_of(dense, params.probes) if dense is not None and grouped else None
    trim_heap()
    return Shard(start, rows, index, cells)


def sharded_search(
    data: SearchRows, k: int, params: PrunedParams, n_jobs: int = 2, progress: bool = False
) -> tuple[Indices, Scores]:
    """Top-k per row over `params.shards` shards (see module doc)."""
    n, width = data.n, max(k, params.expand)
    indices, scores = empty_lists(n, width)
    if n < 2 or k == 0:
        return indices[:, :k], scores[:, :k]
    use_dense = data.dense is not None and params.dense_candidates > 0
    params = params.resolved(use_dense)
    cuts = np.linspace(0, n, min(params.shards, n) + 1).astype(np.int64)
    with compute.pool("threads", n_jobs) as pool:
        shards = [
            pool.place(build_shard, _shard_args(data, a, b, params), where=s)
            for s, (a, b) in enumerate(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True))
        ]
        dense = _dense_pass(pool, shards, data, params, progress) if use_dense else None
        for start, stop, (top, top_scores) in _first_pass(pool, shards, data, dense, params,
                                                           width, progress):  # fmt: skip
            indices[start:stop], scores[start:stop] = top, top_scores
        del dense
        if params.expand > 0:
            seeds = indices[:, : params.expand].astype(np.int64)
            for start, stop, (top, top_scores) in _expand_pass(pool, shards, data, seeds,
                                                               indices, scores, width, params,
                                                               progress):  # fmt: skip
                indices[start:stop], scores[start:stop] = top, top_scores
    return indices[:, :k], scores[:, :k]


def _shard_args(data: SearchRows, a: int, b: int, params: PrunedParams) -> tuple[Any, ...]:
    dense = None if data.dense is None else data.dense[a:b]
    allowed = None if data.allowed is None else data.allowed[a:b]
    return data.x[a:b], dense, allowed, data.scales, a, params


def _queries(data: SearchRows, start: int, stop: int) -> SearchRows:
    """Rows start:stop as a block of queries that travels to every shard."""
    dense = None if data.dense is None else data.dense[start:stop]
    return SearchRows(data.x[start:stop], dense, data.scales, None)


def visit_shards(
    pool: compute.Pool,
    fn: Any,
    tasks: Iterable[tuple[Any, ...]],
    total: int,
    desc: str,
    progress: bool,
) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """fn(shard, place, *rest) for each task (shard handle, its place, *rest), run where the
    shard is kept, as they finish, with a progress bar of query rows x shards."""
    with tqdm(total=total, desc=desc, unit="art", disable=not progress, smoothing=0.05) as bar:
        for task, result in pool.map(fn, (), tasks, ordered=False, ahead=4,
                                     where=lambda task: int(task[1])):  # fmt: skip
            bar.update(int(task[2]))
            yield task, result


def collect_blocks(
    done: Iterator[tuple[tuple[Any, ...], Any]], count: int
) -> Iterator[tuple[int, int, list[Any]]]:
    """(start, stop, every shard's result) per block of rows, once all `count` shards answered."""
    waiting: dict[int, list[Any]] = {}
    for task, result in done:
        start = int(task[3])
        waiting.setdefault(start, []).append(result)
        if len(waiting[start]) == count:
            yield start, start + int(task[2]), waiting.pop(start)


def _centres(shard: Shard, place: int) -> NDArray[np.float32]:
    assert shard.cells is not None
    return shard.cells.centres


def _dense_pass(
    pool: compute.Pool, shards: list[Any], data: SearchRows, params: PrunedParams, progress: bool
) -> NDArray[np.int32]:
    """Each row's best `dense_candidates` rows by the dense part alone, across shards."""
    assert data.dense is not None
    n, want = data.n, params.dense_candidates
    best = np.full((n, want), -1, dtype=np.int32)
    best_scores = np.full((n, want), -np.inf, dtype=np.float32)
    asked = [(handle, s) for s, handle in enumerate(shards)]
    centres = [c for _, c in pool.map(_centres, (), asked, where=lambda t: int(t[1]))]

    def tasks() -> Iterator[tuple[Any, ...]]:
        for s, handle in enumerate(shards):
            label = nearest_centres(data.dense, centres[s])  # type: ignore[arg-type]
            order = np.argsort(label, kind="stable")
            bounds = np.searchsorted(label[order], np.arange(len(centres[s]) + 1))
            for a, b in whole_cell_blocks(bounds, n, params.block):
                rows = order[a:b]
                yield handle, s, b - a, rows, data.dense[rows], label[rows], want  # type: ignore[index]

    total = n * len(shards)
    for task, (found, found_scores) in visit_shards(pool, dense_block, tasks(), total,
                                               "neighbours (dense part)", progress):  # fmt: skip
        rows = task[3]
        ids = np.hstack([best[rows], found.astype(np.int32)])
        sims = np.hstack([best_scores[rows], found_scores])
        keep = np.argpartition(-sims, want - 1, axis=1)[:, :want]
        best[rows] = np.take_along_axis(ids, keep, 1)
        best_scores[rows] = np.take_along_axis(sims, keep, 1)
    return best


def dense_block(
    shard: Shard,
    place: int,
    size: int,
    ids: NDArray[np.int64],
    queries: NDArray[np.float32],
    label: NDArray[np.int64],
    want: int,
) -> tuple[NDArray[np.int64], Scores]:
    """Queries `ids` (sorted by their nearest group of this shard, `label`) and their best
    `want` rows of the shard by dense dot product, as global ids and scores (-1/-inf pad)."""
    assert shard.cells is not None and shard.rows.dense is not None
    out = np.full((len(ids), want), -1, dtype=np.int64)
    out_scores = np.full((len(ids), want), -np.inf, dtype=np.float32)
    cells, firsts, counts = np.unique(label, return_index=True, return_counts=True)
    for cell, first, count in zip(cells, firsts, counts, strict=True):
        pool = shard.cells.members(shard.cells.near[cell])
        if shard.rows.allowed is not None:
            pool = pool[shard.rows.allowed[pool]]
        run = slice(first, first + count)
        out[run], out_scores[run] = best_by_dot(queries[run], ids[run], shard.rows.dense[pool],
                                                pool + shard.start, want)  # fmt: skip
    return out, out_scores


def _first_pass(
    pool: compute.Pool,
    shards: list[Any],
    data: SearchRows,
    dense: NDArray[np.int32] | None,
    params: PrunedParams,
    width: int,
    progress: bool,
) -> Iterator[tuple[int, int, tuple[Indices, Scores]]]:
    """Each block's best `width` over the shards' index and dense candidates."""
    each = math.ceil(params.candidates * min(len(shards), OFFER_FACTOR) / len(shards))

    def tasks() -> Iterator[tuple[Any, ...]]:
        for start, stop in row_ranges(data.n, params.block):
            block = _queries(data, start, stop)
            extra = None if dense is None else dense[start:stop]
            for s, handle in enumerate(shards):
                yield handle, s, stop - start, start, block, extra, params.query_terms, each, width

    done = visit_shards(pool, first_block, tasks(), data.n * len(shards), "neighbours", progress)
    for start, stop, results in collect_blocks(done, len(shards)):
        ids = np.hstack([r[0] for r in results]).astype(np.int64)
        yield start, stop, top_k_rows(ids, np.hstack([r[1] for r in results]), width)


def first_block(
    shard: Shard,
    place: int,
    size: int,
    start: int,
    queries: SearchRows,
    dense: NDArray[np.int32] | None,
    query_terms: int,
    candidates: int,
    width: int,
) -> tuple[Indices, Scores]:
    """Queries start.. against one shard: its index's best `candidates` and the `dense`
    candidates it holds, scored exactly; the best `width` as global ids."""
    own = start - shard.start
    cand = index_candidates(queries.x, shard.index, query_terms, candidates, 0, size, own)
    if dense is not None:
        extra = shard.local(dense.astype(np.int64))
        extra[~fresh(cand, extra)] = -1
        cand = np.hstack([cand, extra])
    top, top_scores = top_k_rows(cand, shard.rows.pair_scores(np.arange(size), cand, queries),
                                 width)  # fmt: skip
    return shard.global_ids(top.astype(np.int64)).astype(np.int32), top_scores


def _expand_pass(
    pool: compute.Pool,
    shards: list[Any],
    data: SearchRows,
    seeds: NDArray[np.int64],
    indices: Indices,
    scores: Scores,
    width: int,
    params: PrunedParams,
    progress: bool,
) -> Iterator[tuple[int, int, tuple[Indices, Scores]]]:
    """Each block's lists with their neighbours' neighbours scored in, by the shards."""
    e = seeds.shape[1]
    offers: dict[int, NDArray[np.int64]] = {}

    def tasks() -> Iterator[tuple[Any, ...]]:
        for start, stop in row_ranges(data.n, params.block):
            rows, near = np.arange(start, stop), seeds[start:stop]
            offered = np.where(np.repeat(near < 0, e, axis=1), -1,
                               seeds[near].reshape(len(rows), -1))  # fmt: skip
            offered[offered == rows[:, None]] = -1
            offered[~fresh(indices[start:stop].astype(np.int64), offered)] = -1
            offers[start] = offered
            block = _queries(data, start, stop)
            for s, handle in enumerate(shards):
                yield handle, s, stop - start, start, block, offered

    done = visit_shards(pool, expand_block, tasks(), data.n * len(shards), "neighbours (expand)",
                   progress)  # fmt: skip
    for start, stop, results in collect_blocks(done, len(shards)):
        offered = offers.pop(start)
        current = indices[start:stop].astype(np.int64)
        known = np.where(current >= 0, scores[start:stop], -np.inf)
        found = np.maximum.reduce(results)  # each offer is scored by one shard, -inf elsewhere
        yield start, stop, top_k_rows(np.hstack([current, offered]), np.hstack([known, found]),
                                      width)  # fmt: skip


def expand_block(
    shard: Shard,
    place: int,
    size: int,
    start: int,
    queries: SearchRows,
    offered: NDArray[np.int64],
) -> Scores:
    """Exact scores of the offered rows this shard holds (-inf for the others)."""
    return shard.rows.pair_scores(np.arange(size), shard.local(offered), queries)
