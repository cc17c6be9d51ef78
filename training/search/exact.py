"""Exact top-k neighbours: the full similarity matrix a block of rows at a time (the reference).

O(N^2): news articles share so many terms that the sparse product is effectively dense. Used
below 20k articles, where it is fast and loses nothing, and wherever a rule needs every pair
(recency windows), through the `adjust` hook.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from training.search.blocks import run_blocks, top_k_sorted
from training.search.rows import SearchRows

Indices = NDArray[np.int32]
Scores = NDArray[np.float32]
Adjust = Callable[[NDArray[np.float32], int, int], None]
"""Changes a block of similarities (rows start:stop x all rows) in place; -inf drops a pair."""

_EXACT_BUDGET = 1 << 26
"""Bytes of one dense block of exact similarities per thread."""


def exact_search(
    data: SearchRows,
    k: int,
    n_jobs: int = 2,
    progress: bool = False,
    adjust: Adjust | None = None,
) -> tuple[Indices, Scores]:
    """Exact top-k per row from dense blocks of the full similarity matrix (the reference);
    `adjust` changes each block before selection (recency rules)."""
    n = data.n
    indices = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float32)
    if n < 2 or k == 0:
        return indices, scores
    transposed = data.x.T.tocsr()
    blocked = None if data.allowed is None else ~data.allowed

    def work(start: int, stop: int) -> None:
        sims = (data.x[start:stop] @ transposed).toarray()
        if data.dense is not None:
            sims *= data.scales[0]
            sims += data.scales[1] * (data.dense[start:stop] @ data.dense.T)
        if adjust is not None:
            adjust(sims, start, stop)
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        if blocked is not None:
            sims[:, blocked] = -np.inf
        cols = np.broadcast_to(np.arange(n, dtype=np.int64), sims.shape)
        top, top_scores = top_k_sorted(cols, sims.astype(np.float32, copy=False), k)
        indices[start:stop], scores[start:stop] = top, top_scores

    step = max(1, min(4096, _EXACT_BUDGET // (8 * n)))
    run_blocks(work, n, step, n_jobs, "neighbours (exact)", progress)
    return indices, scores
