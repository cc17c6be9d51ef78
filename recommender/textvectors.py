"""Article vectors beyond the TF-IDF vocabulary, shared by training and live upserts.

Related-article similarity is a blend of two cosines, w = `lsa_weight`:

    sim(a, b) = (1 - w) * cos_tfidf(a, b) + w * cos_lsa(a, b)

which is the dot product of each article's concatenated row
[sqrt(1 - w) * tfidf, sqrt(w) * lsa]. The LSA part of an article is computed in two steps:
1. pseudo-relevance feedback: its TF-IDF row plus `prf_weight` times the mean TF-IDF row of its
   `prf_neighbours` nearest articles by TF-IDF cosine, L2-normalised (short texts borrow the
   vocabulary of their neighbours; the sparse TF-IDF part itself is never expanded, so it stays
   as sparse as the text);
2. that row restricted to the `lsa_terms` columns, projected on the `lsa_components` (a
   TruncatedSVD fitted by training on the expanded rows) and L2-normalised.
So a server computes a new article's vector from the vectorizer, the corpus TF-IDF rows (for the
feedback neighbours) and two saved arrays.

Near-duplicates (the same story republished) are found on a separate full-vocabulary
representation: hashed unigram counts, sublinear tf, times a saved idf array over the hash
buckets. Hashing needs no vocabulary, so nothing is pruned and nothing but `duplicate_idf` is
stored. Both are plain float32/int32 arrays (np.savez, loaded with allow_pickle=False).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

DUPLICATE_BUCKETS = 1 << 20
"""Hash buckets of the full-vocabulary representation (collisions are negligible at this size)."""


def blend_scales(lsa_weight: float) -> tuple[float, float]:
    """Factors for the TF-IDF and LSA parts of a row so dot products give the blended cosine."""
    return math.sqrt(1.0 - lsa_weight), math.sqrt(lsa_weight)


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


def lsa_raw(
    tfidf: sp.csr_matrix, terms: NDArray[np.int32], components: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Unnormalised LSA projections of TF-IDF rows: linear, so feedback can be added after."""
    return np.asarray(tfidf[:, terms] @ components.T, dtype=np.float32)


def lsa_from_raw(
    raw: NDArray[np.float32],
    corpus_raw: NDArray[np.float32],
    neighbours: NDArray[np.int32],
    weight: float,
) -> NDArray[np.float32]:
    """L2-normalised LSA rows with pseudo-relevance feedback: raw + weight x the mean of the
    neighbours' raw rows (-1 = none). Because projection is linear and normalisation only
    scales, this equals projecting feedback_rows(...) and normalising, without sparse rows: it is
    how a server computes an upserted article's LSA part from stored projections."""
    total = raw.astype(np.float32, copy=True)
    if neighbours.shape[1] and weight:
        valid = neighbours >= 0
        counts = np.maximum(valid.sum(axis=1), 1).astype(np.float32)
        gathered = corpus_raw[np.where(valid, neighbours, 0)] * valid[:, :, None]
        total += (weight / counts)[:, None] * gathered.sum(axis=1)
    return np.asarray(normalize(total), dtype=np.float32)


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
