"""Near-duplicates: the same story republished, found on a full-vocabulary representation.

A pruned vocabulary (min_df, max_df, stop words) makes templated stories look identical, so
duplicates are found on hashed unigram counts of title + body + tags, sublinear tf times an idf
over the hash buckets: hashing needs no vocabulary, so nothing is pruned. `duplicate_pairs`
takes any row-normalised matrix and returns the pairs above a threshold (exact, by prefix
filtering). A group of duplicates is shown once, as its earliest member.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

from recommender.domain import Article
from recommender.textmodel import document_text
from training.search.pairs import pairs_above

DUPLICATE_BUCKETS = 1 << 20
"""Hash buckets of the full-vocabulary representation (collisions are negligible at this size)."""


def duplicate_counts(texts: list[str]) -> sp.csr_matrix:
    """Raw hashed unigram counts of each text: the full vocabulary, nothing pruned."""
    hasher = HashingVectorizer(
        n_features=DUPLICATE_BUCKETS, alternate_sign=False, norm=None, dtype=np.float32
    )
    return sp.csr_matrix(hasher.transform(texts), dtype=np.float32)


def duplicate_vectors(
    counts: sp.csr_matrix, idf: NDArray[np.float32], copy: bool = True
) -> sp.csr_matrix:
    """L2-normalised sublinear-tf x idf rows from hashed counts (in place with copy=False)."""
    weighted = sp.csr_matrix(counts, dtype=np.float32, copy=copy)
    data = weighted.data
    np.log(data, out=data)
    data += np.float32(1.0)
    data *= idf.astype(np.float32)[weighted.indices]
    return sp.csr_matrix(normalize(weighted, copy=False), dtype=np.float32)


def fit_duplicate_vectors(
    articles: Sequence[Article],
) -> tuple[sp.csr_matrix, NDArray[np.float32]]:
    """Full-vocabulary rows of the articles and the idf over hash buckets that made them."""
    counts = duplicate_counts([document_text(a, 1) for a in articles])
    return duplicate_vectors_of(counts)


def duplicate_vectors_of(
    counts: sp.csr_matrix,
) -> tuple[sp.csr_matrix, NDArray[np.float32]]:
    """Rows and idf from hashed counts (duplicate_counts); weighs `counts` in place
    (at a million articles a copy is over a GB)."""
    idf = TfidfTransformer(sublinear_tf=True).fit(counts).idf_.astype(np.float32)
    return duplicate_vectors(counts, idf, copy=False), idf


def duplicate_pairs(
    matrix: sp.csr_matrix, threshold: float, progress: bool = False, shards: int = 1
) -> NDArray[np.int32]:
    """Every pair (i, j), i < j, of rows with dot product >= threshold; shape (P, 2). Exact, by
    prefix filtering (training/search/pairs.py), so it scales past a million articles; over
    `shards` shards of rows, one per dask worker (the same pairs)."""
    return pairs_above(matrix, threshold, progress=progress, shards=shards)


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
