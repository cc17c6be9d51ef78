"""Articles to vectors at scale: TF-IDF rows and the hashed counts that near-duplicate search
reads, from one pass over the texts (training/related/termcount.py: scikit-learn's output, faster).

Up to VOCABULARY_FIT_ROWS articles, the TF-IDF vocabulary and idf are fitted on every article.
Above that they are fitted on that many evenly spaced articles: a fit holds every distinct
token and n-gram code of its texts before min_df prunes them. At 100k sampled articles a term
needs two sampled documents to enter the vocabulary, so the terms lost are the rarest, whose
weight in a cosine is small anyway; the idf is an estimate from 100k documents. Then every
article is transformed, a chunk at a time, in worker processes (tokenising is Python: one core
per process), or on the dask cluster in use (training/compute.py): the fitted counter is sent to
each worker once, each chunk's texts to one worker.

Workers are spawned, not forked: a forked worker keeps every page the parent had when it
forked, so bodies the parent drops afterwards stayed resident in the workers (measured at 1M
articles: about 3.5 GB held twice over). With `release_text`, each article's body is dropped
(the list is updated in place) as soon as its chunk's texts are built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm import tqdm

from recommender.domain import Article
from recommender.textmodel import document_text
from training import compute
from training.memory import release_memory, trim_heap
from training.related import termcount

VOCABULARY_FIT_ROWS = 100_000
"""Above this many articles the vocabulary and idf are fitted on this many evenly spaced ones."""
CHUNK_ROWS = 5_000
"""Articles per worker task: a few tens of MB of text and rows in flight per worker."""


@dataclass
class Vectorised:
    """What the pass produced."""

    vectorizer: TfidfVectorizer
    tfidf: sp.csr_matrix
    """L2-normalised float32 TF-IDF rows."""
    counts: sp.csr_matrix | None
    """Hashed full-vocabulary unigram counts (duplicates.duplicate_counts), or None."""


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
    sample = np.unique(np.linspace(0, n - 1, min(n, fit_rows)).astype(np.int64))
    # A generator: the sampled texts are tokenised as they are made, never held all at once.
    sampled = (document_text(articles[i], title_weight) for i in sample.tolist())
    counter = termcount.fit(vectorizer, tqdm(sampled, total=len(sample), desc="vocabulary",
                                             unit="art", disable=not progress))  # fmt: skip
    release_memory()  # the fit's garbage: token names and codes of every sampled n-gram
    parts = list(_transform_chunks(articles, counter, title_weight, duplicates,
                                   release_text, n_jobs, progress, chunk_rows))  # fmt: skip
    tfidf = _vstack([p.tfidf for p in parts])
    counts = _vstack([p.duplicates for p in parts]) if duplicates else None
    return Vectorised(vectorizer, tfidf, counts)


def _release(articles: list[Article], start: int, stop: int) -> None:
    """Drop the bodies of articles[start:stop] (everything else is kept)."""
    for i in range(start, stop):
        articles[i] = replace(articles[i], body="")


def _count(counter: termcount.TermCounter, texts: list[str],
           duplicate_texts: list[str] | None, duplicates: bool) -> termcount.Counts:  # fmt: skip
    """One chunk (a task: it runs in a worker process or on a dask worker)."""
    return counter.count(texts, duplicate_texts, duplicates)


def _transform_chunks(
    articles: list[Article],
    counter: termcount.TermCounter,
    title_weight: int,
    duplicates: bool,
    release_text: bool,
    n_jobs: int,
    progress: bool,
    chunk_rows: int,
) -> Iterator[termcount.Counts]:
    """Chunks in order, counted by spawned workers or the dask cluster in use (in this process
    for a single chunk); at most 2 chunks per worker in flight (texts are made only as workers
    get to them)."""
    n = len(articles)
    starts = range(0, n, chunk_rows)

    def texts(start: int) -> tuple[list[str], list[str] | None, bool]:
        stop = min(start + chunk_rows, n)
        own = [document_text(a, title_weight) for a in articles[start:stop]]
        # Near-duplicate counts read the title once: `own` itself when that is how it is built.
        dup = None
        if duplicates and title_weight != 1:
            dup = [document_text(a, 1) for a in articles[start:stop]]
        if release_text:
            _release(articles, start, stop)
            trim_heap()  # the bodies' pages go back now, not after the last chunk
        return own, dup, duplicates

    with tqdm(total=n, desc="vectorise", unit="art", disable=not progress) as bar:
        if len(starts) <= 1 or (n_jobs <= 1 and not compute.on_a_cluster()):
            for start in starts:
                chunk = counter.count(*texts(start))
                bar.update(chunk.tfidf.shape[0])
                yield chunk
            return
        with compute.pool("processes", n_jobs) as pool:
            # The counter goes to each worker once (a file locally, a broadcast on a cluster).
            shared = [pool.share(counter)]
            for _, chunk in pool.map(_count, shared, map(texts, starts), ordered=True):
                bar.update(chunk.tfidf.shape[0])
                yield chunk


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
