"""TF-IDF postings a writer scores a new article's words against: terms x articles, each term
keeping only its POSTINGS_PER_TERM heaviest weights, in float16. A common term's long tail of
small weights moves no article into a top list, and scanning it was most of an upsert's time.

Built from the vectors blob (articles x terms) in four streaming passes over its members, and
grouped by term by scattering each block straight into the final arrays: loading never holds
more than the kept postings plus one block (benchmarks/RESULTS.md has the peak)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.live.arrayfiles import ArrayStore
from recommender.live.compact import Blob

POSTINGS_PER_TERM = 2000
"""Heaviest postings kept per term (about: a term keeps a whole weight bucket of ~19%)."""
BUCKETS_PER_OCTAVE = 4
BUCKETS = 64
STREAM_ENTRIES = 1 << 22
"""Blob entries read at a time."""


@dataclass(frozen=True)
class Postings:
    """Terms x articles, compressed by term (indptr, article indices, float16 weights)."""

    indptr: NDArray[np.int64]
    indices: NDArray[np.int32]
    weights: NDArray[np.float16]
    articles: int

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.indices.nbytes + self.weights.nbytes)

    def scores(
        self, terms: NDArray[np.int32], weights: NDArray[np.float32], extra: int = 0
    ) -> NDArray[np.float32]:
        """Dot products of a sparse row (terms, weights) with every article, and `extra`
        zeros after them (room for the live articles). Only its own terms' postings are read.

        Dense, not a list of touched articles: at a million articles a new article's words
        touch most of them (72% of the generated corpus), and finding them was slower than
        reading the scores where they are wanted (benchmarks/RESULTS.md)."""
        summed = np.zeros(self.articles + extra, dtype=np.float32)
        if not len(terms):  # no word the version knows
            return summed
        starts, ends = self.indptr[terms], self.indptr[terms + 1]
        # Each term's postings are one slice: joining slices is a copy, not a gather.
        articles = np.concatenate([self.indices[a:b] for a, b in zip(starts, ends, strict=True)])
        products = np.concatenate(
            [self.weights[a:b] for a, b in zip(starts, ends, strict=True)]
        ).astype(np.float32)
        products *= np.repeat(weights.astype(np.float32), ends - starts)
        np.add.at(summed, articles, products)  # in float32, in place: faster than bincount
        return summed


def pruned_postings(
    blob: Blob, per_term: int = POSTINGS_PER_TERM, store: ArrayStore | None = None
) -> Postings:
    """The blob's TF-IDF rows as terms x articles postings, float16, each term keeping about
    its `per_term` heaviest weights (arrays "postings.*" of the store, memory without one)."""
    store = store or ArrayStore()
    articles, terms = (int(x) for x in blob.array("shape"))
    df = np.zeros(terms, dtype=np.int64)
    for indices, _, _ in _entries(blob, weights=False):
        df += np.bincount(indices, minlength=terms)
    floor = _weight_floors(blob, df, per_term)
    kept = np.zeros(terms, dtype=np.int64)
    for indices, data, _ in _entries(blob):
        kept += np.bincount(indices[data >= floor[indices]], minlength=terms)
    indptr = store.put("postings.indptr", np.concatenate([[0], np.cumsum(kept)]).astype(np.int64))
    rows = store.empty("postings.indices", (int(indptr[-1]),), np.int32)
    weights = store.empty("postings.weights", (int(indptr[-1]),), np.float16)
    filled = indptr[:-1].copy()
    for indices, data, row in _entries(blob, articles=True):
        keep = np.flatnonzero(data >= floor[indices])
        by_term = keep[np.argsort(indices[keep], kind="stable")]
        term = indices[by_term]
        first = np.searchsorted(term, term)  # where each term's run starts in this block
        at = filled[term] + (np.arange(len(term)) - first)
        rows[at], weights[at] = row[by_term], data[by_term]
        filled += np.bincount(term, minlength=terms)
    return Postings(indptr, rows, weights, articles)


def stored_postings(arrays: Mapping[str, NDArray[Any]], articles: int) -> Postings:
    """The postings `pruned_postings` put in a store."""
    return Postings(arrays["postings.indptr"], arrays["postings.indices"],
                    arrays["postings.weights"], articles)  # fmt: skip


def _entries(
    blob: Blob, weights: bool = True, articles: bool = False
) -> Iterator[tuple[NDArray[np.int32], NDArray[np.float32], NDArray[np.int32]]]:
    """The blob's TF-IDF entries in blocks, in article order: the term of each, and (when
    asked, else empty) its weight as float32 and its article."""
    indptr = blob.array("indptr") if articles else np.zeros(1, np.int64)
    data = blob.blocks("data", STREAM_ENTRIES) if weights else None
    start = 0
    for terms in blob.blocks("indices", STREAM_ENTRIES):
        values = next(data).astype(np.float32) if data is not None else np.zeros(0, np.float32)
        rows = np.zeros(0, np.int32)
        if articles:
            entry = np.arange(start, start + len(terms))
            rows = (np.searchsorted(indptr, entry, side="right") - 1).astype(np.int32)
        yield terms, values, rows
        start += len(terms)


def _weight_floors(blob: Blob, df: NDArray[np.int64], per_term: int) -> NDArray[np.float32]:
    """Per term, the smallest weight kept: 0 for terms with at most `per_term` postings; for
    longer ones, the edge of the log-scale bucket that brings the count to `per_term`."""
    floor = np.zeros(len(df), dtype=np.float32)
    long_terms = np.flatnonzero(df > per_term)
    if not len(long_terms):
        return floor
    slot = np.full(len(df), -1, dtype=np.int64)
    slot[long_terms] = np.arange(len(long_terms))
    counts = np.zeros(len(long_terms) * BUCKETS, dtype=np.int64)
    for indices, data, _ in _entries(blob):
        where = slot[indices]
        inside = where >= 0
        counts += np.bincount(where[inside] * BUCKETS + _bucket(data[inside]),
                              minlength=len(counts))  # fmt: skip
    cumulative = np.cumsum(counts.reshape(len(long_terms), BUCKETS), axis=1)
    last = np.minimum((cumulative < per_term).sum(axis=1), BUCKETS - 1)
    edge = 2.0 ** (-(last + 1) / BUCKETS_PER_OCTAVE)
    floor[long_terms] = np.where(last < BUCKETS - 1, edge, 0.0)  # the last bucket: keep all
    return floor


def _bucket(weights: NDArray[np.float32]) -> NDArray[np.int64]:
    """Log-scale bucket of weights in (0, 1]: 0 holds the heaviest."""
    safe = np.maximum(weights.astype(np.float64), 1e-30)
    return np.clip(np.floor(-np.log2(safe) * BUCKETS_PER_OCTAVE), 0, BUCKETS - 1).astype(np.int64)
