"""Related articles: TF-IDF blended with LSA and a sentence embedding, and each article's top-K
by that similarity.

Similarity is (1 - e) * [(1 - w) * TF-IDF cosine + w * LSA cosine] + e * embedding cosine
(w = `lsa_weight`, e = `embedding_weight`; see recommender/similarity.py), the LSA part
fitted on rows expanded by pseudo-relevance feedback (training/related/lsa.py), the embeddings
encoded once per article text (training/related/embeddings.py). Near-duplicates are found on
a separate full-vocabulary representation (training/related/duplicates.py); only the earliest
member of a duplicate group is a candidate, and never for its own group; a list shows a
headline once and never the article's own (training/related/lists.py). The neighbour search
is training/search/.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.domain import Article
from recommender.similarity import Shares, blend_scales, dense_rows
from recommender.textmodel import FORMAT
from training.memory import release_memory
from training.related.duplicates import (
    duplicate_groups,
    duplicate_pairs,
    duplicate_vectors_of,
    earliest_members,
)
from training.related.embedding_part import EmbeddingPart, fit_embedding_part
from training.related.embeddings import default_store, embed_articles
from training.related.lists import (
    CandidateLists,
    Neighbours,
    RelatedLists,
    related_lists,
    title_ids,
)
from training.related.lsa import Lsa, fit_lsa
from training.related.params import RelatedParams, make_vectorizer
from training.related.vectorise import vectorise
from training.search.neighbours import search

CANDIDATE_MARGIN = 10
"""Extra neighbours searched so that dropping near-duplicates and repeated headlines still
leaves top_k."""
DAY = 86_400.0


@dataclass
class ArticleVectors:
    """The blended similarity's two parts: L2-normalised TF-IDF rows and an optional dense
    part (LSA and embedding rows side by side, recommender.similarity.dense_rows) with its
    weight w; similarity = (1 - w) * sparse dot + w * dense dot. The parts are kept apart
    (the dense columns never enter a sparse product) and the TF-IDF rows are never copied
    scaled (a scaled copy is 2.4 GB at a million articles)."""

    sparse: sp.csr_matrix
    dense: NDArray[np.float32] | None = None
    weight: float = 0.0
    """Share of the dense part (0 without one)."""

    def __len__(self) -> int:
        return int(self.sparse.shape[0])

    def scaled(self) -> tuple[sp.csr_matrix, NDArray[np.float32] | None]:
        """Copies scaled so that plain dot products of their concatenated rows are the blended
        similarity (for brute-force references)."""
        if self.dense is None:
            return self.sparse, None
        tfidf_scale, dense_scale = blend_scales(self.weight)
        return (
            sp.csr_matrix(self.sparse * np.float32(tfidf_scale)),
            self.dense * np.float32(dense_scale),
        )


def article_vectors(
    matrix: sp.csr_matrix,
    lsa: Lsa | None,
    lsa_weight: float,
    embeddings: NDArray[np.float32] | None = None,
    embedding_weight: float = 0.0,
) -> ArticleVectors:
    """The search rows for TF-IDF rows, a fitted LSA and embeddings (either may be absent)."""
    shares = blend_shares(lsa, lsa_weight, embeddings, embedding_weight)
    dense = dense_rows(shares, None if lsa is None else lsa.vectors, embeddings)
    if dense is None:
        return ArticleVectors(matrix)
    return ArticleVectors(matrix, dense, shares.dense)


def blend_shares(
    lsa: Lsa | None,
    lsa_weight: float,
    embeddings: NDArray[np.float32] | None,
    embedding_weight: float,
) -> Shares:
    """The blend's shares, counting a part that was not fitted (a tiny corpus has no LSA) as 0."""
    return Shares.of(
        lsa_weight if lsa is not None else 0.0,
        embedding_weight if embeddings is not None else 0.0,
    )


