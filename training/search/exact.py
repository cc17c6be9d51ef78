"""Exact top-k neighbours: the full similarity matrix a block of rows at a time (the reference).

O(N^2): news articles share so many terms that the sparse product is effectively dense. Used
below 20k articles, where it is fast and loses nothing, and wherever a rule needs every pair
(recency windows), through the `adjust` hook.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from training.search.blocks import run_blocks, top_k_rows
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
    shared = (data, data.x.T.tocsr(), adjust)
    step = max(1, min(4096, _EXACT_BUDGET // (8 * n)))
    blocks = run_blocks(partial(exact_block, k=k), shared, n, step, n_jobs,
                        "neighbours (exact)", progress)  # fmt: skip
    for start, stop, (top, top_scores) in blocks:
        indices[start:stop], scores[start:stop] = top, top_scores
    return indices, scores


def exact_block(
    data: SearchRows,
    transposed: sp.csr_matrix,
    adjust: Adjust | None,
    start: int,
    stop: int,
    k: int,
) -> tuple[Indices, Scores]:
    """Rows start:stop's exact top k (a task: it runs on a thread or a dask worker)."""
    n = data.n
    sims = (data.x[start:stop] @ transposed).toarray()
    if data.dense is not None:
        sims *= data.scales[0]
        sims += data.scales[1] * (data.dense[start:stop] @ data.dense.T)
    if adjust is not None:
        adjust(sims, start, stop)
    sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
    if data.allowed is not None:
        sims[:, ~data.allowed] = -np.inf
    cols = np.broadcast_to(np.arange(n, dtype=np.int64), sims.shape)
    return top_k_rows(cols, sims.astype(np.float32, copy=False), k)
