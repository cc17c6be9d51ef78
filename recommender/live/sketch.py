"""Finding the articles nearest to a new one by meaning without scanning every article.

Embeddings are projected on their SKETCH_DIMS principal directions (the sketch), and the
sketches grouped into about sqrt(n) lists by spherical k-means, an inverted-file index: a
query scores the lists' centroids, reads the sketches of the best lists until it holds
PROBE_FACTOR times the rows it wants, and keeps the best of those. At a million articles that
reads ~12,000 rows of 32 floats instead of a million (benchmarks/RESULTS.md; the candidates'
exact scores are computed after, recommender/live/vectors.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.live.arrayfiles import ArrayStore
from recommender.live.compact import BLOCK_ROWS, Int8Rows

SKETCH_DIMS = 32
"""Dimensions of the embedding sketch."""
PROBE_FACTOR = 4
"""Rows read per row wanted: the nearest lists are read until this many are in hand."""
KMEANS_SAMPLE = 65_536
KMEANS_ROUNDS = 12
ASSIGN_ROWS = 16_384
"""Rows assigned to lists at a time (a block x lists float32 temporary)."""


@dataclass(frozen=True)
class SketchIndex:
    """Sketches of every row, grouped by list (an inverted file)."""

    basis: NDArray[np.float32]
    """dims x SKETCH_DIMS."""
    centroids: NDArray[np.float32]
    """lists x SKETCH_DIMS, unit length."""
    starts: NDArray[np.int64]
    """Where each list's rows begin in `order` and `sketches`; one more for the end."""
    order: NDArray[np.int32]
    """Row numbers, grouped by list."""
    sketches: NDArray[np.float16]
    """Sketch of each row of `order`."""

    @classmethod
    def of(cls, rows: Int8Rows, seed: int = 0, store: ArrayStore | None = None) -> SketchIndex:
        """The sketch basis from an even sample of rows, its lists by k-means, every row
        assigned to its nearest list (arrays "sketch.*" of the store, if given)."""
        sample = rows.take(_even(len(rows), KMEANS_SAMPLE))
        dims = min(SKETCH_DIMS, *sample.shape) if len(sample) else 0
        basis = np.ascontiguousarray(np.linalg.svd(sample, full_matrices=False)[2][:dims].T,
                                     dtype=np.float32)  # fmt: skip
        centroids = _spherical_kmeans(sample @ basis, _list_count(len(rows)), seed)
        projected = np.empty((len(rows), dims), dtype=np.float32)
        for n, block in enumerate(rows.blocks()):
            projected[n * BLOCK_ROWS : n * BLOCK_ROWS + len(block)] = block @ basis
        assigned = _assign(projected, centroids)
        order = np.argsort(assigned, kind="stable").astype(np.int32)
        starts = np.concatenate([[0], np.cumsum(np.bincount(assigned, minlength=len(centroids)))])
        index = cls(basis, centroids, starts.astype(np.int64), order,
                    projected[order].astype(np.float16))  # fmt: skip
        return index if store is None else cls.stored(index.put(store))

    def put(self, store: ArrayStore) -> dict[str, NDArray[Any]]:
        """Its arrays, kept in the store."""
        return {f"sketch.{f.name}": store.put(f"sketch.{f.name}", getattr(self, f.name))
                for f in fields(self)}  # fmt: skip

    @classmethod
    def stored(cls, arrays: Mapping[str, NDArray[Any]]) -> SketchIndex:
        """The index `put` in a store."""
        return cls(**{f.name: arrays[f"sketch.{f.name}"] for f in fields(cls)})

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.basis, self.centroids, self.starts, self.order,
                                      self.sketches))  # fmt: skip

    def nearest(self, vector: NDArray[np.float32], count: int) -> NDArray[np.intp]:
        """About the `count` rows with the largest dot product with the vector (unordered)."""
        count = min(count, len(self.order))
        if not count:
            return np.zeros(0, np.intp)
        query = vector @ self.basis
        sizes = self.starts[1:] - self.starts[:-1]
        best = np.argsort(-(self.centroids @ query), kind="stable")
        probed = best[: int(np.searchsorted(np.cumsum(sizes[best]), PROBE_FACTOR * count)) + 1]
        spans = [np.arange(self.starts[c], self.starts[c + 1]) for c in probed]
        where = np.concatenate(spans)
        approx = self.sketches[where].astype(np.float32) @ query
        count = min(count, len(where))
        top = np.argpartition(-approx, count - 1)[:count]
        return self.order[where[top]].astype(np.intp)


def _even(total: int, wanted: int) -> NDArray[np.intp]:
    """About `wanted` row numbers spread evenly over `total` rows."""
    return np.arange(0, total, max(1, total // wanted))


def _list_count(rows: int) -> int:
    """About sqrt(rows) lists: a probe reads a few lists of about sqrt(rows) rows each."""
    return max(1, min(4096, int(np.sqrt(rows))))


def _spherical_kmeans(points: NDArray[np.float32], lists: int, seed: int) -> NDArray[np.float32]:
    """Unit centroids of `lists` groups of points by cosine (Lloyd's rounds from random
    points); an emptied group restarts at a random point."""
    draw = np.random.default_rng(seed)
    unit = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    centroids = unit[draw.choice(len(unit), size=min(lists, len(unit)), replace=False)]
    for _ in range(KMEANS_ROUNDS):
        assigned = _assign(unit, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assigned, unit)
        empty = np.linalg.norm(sums, axis=1) == 0
        sums[empty] = unit[draw.choice(len(unit), size=int(empty.sum()))]
        centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return centroids.astype(np.float32)


def _assign(points: NDArray[np.float32], centroids: NDArray[np.float32]) -> NDArray[np.intp]:
    """Each point's list: the centroid with the largest dot product, a block at a time."""
    out = np.empty(len(points), dtype=np.intp)
    for start in range(0, len(points), ASSIGN_ROWS):
        out[start : start + ASSIGN_ROWS] = np.argmax(points[start : start + ASSIGN_ROWS]
                                                     @ centroids.T, axis=1)  # fmt: skip
    return out