@dataclass(frozen=True)
class Recency:
    """Optional time rules for candidates; articles without a date are never affected."""

    dates: NDArray[np.float64]
    """Epoch seconds per article, NaN when unknown."""
    window_days: float = 0.0
    half_life_days: float = 0.0

    def apply(self, block: NDArray[np.float32], start: int, stop: int) -> None:
        """Exclude candidates outside the window and decay scores by the time gap, in place."""
        gap = np.abs(self.dates[start:stop, None] - self.dates[None, :]) / DAY
        if self.half_life_days > 0:
            block *= self._decay(gap)
        if self.window_days > 0:
            block[~np.isnan(gap) & (gap > self.window_days)] = -1.0

    def factors(self, rows: NDArray[np.int64], cols: NDArray[np.int64]) -> NDArray[np.float64]:
        """The factor `apply` multiplies each (row, col) pair's score by."""
        if self.half_life_days <= 0:
            return np.ones(len(rows))
        return self._decay(np.abs(self.dates[rows] - self.dates[cols]) / DAY)

    def _decay(self, gap_days: NDArray[np.float64]) -> NDArray[np.float64]:
        """2^(-gap / half-life); 1 where either date is unknown (NaN gap)."""
        known = ~np.isnan(gap_days)
        return np.where(known, np.exp2(-np.where(known, gap_days, 0) / self.half_life_days), 1)


def neighbours(
    vectors: ArticleVectors | sp.csr_matrix,
    k: int,
    allowed: NDArray[np.bool_] | None = None,
    recency: Recency | None = None,
    progress: bool = False,
    **knobs: Any,
) -> Neighbours:
    """Top-k per article by the blended similarity (itself excluded; only `allowed` candidates
    if given): training/search/neighbours.search, exact under recency rules (they need every
    pair's dates)."""
    if isinstance(vectors, sp.spmatrix | sp.sparray):
        vectors = ArticleVectors(sp.csr_matrix(vectors))
    k = max(0, min(k, len(vectors) - 1))
    adjust = None if recency is None else recency.apply
    found = search(vectors.sparse, k, vectors.dense, vectors.weight, allowed=allowed,
                   adjust=adjust, progress=progress, **knobs)  # fmt: skip
    return Neighbours(indices=found[0], scores=found[1])


def recency_of(articles: Sequence[Article], params: RelatedParams) -> Recency | None:
    """The recency rules of params, or None when both are off."""
    if params.recency_window_days == 0 and params.recency_half_life_days == 0:
        return None
    dates = np.array([math.nan if a.published_at is None else a.published_at for a in articles])
    return Recency(dates, params.recency_window_days, params.recency_half_life_days)


@dataclass
class RelatedModel:
    """What the related stage produced: the text model, the lists and the arrays to save."""

    vectorizer: TfidfVectorizer
    matrix: sp.csr_matrix
    """L2-normalised TF-IDF rows (the LSA part is recomputed from them and the saved arrays)."""
    lists: RelatedLists
    arrays: dict[str, NDArray[Any]]
    lsa: Lsa | None = None
    lsa_weight: float = 0.0
    prf_weight: float = 0.0
    embedding: EmbeddingPart | None = None
    embedding_params: RelatedParams | None = None

    def serving_arrays(self) -> dict[str, NDArray[Any]]:
        """What a server needs beside the TF-IDF rows to place an upserted article exactly as
        training would: the LSA projection, every article's raw and final LSA rows, the
        embeddings and their model's name, and the blend and feedback settings."""
        arrays: dict[str, NDArray[Any]] = {}
        if self.embedding is not None and self.embedding_params is not None:
            p = self.embedding_params
            arrays["embedding_raw"] = self.embedding.raw
            arrays["embedding_vectors"] = self.embedding.vectors
            arrays["embedding_settings"] = np.asarray(
                [p.embedding_weight, self.embedding.feedback.shape[1], p.embedding_prf_weight,
                 p.embedding_prf_blend], dtype=np.float64)  # fmt: skip
            arrays["embedding_model"] = np.asarray([p.embedding_model])
        if self.lsa is None:
            return arrays
        return arrays | {
            "lsa_terms": self.lsa.terms,
            "lsa_components": self.lsa.components,
            "lsa_raw": self.lsa.raw,
            "lsa_vectors": self.lsa.vectors,
            "lsa_settings": np.asarray(
                [self.lsa_weight, self.lsa.feedback.shape[1], self.prf_weight], dtype=np.float64
            ),
        }


