"""Shared pieces of the searches: row-wise top-k selection, candidate de-duplication, and
blocks of rows run on threads (or a dask cluster) with a progress bar. Temporaries are bounded
(PAD_BUDGET cells) so memory stays flat however many rows there are."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from training import compute

PAD_BUDGET = 1 << 23
"""Cells of one chunk's padded or dense temporary arrays (32 MB of float32)."""
R = TypeVar("R")


def empty_lists(n: int, width: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """n lists of `width` neighbours with nobody in them yet (-1, score 0)."""
    return np.full((n, width), -1, dtype=np.int32), np.zeros((n, width), dtype=np.float32)


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


def top_k_rows(
    cand: NDArray[np.int64], scores: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """top_k_sorted with int32 indices: what a block task returns (half the bytes to send)."""
    top, top_scores = top_k_sorted(cand, scores, k)
    return top.astype(np.int32), top_scores


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


def row_ranges(n: int, step: int | list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Row ranges: consecutive blocks of `step` rows, or the given ranges."""
    return step if isinstance(step, list) else [(s, min(s + step, n)) for s in range(0, n, step)]


def run_blocks(
    task: Callable[..., R],
    shared: Sequence[Any],
    n: int,
    step: int | list[tuple[int, int]],
    n_jobs: int,
    desc: str,
    progress: bool,
    extra: Callable[[int, int], tuple[Any, ...]] | None = None,
) -> Iterator[tuple[int, int, R]]:
    """task(*shared, start, stop, *extra(start, stop)) over row blocks, yielding (start, stop,
    result) as blocks finish, with a progress bar (rows, ETA). The blocks run on the dask
    cluster in use (training/compute.py: `shared` is sent to each worker once) or on `n_jobs`
    local threads; `extra` makes a block's own small arguments as it is submitted."""
    blocks = row_ranges(n, step)
    tasks = ((a, b, *(extra(a, b) if extra else ())) for a, b in blocks)
    with (
        tqdm(total=n, desc=desc, unit="art", disable=not progress, smoothing=0.05) as bar,
        compute.pool("threads", n_jobs) as pool,
    ):
        handles = [pool.share(value) for value in shared]
        for (start, stop, *_), result in pool.map(task, handles, tasks, ordered=False, ahead=4):
            bar.update(stop - start)
            yield start, stop, result
