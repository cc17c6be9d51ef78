"""Each article's top-k neighbours by blended similarity: `search` picks the exact search
(training/search/exact.py) below AUTO_EXACT_BELOW rows or when a rule needs every pair, and the
pruned one (training/search/pruned.py) above."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from training.search.exact import Adjust, exact_search
from training.search.pruned import PrunedParams, pruned_search
from training.search.rows import SearchRows
from training.search.sharded import sharded_search

AUTO_EXACT_BELOW = 20_000
"""method="auto" searches exactly below this many rows (exact is then fast and loses nothing)."""
Indices = NDArray[np.int32]
Scores = NDArray[np.float32]


def search(
    tfidf: sp.csr_matrix | sp.csr_array,
    k: int,
    dense: NDArray[np.floating] | None = None,
    dense_weight: float | None = 0.0,
    *,
    method: str = "auto",
    allowed: NDArray[np.bool_] | None = None,
    n_jobs: int = 2,
    progress: bool = False,
    adjust: Adjust | None = None,
    **knobs: int,
) -> tuple[Indices, Scores]:
    """Per row, the k most similar other rows (only `allowed` ones if given), best first.

    Returns int32 indices and float32 exact blended scores, both [N, k]; -1 and 0 pad rows with
    fewer than k neighbours of positive similarity. `knobs` are PrunedParams fields. `adjust`
    (a rule over every pair, such as a recency window) forces the exact search, which ignores
    `shards` (training/search/sharded.py splits the pruned search only). Sorts the
    column indices of tfidf's rows in place (the same matrix).
    """
    data = SearchRows.of(tfidf, dense, dense_weight, allowed)
    if adjust is not None:
        method, knobs = "exact", {}
    if method == "auto":
        method = "exact" if data.n < AUTO_EXACT_BELOW else "pruned"
        if method == "exact":
            knobs = {}  # they tune the pruned search; exact needs none
    if method == "exact":
        knobs.pop("shards", None)  # the exact search is for small corpora: one index
        if knobs:
            raise ValueError(f"the exact method takes no knobs, got {sorted(knobs)}")
        return exact_search(data, k, n_jobs, progress, adjust)
    if method == "pruned":
        names = {f.name for f in fields(PrunedParams)}
        if unknown := sorted(set(knobs) - names):
            raise ValueError(f"unknown pruned-search knobs {unknown}; known: {sorted(names)}")
        params = PrunedParams(**knobs)
        run = pruned_search if params.shards == 1 else sharded_search
        return run(data, k, params, n_jobs, progress)
    raise ValueError(f"method must be auto, exact or pruned, not {method!r}")
