"""The related-article similarity, shared by training and live upserts.

Similarity is a blend of two cosines, w = `lsa_weight`:

    sim(a, b) = (1 - w) * cos_tfidf(a, b) + w * cos_lsa(a, b)

which is the dot product of each article's concatenated row
[sqrt(1 - w) * tfidf, sqrt(w) * lsa]. The LSA part of an article is computed in two steps:
1. pseudo-relevance feedback: its TF-IDF row plus `prf_weight` times the mean TF-IDF row of its
   `prf_neighbours` nearest articles by TF-IDF cosine, L2-normalised (short texts borrow the
   vocabulary of their neighbours; the sparse TF-IDF part itself is never expanded, so it stays
   as sparse as the text);
2. that row restricted to the `lsa_terms` columns, projected on the `lsa_components` (a
   TruncatedSVD fitted by training on the expanded rows) and L2-normalised.
Projection is linear, so step 1 can be applied to projections instead of rows: that is how a
server computes a new article's LSA part from the stored projections of its neighbours.

Near-duplicates (the same story republished) score at least DUPLICATE_THRESHOLD; training finds
them on a full-vocabulary representation (training/related/duplicates.py), live upserts on the
TF-IDF cosine.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # only a type here: a read replica imports this module without scipy
    import scipy.sparse as sp

TOP_K = 50
"""Related articles stored per article (the training default; the manifest records the value)."""
DUPLICATE_THRESHOLD = 0.9
"""Articles at least this similar are the same story republished (training default)."""


def blend_scales(lsa_weight: float) -> tuple[float, float]:
    """Factors for the TF-IDF and LSA parts of a row so dot products give the blended cosine."""
    return math.sqrt(1.0 - lsa_weight), math.sqrt(lsa_weight)


def normalize_rows(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / np.where(norms == 0, 1, norms), dtype=np.float32)


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
    scales, this equals projecting the feedback-expanded rows and normalising."""
    total = raw.astype(np.float32, copy=True)
    if neighbours.shape[1] and weight:
        valid = neighbours >= 0
        counts = np.maximum(valid.sum(axis=1), 1).astype(np.float32)
        gathered = corpus_raw[np.where(valid, neighbours, 0)] * valid[:, :, None]
        total += (weight / counts)[:, None] * gathered.sum(axis=1)
    return normalize_rows(total)
