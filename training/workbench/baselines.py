"""Reference related-article methods measured beside ours in `newsrec eval related --baselines`:
scikit-learn's TfidfVectorizer() defaults, an Elasticsearch More-Like-This-style query (each
article's top terms by tf-idf, scored against every article with BM25), the sentence embedding
alone (the encoder's cosine, no blend, no feedback), and newsrec as shipped before the
embedding blend (TF-IDF + LSA, issue 14's starting point). Only the last drops near-duplicates;
all exclude the article itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from recommender.domain import Article
from recommender.textmodel import document_text
from training.related.embeddings import default_store, embed_articles
from training.related.model import ArticleVectors, build_related, neighbours
from training.related.params import RelatedParams
from training.search.blocks import run_blocks, top_k_sorted

BLOCK_BYTES = 256 << 20
"""Bytes of one dense block of scores."""

MLT_TERMS = 25
"""Elasticsearch's max_query_terms default."""
MLT_MIN_DOC_FREQ = 5
"""Elasticsearch's min_doc_freq default: rarer terms are not query terms."""
BM25_K1, BM25_B = 1.2, 0.75


def _texts(articles: Sequence[Article]) -> list[str]:
    return [document_text(a, 1) for a in articles]


def sklearn_defaults(articles: Sequence[Article], k: int) -> NDArray[np.int32]:
    """Top-k by cosine of TfidfVectorizer() with every parameter at its default."""
    matrix = sp.csr_matrix(TfidfVectorizer(dtype=np.float32).fit_transform(_texts(articles)))
    return neighbours(matrix, k).indices


def bm25_weights(counts: sp.csr_matrix) -> sp.csr_matrix:
    """BM25 term weights per document (Lucene's idf and length normalisation)."""
    n_docs = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths / max(lengths.mean(), 1e-9))
    weights = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    row_norm = np.repeat(norm, np.diff(weights.indptr))
    weights.data = weights.data * (BM25_K1 + 1) / (weights.data + row_norm) * idf[weights.indices]
    return weights


def mlt_query_terms(counts: sp.csr_matrix, terms: int = MLT_TERMS) -> sp.csr_matrix:
    """Per document, an indicator of its `terms` highest tf x idf terms (Lucene classic idf)."""
    n_docs = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = 1.0 + np.log(n_docs / (df + 1.0))
    scored = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    scored.data = scored.data * idf[scored.indices] * (df[scored.indices] >= MLT_MIN_DOC_FREQ)
    scored.eliminate_zeros()
    rows, cols = [], []
    for i in range(n_docs):
        start, stop = scored.indptr[i], scored.indptr[i + 1]
        best = np.argsort(-scored.data[start:stop], kind="stable")[:terms]
        cols.append(scored.indices[start:stop][best])
        rows.append(np.full(len(best), i))
    row_idx, col_idx = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(row_idx)), (row_idx, col_idx)), shape=counts.shape)


def more_like_this(articles: Sequence[Article], k: int) -> NDArray[np.int32]:
    """Top-k by an ES More-Like-This-style query: top-25 terms of the article, BM25 scores."""
    counts = sp.csr_matrix(CountVectorizer(stop_words="english").fit_transform(_texts(articles)))
    queries = mlt_query_terms(counts)
    corpus_t = bm25_weights(counts).T.tocsc()
    n = counts.shape[0]
    k = max(1, min(k, n - 1))
    indices = np.full((n, k), -1, dtype=np.int32)
    step = max(1, min(4096, BLOCK_BYTES // (4 * n)))
    done = run_blocks(partial(_mlt_block, k=k), (queries, corpus_t), n, step, 1,
                      "More-Like-This", False)  # fmt: skip
    for start, stop, found in done:
        indices[start:stop] = found
    return indices


def _mlt_block(
    queries: sp.csr_matrix, corpus_t: sp.csc_matrix, start: int, stop: int, k: int
) -> NDArray[np.int64]:
    """Rows start:stop's top k by BM25 score (a task of run_blocks)."""
    block = np.asarray((queries[start:stop] @ corpus_t).toarray(), dtype=np.float32)
    block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not itself
    columns = np.broadcast_to(np.arange(corpus_t.shape[1], dtype=np.int64), block.shape)
    return top_k_sorted(columns, block, k)[0]


def embedding_alone(articles: Sequence[Article], k: int) -> NDArray[np.int32]:
    """Top-k by the shipped encoder's cosine alone (vectors from the default store)."""
    rows, _ = embed_articles(articles, RelatedParams().embedding_model, default_store())
    empty = sp.csr_matrix((len(articles), 1), dtype=np.float32)
    return neighbours(ArticleVectors(empty, rows, 1.0), k, method="exact").indices


def before_embeddings(articles: Sequence[Article], k: int) -> NDArray[np.int32]:
    """The shipped lists before the embedding blend: TF-IDF + LSA with today's other defaults."""
    params = replace(RelatedParams(), embedding_weight=0.0, top_k=k)
    _, lists = build_related(list(articles), params, progress=False)
    index = {a.id: n for n, a in enumerate(articles)}
    found = np.full((len(articles), k), -1, dtype=np.int32)
    for row, chosen in enumerate(lists):
        ids = [index[article_id] for article_id, _, _ in chosen][:k]
        found[row, : len(ids)] = ids
    return found


BASELINES: dict[str, Callable[[Sequence[Article], int], NDArray[np.int32]]] = {
    "sklearn TfidfVectorizer() defaults": sklearn_defaults,
    "More-Like-This style (top-25 terms, BM25)": more_like_this,
    "embedding alone (all-MiniLM-L6-v2 cosine)": embedding_alone,
    "newsrec before the embedding blend": before_embeddings,
}
