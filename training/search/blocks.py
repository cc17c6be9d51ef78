"""Shared pieces of the searches: row-wise top-k selection, candidate de-duplication, and
blocks of rows run on threads with a progress bar. Temporaries are bounded (PAD_BUDGET cells)
so memory stays flat however many rows there are."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from joblib import Parallel, delayed
from numpy.typing import NDArray
from tqdm import tqdm

PAD_BUDGET = 1 << 23
"""Cells of one chunk's padded or dense temporary arrays (32 MB of float32)."""


def top_k_sorted(
    cand: NDArray[np.int64], scores: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each row's k best (candidate, score) pairs, best first, ties by lower index; -1/0 pad
    for missing or non-positive scores."""
    rows = cand.shape[0]
    if cand.shape[1] < k:
        pad = k - cand.shape[1]
        cand = np.hstack([cand, np.full((rows, pad), -1, dtype=cand.dtype)])
        scores = np.hstack([scores, np.full((rows, pad), -np.inf, dtype=np.float32)])
    scores = np.where(cand >= 0, scores, -np.inf)
    if cand.shape[1] > k:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        cand, scores = np.take_along_axis(cand, part, 1), np.take_along_axis(scores, part, 1)
    order = np.lexsort((cand, -scores), axis=1)
    cand, scores = np.take_along_axis(cand, order, 1), np.take_along_axis(scores, order, 1)
    valid = scores > 0
    return np.where(valid, cand, -1), np.where(valid, scores, 0.0).astype(np.float32)


def fresh(current: NDArray[np.int64], offered: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Mask of offered entries (>= 0) that are neither in the row's current list nor repeated."""
    both = np.hstack([current, offered])
    order = np.argsort(both, axis=1, kind="stable")  # stable: current entries come first
    ranked = np.take_along_axis(both, order, 1)
    first = np.ones(both.shape, dtype=bool)
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    unique = np.empty_like(first)
    np.put_along_axis(unique, order, first, 1)
    return unique[:, current.shape[1] :] & (offered >= 0)


def blocks_by_cost(cost: NDArray[np.int64], budget: int, most: int) -> list[tuple[int, int]]:
    """Consecutive row ranges of at most `most` rows whose summed cost stays within budget."""
    ends = np.cumsum(cost)
    blocks, start = [], 0
    while start < len(cost):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + budget, side="right"))
        stop = min(max(stop, start + 1), start + most, len(cost))
        blocks.append((start, stop))
        start = stop
    return blocks


def run_blocks(
    work: Callable[[int, int], None],
    n: int,
    step: int | list[tuple[int, int]],
    n_jobs: int,
    desc: str,
    progress: bool,
) -> None:
    """Run work(start, stop) over row blocks on threads, with a progress bar (rows, ETA)."""
    blocks = step if isinstance(step, list) else [(s, min(s + step, n)) for s in range(0, n, step)]

    def run(start: int, stop: int) -> int:
        work(start, stop)
        return stop - start

    with tqdm(total=n, desc=desc, unit="art", disable=not progress, smoothing=0.05) as bar:
        jobs = (delayed(run)(a, b) for a, b in blocks)
        for done in Parallel(n_jobs, backend="threading", return_as="generator_unordered")(jobs):
            bar.update(done)
