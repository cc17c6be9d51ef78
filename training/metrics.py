"""Ranking metrics, one definition each: precision@k and (n)DCG. The nightly half-life fit and
the workbench's evaluations both score lists with these."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def discounts(k: int) -> NDArray[np.float64]:
    """DCG position discounts 1 / log2(rank + 1), ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def dcg(gains: ArrayLike) -> float:
    """Discounted cumulative gain of gains in list order."""
    values = np.asarray(gains, dtype=np.float64)
    return float(values @ discounts(len(values)))


def ndcg(gains: ArrayLike, ideal: ArrayLike) -> float:
    """DCG of the list over DCG of the ideal list (0 when the ideal has no gain)."""
    best = dcg(ideal)
    return dcg(gains) / best if best > 0 else 0.0


def precision_at_k(hits: ArrayLike, k: int) -> float:
    """Share of the first k slots that hit; missing slots (a shorter list) count as misses."""
    return float(np.count_nonzero(np.asarray(hits, dtype=bool)[:k])) / k
