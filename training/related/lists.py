"""Each article's related list: neighbours with near-duplicates and repeated headlines folded,
as compact arrays (RelatedLists), and as the serving store holds them with ids and sections
(CandidateLists).

A training run has a million of these lists; they are built (and encoded) a row at a time when
publish reads them, never held as Python objects all at once.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.live.idtable import stable_hash
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
    neighbours: Neighbours,
    groups: NDArray[np.int64],
    top_k: int,
    block: int = 65_536,
    titles: NDArray[np.int64] | None = None,
) -> RelatedLists:
    """Per article: up to top_k (index, score), best first, one article per duplicate group and
    none from the article's own group (the same story republished is not 'related'); with
    `titles` (title_ids), also none with the article's own title, and of the rest (one per
    group) one per title: readers take a repeated headline for a bug, even over different
    stories ('Live updates')."""
    n = len(neighbours.indices)
    indices = np.full((n, top_k), -1, dtype=np.int32)
    scores = np.zeros((n, top_k), dtype=np.float32)
    keys = [key for key in (groups, titles) if key is not None]
    for start in range(0, n, block):  # blocks bound the int64 temporaries
        stop = min(start + block, n)
        idx = neighbours.indices[start:stop].astype(np.int64)
        keep = idx >= 0
        of_candidates = [np.where(keep, key[np.maximum(idx, 0)], -1) for key in keys]
        for key, theirs in zip(keys, of_candidates, strict=True):
            keep &= theirs != key[start:stop, None]
        for theirs in of_candidates:
            _first_of_each(keep, theirs)
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


def _first_of_each(keep: NDArray[np.bool_], key: NDArray[np.int64]) -> None:
    """Unkeep, in place, every kept candidate whose key an earlier kept one in its row has."""
    width = key.shape[1]
    key = np.where(keep, key, -1 - np.arange(width))  # the dropped match nothing (keys >= 0)
    order = np.argsort(key, axis=1, kind="stable")  # equal keys stay in position order
    ranked = np.take_along_axis(key, order, axis=1)
    repeat = np.zeros(key.shape, dtype=bool)
    repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
    rows = np.broadcast_to(np.arange(len(key))[:, None], key.shape)
    keep[rows[repeat], order[repeat]] = False


def normalized_title(title: str) -> str:
    """The title as a reader compares headlines: casefolded, whitespace collapsed, punctuation
    at either end dropped."""
    text = " ".join(title.casefold().split())
    lo, hi = 0, len(text)
    while lo < hi and (text[lo].isspace() or unicodedata.category(text[lo])[0] == "P"):
        lo += 1
    while hi > lo and (text[hi - 1].isspace() or unicodedata.category(text[hi - 1])[0] == "P"):
        hi -= 1
    return text[lo:hi]


def title_ids(titles: Iterable[str]) -> NDArray[np.int64]:
    """An id per title, equal for equal normalized titles, each empty title its own (a missing
    headline repeats nothing). Titles are told apart by a 64-bit digest, not a dict of strings
    (~150 MB at a million articles): two different ones share it with odds ~1e-8 there, and
    that only drops one candidate, never shows a repeat."""
    digests = np.fromiter((stable_hash(normalized_title(t)) for t in titles), dtype=np.uint64)
    _, ids = np.unique(digests, return_inverse=True)
    ids = ids.astype(np.int64).reshape(-1)
    empty = digests == np.uint64(stable_hash(""))
    ids[empty] = len(ids) + np.arange(np.count_nonzero(empty))
    return ids


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
