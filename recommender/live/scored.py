"""What scoring a new article against a version's articles answers: scores for the few
articles it may be related to (its pool), never million-long arrays, so an upsert's cost
follows its candidates rather than the corpus (recommender/live/vectors.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recommender.live.idtable import PositionalIds


class JoinedIds(PositionalIds):
    """The base ids then the live ids, without copying a million-entry list per upsert."""

    def __init__(self, base: Sequence[str], live: list[str]) -> None:
        self.base, self.live = base, live

    def __len__(self) -> int:
        return len(self.base) + len(self.live)

    def _at(self, n: int) -> str:
        return self.base[n] if n < len(self.base) else self.live[n - len(self.base)]


@dataclass(frozen=True)
class SparseScores:
    """Scores of some positions (ascending, unique); every other position scores 0."""

    positions: NDArray[np.intp]
    values: NDArray[np.float32]


@dataclass(frozen=True)
class DenseScores:
    """A score for every position (the version's articles, then the live ones)."""

    values: NDArray[np.float32]

    def at(self, wanted: NDArray[np.intp]) -> NDArray[np.float32]:
        """The scores of those positions."""
        return self.values[wanted]

    def best(self, count: int) -> SparseScores:
        """The `count` highest positive scores (fewer if fewer are positive)."""
        count = min(count, len(self.values))
        if not count:
            return SparseScores(np.zeros(0, np.intp), np.zeros(0, np.float32))
        top = np.argpartition(-self.values, count - 1)[:count]
        top = np.sort(top[self.values[top] > 0])
        return SparseScores(top.astype(np.intp), self.values[top])

    def positive(self) -> SparseScores:
        """Every positive score."""
        where = np.flatnonzero(self.values > 0)
        return SparseScores(where, self.values[where])


@dataclass(frozen=True)
class Scores:
    """A new article's blended and TF-IDF-only similarity to the articles of its pool
    (positions in `ids`: the version's articles, then the live ones); 0 to every other."""

    ids: JoinedIds
    positions: NDArray[np.intp]
    blended: NDArray[np.float32]
    tfidf: NDArray[np.float32]

    def dense(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Blended and TF-IDF scores of every article, in `ids` order (for checks)."""
        blended = np.zeros(len(self.ids), dtype=np.float32)
        tfidf = np.zeros(len(self.ids), dtype=np.float32)
        blended[self.positions], tfidf[self.positions] = self.blended, self.tfidf
        return blended, tfidf
