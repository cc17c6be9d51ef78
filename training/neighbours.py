"""Each article's top-k neighbours by blended similarity: exact (blocked) or pruned (scales to 1M+).

Similarity of rows i and j is (1 - w) * <tfidf_i, tfidf_j> + w * <dense_i, dense_j>, w =
`dense_weight`, both parts L2-normalised rows: the blended cosine of training/related.py. With
dense_weight=None the parts come already scaled (training.related.ArticleVectors) and similarity
is the plain dot product of the concatenated rows.

`exact` computes the full similarity matrix a block of rows at a time. It is O(N^2): news articles
share so many terms that the sparse product is effectively dense. `pruned` scores exactly only
~150 candidates per article, from three sources:
  1. a pruned index: each article keeps its `doc_terms` heaviest terms, each term the `postings`
     articles where it weighs most (impact-ordered postings), so a query (cut to its
     `query_terms` heaviest terms) reads a bounded number of postings however large the corpus;
     one sparse product per block of queries, the `candidates` best approximate scores kept;
  2. the dense part: an inverted file on k-means clusters of the dense rows; a query's cluster
     scores the members of the `probes` nearest clusters, `dense_candidates` best kept;
  3. expansion: the top `expand` neighbours of each article's top `expand` neighbours (one round
     of NN-descent), scored after a first pass.
Every candidate is scored with the exact blended similarity and the top k are kept.
`pairs_above` finds every pair above a threshold exactly (near-duplicates), by prefix filtering.
Work runs in blocks of rows on threads: the compiled loops of training/search_kernels.py
(index candidates, pair dot products), scipy's sparse kernels and numpy release the GIL, and
threads share the corpus instead of copying it into each process.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from training.memory import trim_heap
from training.neighbour_kernels import (
    blocks_by_cost,
    build_index,
    cluster_candidates,
    fresh,
    run_blocks,
    top_k_sorted,
)
from training.search_kernels import index_candidates, pair_dots

AUTO_EXACT_BELOW = 20_000
"""method="auto" searches exactly below this many rows (exact is then fast and loses nothing)."""
_EXACT_BUDGET = 1 << 26
"""Bytes of one dense block of exact similarities per thread."""

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

    def __post_init__(self) -> None:
        positive = (self.query_terms, self.doc_terms, self.postings, self.probes, self.block)
        if min(positive) < 1 or min(self.candidates, self.dense_candidates, self.expand) < 0:
            raise ValueError(f"pruned search knobs out of range: {self}")


def search(
    tfidf: sp.csr_matrix | sp.csr_array,
    k: int,
    dense: NDArray[np.floating] | None = None,
    dense_weight: float | None = 0.0,
    *,
    method: str = "auto",
    allowed: NDArray[np.bool_] | None = None,
    n_jobs: int = 2,
    progress: bool = False,
    **knobs: int,
) -> tuple[Indices, Scores]:
    """Per row, the k most similar other rows (only `allowed` ones if given), best first.

    Returns int32 indices and float32 exact blended scores, both [N, k]; -1 and 0 pad rows with
    fewer than k neighbours of positive similarity. `knobs` are PrunedParams fields. Sorts the
    column indices of tfidf's rows in place (the same matrix).
    """
    corpus = _Corpus.of(tfidf, dense, dense_weight, allowed)
    if method == "auto":
        method = "exact" if corpus.n < AUTO_EXACT_BELOW else "pruned"
        if method == "exact":
            knobs = {}  # they tune the pruned search; exact needs none
    if method == "exact":
        if knobs:
            raise ValueError(f"the exact method takes no knobs, got {sorted(knobs)}")
        return exact_search(corpus, k, n_jobs, progress)
    if method == "pruned":
        names = {f.name for f in fields(PrunedParams)}
        if unknown := sorted(set(knobs) - names):
            raise ValueError(f"unknown pruned-search knobs {unknown}; known: {sorted(names)}")
        return pruned_search(corpus, k, PrunedParams(**knobs), n_jobs, progress)
    raise ValueError(f"method must be auto, exact or pruned, not {method!r}")


@dataclass
class _Corpus:
    """The validated inputs: rows, optional dense part and weight, candidate mask."""

    x: sp.csr_matrix
    dense: NDArray[np.float32] | None
    scales: tuple[float, float]
    """Factors of the sparse and the dense dot products in the similarity."""
    allowed: NDArray[np.bool_] | None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def of(
        cls,
        tfidf: sp.csr_matrix | sp.csr_array,
        dense: NDArray[np.floating] | None,
        weight: float | None,
        allowed: NDArray[np.bool_] | None,
    ) -> _Corpus:
        x = sp.csr_matrix(tfidf, dtype=np.float32)  # shares the caller's arrays when it can
        # Row products merge sorted rows fast. Sorting in place leaves the matrix the same and
        # spares a copy of it (2.4 GB at 1M articles).
        x.sort_indices()
        n = x.shape[0]
        if weight is not None and (not 0.0 <= weight <= 1.0 or (dense is None and weight > 0)):
            raise ValueError("dense_weight must be in [0, 1], and 0 without a dense part")
        if dense is not None and (dense.ndim != 2 or dense.shape[0] != n):
            raise ValueError(f"dense part must have shape ({n}, d), not {dense.shape}")
        if allowed is not None and allowed.shape != (n,):
            raise ValueError(f"allowed must have shape ({n},), not {allowed.shape}")
        part = None if dense is None or weight == 0 else np.asarray(dense, dtype=np.float32)
        scales = (1.0, 1.0) if weight is None else (1.0 - weight, weight)
        return cls(x, part, scales, allowed)

    def pair_scores(self, rows: NDArray[np.int64], cand: NDArray[np.int64]) -> Scores:
        """Exact similarity of rows[i] to each cand[i, j] (cand >= 0), -inf where cand < 0."""
        out = np.full(cand.shape, -np.inf, dtype=np.float32)
        ok = cand >= 0
        if not ok.any():
            return out
        right = cand[ok]
        left = np.broadcast_to(rows[:, None], cand.shape)[ok]
        sims = pair_dots(self.x, left, right)
        if self.dense is not None:
            dense = np.einsum("ij,ij->i", self.dense[left], self.dense[right])
            sims = self.scales[0] * sims + self.scales[1] * dense
        out[ok] = sims
        return out


def exact_search(
    corpus: _Corpus, k: int, n_jobs: int = 2, progress: bool = False
) -> tuple[Indices, Scores]:
    """Exact top-k per row from dense blocks of the full similarity matrix (the reference)."""
    n = corpus.n
    indices = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float32)
    if n < 2 or k == 0:
        return indices, scores
    transposed = corpus.x.T.tocsr()
    blocked = None if corpus.allowed is None else ~corpus.allowed

    def work(start: int, stop: int) -> None:
        sims = (corpus.x[start:stop] @ transposed).toarray()
        if corpus.dense is not None:
            sims *= corpus.scales[0]
            sims += corpus.scales[1] * (corpus.dense[start:stop] @ corpus.dense.T)
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        if blocked is not None:
            sims[:, blocked] = -np.inf
        cols = np.broadcast_to(np.arange(n, dtype=np.int64), sims.shape)
        top, top_scores = top_k_sorted(cols, sims.astype(np.float32, copy=False), k)
        indices[start:stop], scores[start:stop] = top, top_scores

    step = max(1, min(4096, _EXACT_BUDGET // (8 * n)))
    run_blocks(work, n, step, n_jobs, "neighbours (exact)", progress)
    return indices, scores


def pruned_search(
    corpus: _Corpus, k: int, params: PrunedParams, n_jobs: int = 2, progress: bool = False
) -> tuple[Indices, Scores]:
    """Top-k per row by exact similarity among candidates from a pruned index (see module doc)."""
    n, width = corpus.n, max(k, params.expand)
    indices = np.full((n, width), -1, dtype=np.int32)
    scores = np.zeros((n, width), dtype=np.float32)
    if n < 2 or k == 0:
        return indices[:, :k], scores[:, :k]
    dense = None
    if corpus.dense is not None and params.dense_candidates > 0:
        dense = cluster_candidates(corpus.dense, corpus.allowed, params.dense_candidates,
                                   params.probes, params.block, n_jobs, progress)  # fmt: skip
    if params.candidates == 0:
        params = replace(params, candidates=100 if dense is None else 50)
    index = build_index(corpus.x, params.doc_terms, params.postings, corpus.allowed)
    # Its temporaries (GBs at a million rows) partly sit in the heap, which keeps freed pages
    # until trimmed; the search after it would add to them, not reuse them.
    trim_heap()

    def first_pass(start: int, stop: int) -> None:
        rows = np.arange(start, stop)
        cand = index_candidates(corpus.x, index, params.query_terms, params.candidates, start,
                                stop)  # fmt: skip
        if dense is not None:
            extra = dense[start:stop].astype(np.int64)
            extra[~fresh(cand, extra)] = -1
            cand = np.hstack([cand, extra])
        top, top_scores = top_k_sorted(cand, corpus.pair_scores(rows, cand), width)
        indices[start:stop], scores[start:stop] = top, top_scores

    run_blocks(first_pass, n, params.block, n_jobs, "neighbours", progress)
    if params.expand == 0:
        return indices[:, :k], scores[:, :k]
    e = params.expand
    seeds = indices[:, :e].astype(np.int64)  # a snapshot: blocks rewrite `indices` as they go

    def expand(start: int, stop: int) -> None:
        rows = np.arange(start, stop)
        near = seeds[start:stop]
        offered = np.where(np.repeat(near < 0, e, axis=1), -1, seeds[near].reshape(len(rows), -1))
        offered[offered == rows[:, None]] = -1
        current = indices[start:stop].astype(np.int64)
        offered[~fresh(current, offered)] = -1
        cand = np.hstack([current, offered])
        known = np.where(current >= 0, scores[start:stop], -np.inf)
        cand_scores = np.hstack([known, corpus.pair_scores(rows, offered)])
        indices[start:stop], scores[start:stop] = top_k_sorted(cand, cand_scores, width)

    run_blocks(expand, n, params.block, n_jobs, "neighbours (expand)", progress)
    return indices[:, :k], scores[:, :k]


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
    x = _Corpus.of(matrix, None, 0.0, None).x
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

    def work(start: int, stop: int) -> None:
        shared = sp.coo_matrix(prefix[start:stop] @ transposed)
        left, right = shared.row.astype(np.int64) + start, shared.col.astype(np.int64)
        upper = left < right
        left, right = left[upper], right[upper]
        sims = pair_dots(x, left, right)
        hit = sims >= threshold
        found.append(np.stack([left[hit], right[hit]], axis=1).astype(np.int32))

    run_blocks(work, n, blocks_by_cost(cost, budget, 4096), n_jobs, "duplicates", progress)
    pairs = np.concatenate(found)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
