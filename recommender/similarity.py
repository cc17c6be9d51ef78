"""The related-article similarity, shared by training and live upserts.

Similarity is a blend of three cosines, w = `lsa_weight`, e = `embedding_weight`:

    sim(a, b) = (1 - e) * [(1 - w) * cos_tfidf(a, b) + w * cos_lsa(a, b)] + e * cos_emb(a, b)

which is the dot product of each article's concatenated row
[sqrt((1 - e)(1 - w)) * tfidf, sqrt((1 - e) w) * lsa, sqrt(e) * emb]: the search sees one
sparse part and one dense part (LSA and embedding side by side). The embedding part is a
sentence-embedding model's normalised vector of the title and lead (recommender/encoder.py).
The LSA part of an article is computed in two steps:
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
from dataclasses import dataclass
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
    """Factors for the sparse and dense parts of a row so dot products give the blend."""
    return math.sqrt(1.0 - lsa_weight), math.sqrt(lsa_weight)


@dataclass(frozen=True)
class Shares:
    """Each cosine's share of the similarity; they sum to 1."""

    tfidf: float
    lsa: float
    embedding: float

    @classmethod
    def of(cls, lsa_weight: float, embedding_weight: float) -> Shares:
        """The shares the two blend weights give (see the module docstring)."""
        rest = 1.0 - embedding_weight
        return cls(rest * (1.0 - lsa_weight), rest * lsa_weight, embedding_weight)

    @property
    def dense(self) -> float:
        """Share of the dense part (LSA and embedding together)."""
        return self.lsa + self.embedding


def dense_rows(
    shares: Shares, lsa: NDArray[np.float32] | None, embedding: NDArray[np.float32] | None
) -> NDArray[np.float32] | None:
    """The dense part of the search rows: the LSA and embedding rows side by side, each scaled
    so that a dense dot product times shares.dense is their shares of the blend."""
    parts = [
        rows * np.float32(math.sqrt(share / shares.dense))
        for rows, share in ((lsa, shares.lsa), (embedding, shares.embedding))
        if rows is not None and share > 0
    ]
    if not parts:
        return None
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)


def normalize_rows(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / np.where(norms == 0, 1, norms), dtype=np.float32)


def lsa_raw(
    tfidf: sp.csr_matrix, terms: NDArray[np.int32], components: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Unnormalised LSA projections of TF-IDF rows: linear, so feedback can be added after."""
    return np.asarray(tfidf[:, terms] @ components.T, dtype=np.float32)


def expand_rows(
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
