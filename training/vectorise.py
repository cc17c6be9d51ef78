"""Articles to vectors at scale: TF-IDF rows and the hashed counts that near-duplicate search
reads, from one pass over the texts.

Up to VOCABULARY_FIT_ROWS articles, the TF-IDF vocabulary and idf are fitted on every article,
in one scikit-learn fit_transform. Above that they are fitted on that many evenly spaced
articles, then every article is transformed, a chunk at a time, in worker processes. Why:
1. a fit holds every distinct uni- and bigram of its texts before min_df prunes them (measured:
   2.4 GB transient at 200k articles; five times that at 1M);
2. tokenising is pure Python, so it runs on one core per process; forked workers share the
   fitted vocabulary instead of copying it.
At 100k sampled articles a term needs two sampled documents to enter the vocabulary, so the
terms lost are the rarest, whose weight in a cosine is small anyway; the idf is an estimate
from 100k documents.

With `release_text`, each article's body is dropped (the list is updated in place) as soon as
its chunk's texts are built: at 1M articles bodies hold about 3.5 GB that later stages need.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm import tqdm

from recommender.domain import Article
from recommender.textmodel import document_text
from recommender.textvectors import duplicate_counts
from training.memory import release_memory, trim_heap

VOCABULARY_FIT_ROWS = 100_000
"""Above this many articles the vocabulary and idf are fitted on this many evenly spaced ones."""
CHUNK_ROWS = 5_000
"""Articles per worker task: a few tens of MB of text and rows in flight per worker."""

_fitted: TfidfVectorizer | None = None
"""The vectorizer forked workers inherit (set just before the pool forks them)."""


@dataclass
class Vectorised:
    """What the pass produced."""

    vectorizer: TfidfVectorizer
    tfidf: sp.csr_matrix
    """L2-normalised float32 TF-IDF rows."""
    counts: sp.csr_matrix | None
    """Hashed full-vocabulary unigram counts (textvectors.duplicate_counts), or None."""


def vectorise(
    articles: list[Article],
    vectorizer: TfidfVectorizer,
    title_weight: int,
    *,
    duplicates: bool = True,
    release_text: bool = False,
    n_jobs: int = 2,
    progress: bool = False,
    fit_rows: int = VOCABULARY_FIT_ROWS,
    chunk_rows: int = CHUNK_ROWS,
) -> Vectorised:
    """Fit `vectorizer` (unfitted) and transform every article; see the module doc."""
    n = len(articles)
    if n <= fit_rows:
        texts = [document_text(a, title_weight) for a in articles]
        tfidf = vectorizer.fit_transform(texts)
        counts = (
            duplicate_counts(_duplicate_texts(articles, texts, title_weight))
            if duplicates
            else None
        )
        del texts
        _drop_pruned_terms(vectorizer)
        if release_text:
            _release(articles, 0, n)
        return Vectorised(vectorizer, sp.csr_matrix(tfidf, dtype=np.float32), counts)
    sample = np.unique(np.linspace(0, n - 1, fit_rows).astype(np.int64))
    # A generator: the sampled texts are tokenised as they are made, never held all at once.
    sampled = (document_text(articles[i], title_weight) for i in sample.tolist())
    vectorizer.fit(tqdm(sampled, total=len(sample), desc="vocabulary", unit="art",
                        disable=not progress))  # fmt: skip
    _drop_pruned_terms(vectorizer)
    release_memory()  # the fit's garbage: GBs of n-gram strings
    parts = list(_transform_chunks(articles, vectorizer, title_weight, duplicates,
                                   release_text, n_jobs, progress, chunk_rows))  # fmt: skip
    tfidf = _vstack([p[0] for p in parts])
    counts = _vstack([p[1] for p in parts]) if duplicates else None
    return Vectorised(vectorizer, tfidf, counts)


def _drop_pruned_terms(vectorizer: TfidfVectorizer) -> None:
    """scikit-learn keeps every term min_df/max_df pruned, for introspection only (its docs say
    it may be deleted): tens of millions of bigrams at a million articles."""
    vectorizer.stop_words_ = None


def _duplicate_texts(articles: Sequence[Article], texts: list[str], title_weight: int) -> list[str]:
    """What near-duplicate counts read: the title once, so `texts` itself when that is how
    they were built."""
    return texts if title_weight == 1 else [document_text(a, 1) for a in articles]


def _release(articles: list[Article], start: int, stop: int) -> None:
    """Drop the bodies of articles[start:stop] (everything else is kept)."""
    for i in range(start, stop):
        articles[i] = replace(articles[i], body="")


Chunk = tuple[sp.csr_matrix, sp.csr_matrix | None]


def _transform_texts(texts: list[str], duplicate_texts: list[str] | None) -> Chunk:
    """One chunk, in a worker: TF-IDF rows and optionally hashed counts."""
    assert _fitted is not None, "workers are forked after the vectorizer is fitted"
    tfidf = sp.csr_matrix(_fitted.transform(texts), dtype=np.float32)
    return tfidf, None if duplicate_texts is None else duplicate_counts(duplicate_texts)


def _transform_chunks(
    articles: list[Article],
    vectorizer: TfidfVectorizer,
    title_weight: int,
    duplicates: bool,
    release_text: bool,
    n_jobs: int,
    progress: bool,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Chunks in order, transformed by forked workers (in this process where fork is missing),
    at most 2 per worker in flight so pending texts stay small."""
    global _fitted
    n = len(articles)
    starts = range(0, n, chunk_rows)
    bar = tqdm(total=n, desc="vectorise", unit="art", disable=not progress)

    def texts(start: int) -> tuple[list[str], list[str] | None]:
        stop = min(start + chunk_rows, n)
        own = [document_text(a, title_weight) for a in articles[start:stop]]
        dup = _duplicate_texts(articles[start:stop], own, title_weight) if duplicates else None
        if release_text:
            _release(articles, start, stop)
            trim_heap()  # the bodies' pages go back now, not after the last chunk
        return own, dup

    _fitted = vectorizer
    try:
        if n_jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            for start in starts:
                yield _transform_texts(*texts(start))
                bar.update(min(chunk_rows, n - start))
            return
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=context) as pool:
            pending: list[Future[Chunk]] = []
            queued = iter(starts)
            for start in queued:
                pending.append(pool.submit(_transform_texts, *texts(start)))
                if len(pending) >= 2 * n_jobs:
                    break
            while pending:
                chunk = pending.pop(0).result()
                bar.update(chunk[0].shape[0])
                following = next(queued, None)
                if following is not None:
                    pending.append(pool.submit(_transform_texts, *texts(following)))
                yield chunk
    finally:
        _fitted = None
        bar.close()


def _vstack(parts: Sequence[sp.csr_matrix | None]) -> sp.csr_matrix:
    """Stack csr chunks, freeing each chunk's arrays as soon as they are copied: the peak is the
    result plus one chunk, not twice the whole (np.concatenate needs every part alive)."""
    chunks = [p for p in parts if p is not None]
    width = chunks[0].shape[1]
    lengths = np.concatenate([[0]] + [np.diff(c.indptr) for c in chunks])
    indptr: NDArray[np.int64] = np.cumsum(lengths, dtype=np.int64)
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=chunks[0].data.dtype)
    at = 0
    for n, c in enumerate(chunks, 1):
        indices[at : at + c.nnz], data[at : at + c.nnz] = c.indices, c.data
        at += c.nnz
        c.indices, c.data = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=c.data.dtype)
        if n % 16 == 0:
            # Chunks of a few MB sit in the heap (glibc raises its mmap threshold as it goes),
            # so freeing them returns nothing to the OS until the heap is trimmed.
            trim_heap()
    trim_heap()
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, width))
