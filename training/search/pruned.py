"""Pruned top-k neighbours: scales to a million articles and beyond.

Only ~150 candidates per article are scored exactly, from three sources:
  1. a pruned index: each article keeps its `doc_terms` heaviest terms, each term the `postings`
     articles where it weighs most (impact-ordered postings), so a query (cut to its
     `query_terms` heaviest terms) reads a bounded number of postings however large the corpus;
     the `candidates` best approximate scores are kept (training/search/index.py and the
     compiled loop of training/search/kernels.py);
  2. the dense part: an inverted file on k-means clusters of the dense rows; a query's cluster
     scores the members of the `probes` nearest clusters, `dense_candidates` best kept
     (training/search/dense.py);
  3. expansion: the top `expand` neighbours of each article's top `expand` neighbours (one round
     of NN-descent), scored after a first pass.
Every candidate is scored with the exact blended similarity and the top k are kept. Work runs
in blocks of rows on threads that share the rows (the compiled loops, scipy's sparse kernels and
numpy release the GIL), or on a dask cluster's workers, each sent the rows and the index once
(training/compute.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from training.memory import trim_heap
from training.search.blocks import empty_lists, fresh, run_blocks, top_k_rows
from training.search.dense import cluster_candidates
from training.search.index import build_index
from training.search.kernels import index_candidates
from training.search.rows import SearchRows

Indices = NDArray[np.int32]
Scores = NDArray[np.float32]


@dataclass(frozen=True)
class PrunedParams:
    """Knobs of the pruned search (chosen in benchmarks/RESULTS.md)."""

    query_terms: int = 100
    """Heaviest terms of a query matched against the index."""
    doc_terms: int = 50
    """Heaviest terms of each article that enter the index."""
    postings: int = 100
    """Articles kept per term in the index, the ones where the term weighs most."""
    candidates: int = 0
    """Best approximate matches from the index scored exactly (0: 50 with a dense part, else 100,
    which makes up for the missing dense candidates)."""
    dense_candidates: int = 50
    """Best matches by the dense part alone scored exactly too (0 = none)."""
    probes: int = 8
    """Clusters of the dense part searched for them: the query's and the nearest others."""
    expand: int = 10
    """Neighbours of the top `expand` neighbours are scored too (0 = no second pass)."""
    block: int = 256
    """Queries per sparse product."""
    shards: int = 1
    """Contiguous runs of rows searched apart, each kept by one worker, the best merged
    (training/search/sharded.py): on a dask cluster of W workers, W shards give each worker
    1/W of the rows. 1 = one index over every row."""

    def __post_init__(self) -> None:
        positive = (self.query_terms, self.doc_terms, self.postings, self.probes, self.block,
                    self.shards)  # fmt: skip
        if min(positive) < 1 or min(self.candidates, self.dense_candidates, self.expand) < 0:
            raise ValueError(f"pruned search knobs out of range: {self}")

    def resolved(self, with_dense: bool) -> PrunedParams:
        """These knobs with `candidates` set where it is 0 (the default: see its docstring)."""
        if self.candidates:
            return self
        return replace(self, candidates=50 if with_dense else 100)


def pruned_search(
    data: SearchRows, k: int, params: PrunedParams, n_jobs: int = 2, progress: bool = False
) -> tuple[Indices, Scores]:
    """Top-k per row by exact similarity among candidates from a pruned index (see module doc)."""
    n, width = data.n, max(k, params.expand)
    indices, scores = empty_lists(n, width)
    if n < 2 or k == 0:
        return indices[:, :k], scores[:, :k]
    dense = None
    if data.dense is not None and params.dense_candidates > 0:
        dense = cluster_candidates(data.dense, data.allowed, params.dense_candidates,
                                   params.probes, params.block, n_jobs, progress)  # fmt: skip
    params = params.resolved(dense is not None)
    index = build_index(data.x, params.doc_terms, params.postings, data.allowed)
    # Its temporaries (GBs at a million rows) partly sit in the heap, which keeps freed pages
    # until trimmed; the search after it would add to them, not reuse them.
    trim_heap()

    def dense_slice(start: int, stop: int) -> tuple[NDArray[np.int32] | None]:
        return (None if dense is None else dense[start:stop],)

    blocks = run_blocks(partial(first_pass, params=params, width=width), (data, index), n,
                        params.block, n_jobs, "neighbours", progress, dense_slice)  # fmt: skip
    for start, stop, (top, top_scores) in blocks:
        indices[start:stop], scores[start:stop] = top, top_scores
    del index
    if params.expand == 0:
        return indices[:, :k], scores[:, :k]
    seeds = indices[:, : params.expand].astype(np.int64)  # a snapshot: blocks rewrite `indices`

    def current(start: int, stop: int) -> tuple[Indices, Scores]:
        return indices[start:stop], scores[start:stop]

    blocks = run_blocks(partial(expand, width=width), (data, seeds), n, params.block, n_jobs,
                        "neighbours (expand)", progress, current)  # fmt: skip
    for start, stop, (top, top_scores) in blocks:
        indices[start:stop], scores[start:stop] = top, top_scores
    return indices[:, :k], scores[:, :k]


def first_pass(
    data: SearchRows,
    index: sp.csr_matrix,
    start: int,
    stop: int,
    dense: NDArray[np.int32] | None,
    params: PrunedParams,
    width: int,
) -> tuple[Indices, Scores]:
    """Rows start:stop's best `width` among their index candidates and `dense` ones (a task:
    it runs on a thread or a dask worker)."""
    rows = np.arange(start, stop)
    cand = index_candidates(data.x, index, params.query_terms, params.candidates, start, stop)
    if dense is not None:
        extra = dense.astype(np.int64)
        extra[~fresh(cand, extra)] = -1
        cand = np.hstack([cand, extra])
    return top_k_rows(cand, data.pair_scores(rows, cand), width)


def expand(
    data: SearchRows,
    seeds: NDArray[np.int64],
    start: int,
    stop: int,
    indices: Indices,
    scores: Scores,
    width: int,
) -> tuple[Indices, Scores]:
    """Rows start:stop's lists (`indices`, `scores`) with their neighbours' neighbours scored
    in (a task: it runs on a thread or a dask worker)."""
    rows, e = np.arange(start, stop), seeds.shape[1]
    near = seeds[start:stop]
    offered = np.where(np.repeat(near < 0, e, axis=1), -1, seeds[near].reshape(len(rows), -1))
    offered[offered == rows[:, None]] = -1
    current = indices.astype(np.int64)
    offered[~fresh(current, offered)] = -1
    cand = np.hstack([current, offered])
    known = np.where(current >= 0, scores, -np.inf)
    cand_scores = np.hstack([known, data.pair_scores(rows, offered)])
    return top_k_rows(cand, cand_scores, width)
