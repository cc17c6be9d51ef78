"""The rows a neighbour search reads: L2-normalised TF-IDF rows, an optional dense part (the LSA
rows) with the blend weight, and which rows may be candidates. Similarity of rows i and j is
(1 - w) * <tfidf_i, tfidf_j> + w * <dense_i, dense_j>, the blended cosine of
recommender/similarity.py; with weight=None the parts come already scaled
(training.related.model.ArticleVectors.scaled) and similarity is the plain dot product of the
concatenated rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from training.search.kernels import pair_dots

Scores = NDArray[np.float32]


@dataclass
class SearchRows:
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
    ) -> SearchRows:
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

    def pair_scores(
        self, rows: NDArray[np.int64], cand: NDArray[np.int64], queries: SearchRows | None = None
    ) -> Scores:
        """Exact similarity of row rows[i] of `queries` (these rows by default) to each of
        these rows cand[i, j] (cand >= 0), -inf where cand < 0."""
        q = self if queries is None else queries
        out = np.full(cand.shape, -np.inf, dtype=np.float32)
        ok = cand >= 0
        if not ok.any():
            return out
        right = cand[ok]
        left = np.broadcast_to(rows[:, None], cand.shape)[ok]
        sims = pair_dots(self.x, left, right, q.x)
        if self.dense is not None and q.dense is not None:
            dense = np.einsum("ij,ij->i", q.dense[left], self.dense[right])
            sims = self.scales[0] * sims + self.scales[1] * dense
        out[ok] = sims
        return out
