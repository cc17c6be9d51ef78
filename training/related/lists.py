"""Each article's related list: neighbours with near-duplicates folded, as compact arrays
(RelatedLists), and as the serving store holds them with ids and sections (CandidateLists).

A training run has a million of these lists; they are built (and encoded) a row at a time when
publish reads them, never held as Python objects all at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.store.codec import Candidate


@dataclass
class Neighbours:
    """Top candidates per article, best first (index -1 = none)."""

    indices: NDArray[np.int32]
    scores: NDArray[np.float32]


@dataclass(frozen=True)
class RelatedLists(Sequence[list[tuple[int, float]]]):
    """Every article's list as two arrays (a million lists of Python tuples would take ~5 GB):
    row i holds up to top_k (index, score), best first, padded with -1 and 0."""

    indices: NDArray[np.int32]
    scores: NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, row: int) -> list[tuple[int, float]]: ...
    @overload
    def __getitem__(self, row: slice) -> list[list[tuple[int, float]]]: ...
    def __getitem__(self, row: int | slice) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        idx, sc = self.indices[row], self.scores[row]
        n = int(np.count_nonzero(idx >= 0))
        return list(zip(idx[:n].tolist(), sc[:n].tolist(), strict=True))

    def lengths(self) -> NDArray[np.int64]:
        """Items in each list."""
        return np.count_nonzero(self.indices >= 0, axis=1)


def related_lists(
    neighbours: Neighbours, groups: NDArray[np.int64], top_k: int, block: int = 65_536
) -> RelatedLists:
    """Per article: up to top_k (index, score), best first, one article per duplicate group and
    none from the article's own group (the same story republished is not 'related')."""
    n, width = neighbours.indices.shape
    indices = np.full((n, top_k), -1, dtype=np.int32)
    scores = np.zeros((n, top_k), dtype=np.float32)
    for start in range(0, n, block):  # blocks bound the int64 temporaries
        stop = min(start + block, n)
        idx = neighbours.indices[start:stop].astype(np.int64)
        group = np.where(idx >= 0, groups[np.maximum(idx, 0)], -1)
        keep = (idx >= 0) & (group != groups[start:stop, None])
        # The first candidate of each group in a row wins: sort by (row, group, position).
        rows = np.broadcast_to(np.arange(stop - start)[:, None], idx.shape)
        pos = np.broadcast_to(np.arange(width), idx.shape)
        order = np.lexsort((pos.ravel(), group.ravel(), rows.ravel()))
        flat_group, flat_row = group.ravel()[order], rows.ravel()[order]
        repeat = np.zeros(len(order), dtype=bool)
        repeat[1:] = (flat_group[1:] == flat_group[:-1]) & (flat_row[1:] == flat_row[:-1])
        keep.ravel()[order[repeat]] = False
        # Kept candidates move to the front of their row, in their original order.
        front = np.argsort(~keep, axis=1, kind="stable")[:, :top_k]
        kept = np.take_along_axis(keep, front, axis=1)
        indices[start:stop, : front.shape[1]] = np.where(
            kept, np.take_along_axis(idx, front, axis=1), -1
        )
        scores[start:stop, : front.shape[1]] = np.where(
            kept, np.take_along_axis(neighbours.scores[start:stop], front, axis=1), 0.0
        )
    return RelatedLists(indices, scores)


@dataclass(frozen=True)
class CandidateLists(Sequence[list[Candidate]]):
    """Each article's related list with every item's id and sections, built when read."""

    articles: Sequence[Article]
    lists: RelatedLists

    def __len__(self) -> int:
        return len(self.lists)

    @overload
    def __getitem__(self, row: int) -> list[Candidate]: ...
    @overload
    def __getitem__(self, row: slice) -> list[list[Candidate]]: ...
    def __getitem__(self, row: int | slice) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        return [(self.articles[j].id, s, self.articles[j].sections) for j, s in self.lists[row]]

    def kth_scores(self, k: int) -> NDArray[np.float32]:
        """Each list's k-th score, 0 for lists shorter than k: what a live upsert must beat."""
        full = self.lists.lengths() >= k
        return np.where(full, self.lists.scores[:, k - 1], 0.0).astype(np.float32)

    def encoded(self) -> Iterator[bytes]:
        """Each row as store.encode_related(self[row]) encodes it, byte for byte, about 10x
        faster: an article's id and sections are encoded once, not once per list it is in
        (json.dumps of every list took most of a 1M-article publish)."""
        heads = [b"[" + json.dumps(a.id).encode() + b"," for a in self.articles]
        tails: dict[tuple[str, ...], bytes] = {}
        for a in self.articles:
            if a.sections not in tails:
                listed = json.dumps(list(a.sections), separators=(",", ":"))
                tails[a.sections] = b"," + listed.encode() + b"]"
        ends = [tails[a.sections] for a in self.articles]
        for row in range(len(self.lists)):
            items = self.lists[row]
            yield (
                b"["
                + b",".join(heads[j] + repr(round(s, 6)).encode() + ends[j] for j, s in items)
                + b"]"
            )