def fit_related(
    articles: Sequence[Article],
    params: RelatedParams,
    candidates: int,
    progress: bool = False,
    release_text: bool = False,
    embeddings: NDArray[np.float32] | None = None,
) -> RelatedModel:
    """The training path: vectors, near-duplicate groups, neighbours and per-article lists.
    With release_text, bodies are dropped from `articles` once vectorised (if it is a list).
    `embeddings` (one row per article) are blended in when params.embedding_weight > 0."""
    embeddings = _embeddings_for(articles, embeddings, params, progress)
    if not isinstance(articles, list):
        articles = list(articles)
    fitted = vectorise(articles, make_vectorizer(params, len(articles)), params.title_weight,
                       release_text=release_text, progress=progress)  # fmt: skip
    vectorizer, matrix = fitted.vectorizer, fitted.tfidf
    assert fitted.counts is not None
    dup_vectors, dup_idf = duplicate_vectors_of(fitted.counts)
    fitted.counts = None  # weighted in place: the same arrays
    pairs = (
        duplicate_pairs(dup_vectors, params.duplicate_threshold, progress, params.search_shards)
        if params.duplicate_threshold <= 1
        else np.zeros((0, 2), dtype=np.int32)
    )
    del dup_vectors  # 1.2 GB at a million articles: gone before the LSA stage needs memory
    release_memory()
    lsa = fit_lsa(matrix, params, progress)
    embedding = (
        None if embeddings is None else fit_embedding_part(matrix, embeddings, params, progress)
    )
    groups = duplicate_groups(len(articles), pairs)
    shown = earliest_members(articles, groups)
    final = None if embedding is None else embedding.vectors
    found = neighbours(
        article_vectors(matrix, lsa, params.lsa_weight, final, params.embedding_weight),
        candidates,
        allowed=shown,
        recency=recency_of(articles, params),
        progress=progress,
        shards=params.search_shards,
    )
    release_memory()
    arrays: dict[str, NDArray[Any]] = {
        "ids": np.asarray([a.id for a in articles]),
        "indices": found.indices,
        "scores": found.scores,
        "duplicate_pairs": pairs,
        "duplicate_shown": shown,
        "duplicate_idf": dup_idf,
    }
    if lsa is not None:
        arrays["lsa_terms"], arrays["lsa_components"] = lsa.terms, lsa.components
        arrays["prf_neighbours"] = lsa.feedback
    titles = title_ids(a.title for a in articles)
    lists = related_lists(found, groups, params.top_k, titles=titles)
    return RelatedModel(
        vectorizer, matrix, lists, arrays, lsa, params.lsa_weight, params.prf_weight,
        embedding, params if embedding is not None else None,
    )  # fmt: skip


def _embeddings_for(
    articles: Sequence[Article],
    embeddings: NDArray[np.float32] | None,
    params: RelatedParams,
    progress: bool,
) -> NDArray[np.float32] | None:
    """The embeddings to blend: None when the blend is off; the given ones, else the default
    store's (encoding what it lacks), one row per article."""
    if params.embedding_weight == 0:
        return None
    if embeddings is None:
        embeddings, _ = embed_articles(articles, params.embedding_model, default_store(),
                                       progress)  # fmt: skip
    if len(embeddings) != len(articles):
        raise ValueError("embedding_weight > 0 needs one embedding row per article")
    return embeddings


def build_related(
    articles: list[Article],
    params: RelatedParams,
    progress: bool,
    release_text: bool = False,
    embeddings: NDArray[np.float32] | None = None,
) -> tuple[RelatedModel, CandidateLists]:
    """Fit TF-IDF (+ LSA, + embeddings) and turn neighbours into per-article candidate lists:
    the training job's related stage, which the workbench evaluates too. Embeddings not given
    are taken from the default store or encoded (training/related/embeddings.py). With
    release_text, article bodies are dropped from `articles` once vectorised."""
    model = fit_related(articles, params, params.top_k + CANDIDATE_MARGIN, progress,
                        release_text=release_text, embeddings=embeddings)  # fmt: skip
    return model, CandidateLists(articles, model.lists)


_SAVED_PARAMS = (
    "lowercase", "strip_accents", "stop_words", "token_pattern", "ngram_range", "analyzer",
    "sublinear_tf", "norm", "use_idf", "smooth_idf", "binary",
)  # fmt: skip
"""The vectorizer's parameters that are plain data and define its behaviour."""


def text_model_json(vectorizer: TfidfVectorizer, title_weight: int) -> bytes:
    """The fitted vectorizer as the JSON recommender.textmodel.TextModel reads (no pickle)."""
    params = {name: getattr(vectorizer, name) for name in _SAVED_PARAMS}
    if isinstance(params["stop_words"], frozenset | set):
        params["stop_words"] = sorted(params["stop_words"])
    elif params["stop_words"] is not None:
        params["stop_words"] = sorted(vectorizer.get_stop_words() or ())
    vocabulary = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
    data = {
        "format": FORMAT,
        "title_weight": title_weight,
        "params": params,
        "vocabulary": vocabulary,
        "idf": vectorizer.idf_.tolist(),
    }
    return json.dumps(data, separators=(",", ":")).encode()
