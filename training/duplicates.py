"""Near-duplicates: the same story republished, found on a full-vocabulary representation.

A pruned vocabulary (min_df, max_df, stop words) makes templated stories look identical, so
duplicates are found on hashed unigram counts of title + body + tags (see
recommender/textvectors.py). `duplicate_pairs` takes any row-normalised matrix and returns the
pairs above a threshold (exact, by prefix filtering). A group of duplicates is shown once, as
its earliest member.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfTransformer

from recommender.domain import Article
from recommender.textmodel import document_text
from recommender.textvectors import duplicate_counts, duplicate_vectors
from training.neighbours import pairs_above


def block_rows(n_docs: int, budget_bytes: int = 256 << 20) -> int:
    """Rows per block so one dense block of float32 similarities fits the budget."""
    return int(max(1, min(4096, budget_bytes // (4 * max(n_docs, 1)))))


def fit_duplicate_vectors(
    articles: Sequence[Article],
) -> tuple[sp.csr_matrix, NDArray[np.float32]]:
    """Full-vocabulary rows of the articles and the idf over hash buckets that made them."""
    counts = duplicate_counts([document_text(a, 1) for a in articles])
    return duplicate_vectors_of(counts)


def duplicate_vectors_of(
    counts: sp.csr_matrix,
) -> tuple[sp.csr_matrix, NDArray[np.float32]]:
    """Rows and idf from hashed counts (textvectors.duplicate_counts); weighs `counts` in place
    (at a million articles a copy is over a GB)."""
    idf = TfidfTransformer(sublinear_tf=True).fit(counts).idf_.astype(np.float32)
    return duplicate_vectors(counts, idf, copy=False), idf


def duplicate_pairs(
    matrix: sp.csr_matrix, threshold: float, progress: bool = False
) -> NDArray[np.int32]:
    """Every pair (i, j), i < j, of rows with dot product >= threshold; shape (P, 2). Exact, by
    prefix filtering (training/neighbours.pairs_above), so it scales past a million articles."""
    return pairs_above(matrix, threshold, progress=progress)


def duplicate_groups(n: int, pairs: NDArray[np.int32]) -> NDArray[np.int64]:
    """Label each article with its near-duplicate group (connected components of the pairs)."""
    graph = sp.coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])) if len(pairs) else ([], ([], [])),
        shape=(n, n),
    )
    _, labels = sp.csgraph.connected_components(graph, directed=False)
    return labels.astype(np.int64)


def earliest_members(articles: Sequence[Article], groups: NDArray[np.int64]) -> NDArray[np.bool_]:
    """True for the one article per group that lists show: the earliest published (undated
    after dated), then the smallest id."""
    order = sorted(
        range(len(articles)),
        key=lambda i: (
            articles[i].published_at is None,
            articles[i].published_at or 0.0,
            articles[i].id,
        ),
    )
    shown = np.zeros(len(articles), dtype=np.bool_)
    seen: set[int] = set()
    for i in order:
        if int(groups[i]) not in seen:
            seen.add(int(groups[i]))
            shown[i] = True
    return shown
