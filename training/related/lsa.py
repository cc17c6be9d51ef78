"""The LSA part of the related similarity: a TruncatedSVD of TF-IDF rows expanded by
pseudo-relevance feedback (recommender/similarity.py describes the blend)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

from recommender.similarity import expand_rows, lsa_raw
from training.memory import release_memory
from training.related.params import RelatedParams
from training.search.neighbours import search

LSA_FIT_ROWS = 20_000
"""The SVD is fitted on at most this many evenly spaced articles, then applied to all."""


FEEDBACK_SEARCH: dict[str, Any] = {"candidates": 30, "expand": 0}
"""Pruned-search knobs of the feedback neighbours (20k+ articles): they only lend vocabulary to
the LSA part, so a lighter search than the lists' own (100 candidates and a second pass) does;
at 1M articles the default search took 10 minutes on 2 cores."""


FEEDBACK_BLOCK_ROWS = 2_000
"""Sampled rows expanded by feedback at a time."""


LSA_BLOCK_ROWS = 50_000
"""Rows projected at a time."""


@dataclass(frozen=True)
class Lsa:
    """A fitted LSA part: feedback neighbours, the vocabulary columns read, the components, and
    the resulting L2-normalised rows of the corpus."""

    feedback: NDArray[np.int32]
    """Shape (articles, prf_neighbours): each article's TF-IDF neighbours (-1 = none)."""
    terms: NDArray[np.int32]
    components: NDArray[np.float32]
    """Shape (dims, len(terms))."""
    vectors: NDArray[np.float32]
    raw: NDArray[np.float32]
    """Unnormalised projections without feedback: what live upserts add feedback from."""


def feedback_rows(
    rows: sp.csr_matrix, neighbours: NDArray[np.int32], corpus: sp.csr_matrix, weight: float
) -> sp.csr_matrix:
    """Rows plus weight x the mean of their neighbours' corpus rows (index -1 = none),
    L2-normalised: pseudo-relevance feedback."""
    n, m = neighbours.shape
    if m == 0 or weight == 0:
        return rows
    valid = neighbours >= 0
    counts = np.maximum(valid.sum(axis=1), 1)
    shares = np.broadcast_to((weight / counts)[:, None], neighbours.shape)[valid]
    source = np.repeat(np.arange(n), m).reshape(n, m)[valid]
    mix = sp.csr_matrix((shares, (source, neighbours[valid])), shape=(n, corpus.shape[0]))
    return sp.csr_matrix(normalize(rows + mix @ corpus), dtype=np.float32)


def fit_lsa(matrix: sp.csr_matrix, params: RelatedParams, progress: bool = False) -> Lsa | None:
    """TruncatedSVD of the feedback-expanded TF-IDF rows over the most frequent terms; None
    when w = 0 or the corpus is too small to reduce."""
    if params.lsa_weight == 0:
        return None
    n_docs, n_terms = matrix.shape
    df = np.bincount(matrix.indices, minlength=n_terms)
    terms = np.sort(np.argsort(-df, kind="stable")[: params.lsa_max_terms]).astype(np.int32)
    dims = min(params.lsa_dims, len(terms) - 1, n_docs - 1)
    if dims < 1:
        return None
    if params.prf_neighbours > 0 and params.prf_weight > 0:
        feedback = search(
            matrix,
            min(params.prf_neighbours, n_docs - 1),
            progress=progress,
            shards=params.search_shards,
            **FEEDBACK_SEARCH,
        )[0]
        release_memory()  # the search's freed blocks: GBs of heap at a million articles
    else:
        feedback = np.zeros((n_docs, 0), dtype=np.int32)
    sample = np.unique(np.linspace(0, n_docs - 1, min(n_docs, LSA_FIT_ROWS)).astype(np.int64))
    # Only the sampled rows are expanded: an expanded row holds its neighbours' terms too, so
    # expanding the whole corpus would multiply its size by about the number of neighbours.
    # In blocks, each cut to the LSA terms at once: all 20k expanded at once (float64, every
    # term) raised RSS by 2.2 GB at a million articles.
    expanded = sp.vstack([
        feedback_rows(matrix[part], feedback[part], matrix, params.prf_weight)[:, terms]
        for part in np.array_split(sample, max(1, len(sample) // FEEDBACK_BLOCK_ROWS))
    ]).tocsr()  # fmt: skip
    svd = TruncatedSVD(dims, algorithm="randomized", random_state=0)
    svd.fit(expanded)
    components = svd.components_.astype(np.float32)
    # In blocks of rows: whole-corpus temporaries (the column subset, the gathered feedback
    # rows) would take several GB at a million articles.
    raw = np.empty((n_docs, dims), dtype=np.float32)
    vectors = np.empty((n_docs, dims), dtype=np.float32)
    weight = params.prf_weight if len(feedback.T) else 0.0
    for start in range(0, n_docs, LSA_BLOCK_ROWS):
        raw[start : start + LSA_BLOCK_ROWS] = lsa_raw(
            matrix[start : start + LSA_BLOCK_ROWS], terms, components
        )
    for start in range(0, n_docs, LSA_BLOCK_ROWS):
        stop = start + LSA_BLOCK_ROWS
        vectors[start:stop] = expand_rows(raw[start:stop], raw, feedback[start:stop], weight)
    return Lsa(feedback, terms, components, vectors, raw)
