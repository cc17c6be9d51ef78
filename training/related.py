"""Related articles: TF-IDF blended with LSA, and each article's top-K by exact similarity.

Similarity is (1 - w) * TF-IDF cosine + w * LSA cosine (w = `lsa_weight`), the LSA part fitted
on rows expanded by pseudo-relevance feedback (see recommender/textvectors.py). It is computed
a block of rows at a time (sparse block x sparse corpus, plus dense block x dense corpus), so
memory stays at one dense block, never N x N. Near-duplicates are found on a separate
full-vocabulary representation (training/duplicates.py); only the earliest member of a
duplicate group is a candidate, and never for its own group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm import tqdm

from recommender.domain import Article
from recommender.textmodel import document_text
from recommender.textvectors import blend_scales, feedback_rows, lsa_from_raw, lsa_raw
from training.duplicates import (
    block_rows,
    duplicate_groups,
    duplicate_pairs,
    earliest_members,
    fit_duplicate_vectors,
)
from training.neighbours import search

__all__ = ["duplicate_groups"]  # re-exported for callers of the older API

LETTERS_ONLY = r"(?u)\b[^\W\d_][^\W\d_]+\b"
LSA_FIT_ROWS = 20_000
"""The SVD is fitted on at most this many evenly spaced articles, then applied to all."""
DAY = 86_400.0


@dataclass(frozen=True)
class RelatedParams:
    """How text becomes vectors and how many neighbours to keep. Defaults chosen with
    `newsrec tune --grid examples/tune-related.toml` (see the README)."""

    title_weight: int = 1
    sublinear_tf: bool = True
    stop_words: str | None = "english"
    ngram_max: int = 2
    min_df: int = 2
    max_df: float = 0.5
    letters_only: bool = True
    lsa_weight: float = 0.5
    """Share of the LSA (TruncatedSVD) cosine in the similarity; 0 = TF-IDF only."""
    lsa_dims: int = 100
    lsa_max_terms: int = 50_000
    """LSA uses only this many most frequent terms: bounds the saved components (dims x terms)."""
    prf_neighbours: int = 10
    """Pseudo-relevance feedback for the LSA part: add the mean of this many nearest articles'
    TF-IDF rows (0 = off; no effect when lsa_weight is 0)."""
    prf_weight: float = 1.0
    """Weight of that mean against the article's own row."""
    top_k: int = 50
    duplicate_threshold: float = 0.9
    """Articles at least this similar on the full-vocabulary representation are the same story
    republished: a list shows one story once (above 1 turns detection off)."""
    recency_window_days: float = 0.0
    """Only candidates published within this many days of the article (0 = off)."""
    recency_half_life_days: float = 0.0
    """Scores halve per this many days between article and candidate (0 = off)."""

    def __post_init__(self) -> None:
        checks = {
            "title_weight >= 0": self.title_weight >= 0,
            "ngram_max >= 1": self.ngram_max >= 1,
            "min_df >= 1": self.min_df >= 1,
            "0 < max_df <= 1": 0 < self.max_df <= 1,
            "0 <= lsa_weight <= 1": 0 <= self.lsa_weight <= 1,
            "lsa_dims >= 1": self.lsa_dims >= 1,
            "lsa_max_terms >= 2": self.lsa_max_terms >= 2,
            "prf_neighbours >= 0": self.prf_neighbours >= 0,
            "prf_weight >= 0": self.prf_weight >= 0,
            "top_k >= 1": self.top_k >= 1,
            "duplicate_threshold > 0": self.duplicate_threshold > 0,
            "recency_window_days >= 0": self.recency_window_days >= 0,
            "recency_half_life_days >= 0": self.recency_half_life_days >= 0,
        }
        broken = [rule for rule, ok in checks.items() if not ok]
        if broken:
            raise ValueError(f"related parameters out of range: need {', '.join(broken)}")

    def as_dict(self) -> dict[str, object]:
        """Plain values for the manifest."""
        return asdict(self)


def make_vectorizer(params: RelatedParams, n_docs: int) -> TfidfVectorizer:
    """An unfitted vectorizer; min_df is capped so tiny corpora keep a vocabulary."""
    return TfidfVectorizer(
        sublinear_tf=params.sublinear_tf,
        stop_words=params.stop_words,
        ngram_range=(1, params.ngram_max),
        min_df=min(params.min_df, max(1, n_docs // 10)),
        max_df=params.max_df if n_docs >= 20 else 1.0,
        token_pattern=LETTERS_ONLY if params.letters_only else r"(?u)\b\w\w+\b",
        dtype=np.float32,
    )


def fit_transform(
    articles: Sequence[Article], params: RelatedParams
) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """Fit TF-IDF on the corpus; rows of the result are L2-normalised article vectors."""
    texts = [document_text(a, params.title_weight) for a in articles]
    vectorizer = make_vectorizer(params, len(texts))
    matrix = vectorizer.fit_transform(texts)
    return vectorizer, sp.csr_matrix(matrix, dtype=np.float32)


@dataclass(frozen=True)
class Lsa:
    """A fitted LSA part: feedback neighbours, the vocabulary columns read, the components, and
    the resulting L2-normalised rows of the corpus."""

    feedback: NDArray[np.int32]
    """Shape (articles, prf_neighbours): each article's TF-IDF neighbours (-1 = none)."""
    terms: NDArray[np.int32]
    components: NDArray[np.float32]
    """Shape (dims, len(terms))."""
    vectors: NDArray[np.float32]
    raw: NDArray[np.float32]
    """Unnormalised projections without feedback: what live upserts add feedback from."""


def fit_lsa(matrix: sp.csr_matrix, params: RelatedParams, progress: bool = False) -> Lsa | None:
    """TruncatedSVD of the feedback-expanded TF-IDF rows over the most frequent terms; None
    when w = 0 or the corpus is too small to reduce."""
    if params.lsa_weight == 0:
        return None
    n_docs, n_terms = matrix.shape
    df = np.bincount(matrix.indices, minlength=n_terms)
    terms = np.sort(np.argsort(-df, kind="stable")[: params.lsa_max_terms]).astype(np.int32)
    dims = min(params.lsa_dims, len(terms) - 1, n_docs - 1)
    if dims < 1:
        return None
    if params.prf_neighbours > 0 and params.prf_weight > 0:
        feedback = top_candidates(matrix, params.prf_neighbours, progress=progress).indices
    else:
        feedback = np.zeros((n_docs, 0), dtype=np.int32)
    sample = np.unique(np.linspace(0, n_docs - 1, min(n_docs, LSA_FIT_ROWS)).astype(np.int64))
    # Only the sampled rows are expanded: an expanded row holds its neighbours' terms too, so
    # expanding the whole corpus would multiply its size by about the number of neighbours.
    expanded = feedback_rows(matrix[sample], feedback[sample], matrix, params.prf_weight)
    svd = TruncatedSVD(dims, algorithm="randomized", random_state=0)
    svd.fit(expanded[:, terms])
    components = svd.components_.astype(np.float32)
    raw = lsa_raw(matrix, terms, components)
    vectors = lsa_from_raw(raw, raw, feedback, params.prf_weight if len(feedback.T) else 0.0)
    return Lsa(feedback, terms, components, vectors, raw)


@dataclass
class ArticleVectors:
    """Rows whose dot products are the blended similarity: a scaled sparse TF-IDF part and an
    optional scaled dense LSA part (the concatenation, kept in two pieces so that the dense
    columns never enter a sparse product)."""

    sparse: sp.csr_matrix
    dense: NDArray[np.float32] | None = None
    _sparse_t: sp.csc_matrix | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.sparse.shape[0])

    def block(self, start: int, stop: int) -> NDArray[np.float32]:
        """Similarities of rows start:stop to every row, as a dense array."""
        if self._sparse_t is None:
            self._sparse_t = self.sparse.T.tocsc()
        sims = np.asarray((self.sparse[start:stop] @ self._sparse_t).toarray(), dtype=np.float32)
        if self.dense is not None:
            sims += self.dense[start:stop] @ self.dense.T
        return sims


def article_vectors(matrix: sp.csr_matrix, lsa: Lsa | None, lsa_weight: float) -> ArticleVectors:
    """The search rows for TF-IDF rows and a fitted LSA (or TF-IDF alone)."""
    if lsa is None:
        return ArticleVectors(matrix)
    tfidf_scale, lsa_scale = blend_scales(lsa_weight)
    dense = lsa.vectors * np.float32(lsa_scale)
    return ArticleVectors(sp.csr_matrix(matrix * np.float32(tfidf_scale)), dense)


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
        known = ~np.isnan(gap)
        if self.half_life_days > 0:
            block *= np.where(known, np.exp2(-np.where(known, gap, 0) / self.half_life_days), 1)
        if self.window_days > 0:
            block[known & (gap > self.window_days)] = -1.0


def recency_of(articles: Sequence[Article], params: RelatedParams) -> Recency | None:
    """The recency rules of params, or None when both are off."""
    if params.recency_window_days == 0 and params.recency_half_life_days == 0:
        return None
    dates = np.array([math.nan if a.published_at is None else a.published_at for a in articles])
    return Recency(dates, params.recency_window_days, params.recency_half_life_days)


@dataclass
class Neighbours:
    """Top candidates per article, best first (index -1 = none)."""

    indices: NDArray[np.int32]
    scores: NDArray[np.float32]


def top_of_block(block: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[Any]]:
    """Column indices and values of each row's k largest entries, best first (ties: lower index)."""
    top = np.argpartition(-block, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(block, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


def top_candidates(
    vectors: ArticleVectors | sp.csr_matrix,
    k: int,
    allowed: NDArray[np.bool_] | None = None,
    recency: Recency | None = None,
    progress: bool = False,
) -> Neighbours:
    """Top-k per row by similarity (self excluded; only `allowed` columns if given).

    Without recency rules this is training/neighbours.search: exact below 20k articles, pruned
    candidates rescored exactly above (sub-quadratic). Recency rules need every pair's dates,
    so they keep the exact blocked product.
    """
    if isinstance(vectors, sp.spmatrix | sp.sparray):
        vectors = ArticleVectors(sp.csr_matrix(vectors))
    n = len(vectors)
    k = max(0, min(k, n - 1))
    if recency is None and k > 0:
        found = search(vectors.sparse, k, vectors.dense, None, allowed=allowed, progress=progress)
        return Neighbours(indices=found[0], scores=found[1])
    indices = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float32)
    step = block_rows(n)
    for start in tqdm(range(0, n, step), desc="related", unit="block", disable=not progress):
        stop = min(start + step, n)
        if k == 0:
            break
        block = vectors.block(start, stop)
        if recency is not None:
            recency.apply(block, start, stop)
        if allowed is not None:
            block[:, ~allowed] = -1.0
        rows = np.arange(stop - start)
        block[rows, rows + start] = -1.0  # never the article itself
        top, top_scores = top_of_block(block, k)
        valid = top_scores > 0
        indices[start:stop] = np.where(valid, top, -1)
        scores[start:stop] = np.where(valid, top_scores, 0.0)
    return Neighbours(indices=indices, scores=scores)


def related_lists(
    neighbours: Neighbours, groups: NDArray[np.int64], top_k: int
) -> list[list[tuple[int, float]]]:
    """Per article: up to top_k (index, score), best first, one article per duplicate group and
    none from the article's own group (the same story republished is not 'related')."""
    result: list[list[tuple[int, float]]] = []
    for row, (idx, sc) in enumerate(zip(neighbours.indices, neighbours.scores, strict=True)):
        seen = {int(groups[row])}
        chosen: list[tuple[int, float]] = []
        for j, s in zip(idx.tolist(), sc.tolist(), strict=True):
            if j < 0:
                break
            group = int(groups[j])
            if group in seen:
                continue
            seen.add(group)
            chosen.append((j, s))
            if len(chosen) == top_k:
                break
        result.append(chosen)
    return result


@dataclass
class RelatedModel:
    """What the related stage produced: the text model, the lists and the arrays to save."""

    vectorizer: TfidfVectorizer
    matrix: sp.csr_matrix
    """L2-normalised TF-IDF rows (the LSA part is recomputed from them and the saved arrays)."""
    lists: list[list[tuple[int, float]]]
    arrays: dict[str, NDArray[Any]]
    lsa: Lsa | None = None
    lsa_weight: float = 0.0
    prf_weight: float = 0.0

    def serving_arrays(self) -> dict[str, NDArray[Any]]:
        """What a server needs beside the TF-IDF rows to place an upserted article exactly as
        training would: the LSA projection, every article's raw and final LSA rows, and the
        blend and feedback settings."""
        if self.lsa is None:
            return {}
        return {
            "lsa_terms": self.lsa.terms,
            "lsa_components": self.lsa.components,
            "lsa_raw": self.lsa.raw,
            "lsa_vectors": self.lsa.vectors,
            "lsa_settings": np.asarray(
                [self.lsa_weight, self.lsa.feedback.shape[1], self.prf_weight], dtype=np.float64
            ),
        }


def fit_related(
    articles: Sequence[Article], params: RelatedParams, candidates: int, progress: bool = False
) -> RelatedModel:
    """The training path: vectors, near-duplicate groups, neighbours and per-article lists."""
    vectorizer, matrix = fit_transform(articles, params)
    lsa = fit_lsa(matrix, params, progress)
    dup_vectors, dup_idf = fit_duplicate_vectors(articles)
    pairs = (
        duplicate_pairs(dup_vectors, params.duplicate_threshold, progress)
        if params.duplicate_threshold <= 1
        else np.zeros((0, 2), dtype=np.int32)
    )
    groups = duplicate_groups(len(articles), pairs)
    shown = earliest_members(articles, groups)
    neighbours = top_candidates(
        article_vectors(matrix, lsa, params.lsa_weight),
        candidates,
        allowed=shown,
        recency=recency_of(articles, params),
        progress=progress,
    )
    arrays: dict[str, NDArray[Any]] = {
        "ids": np.asarray([a.id for a in articles]),
        "indices": neighbours.indices,
        "scores": neighbours.scores,
        "duplicate_pairs": pairs,
        "duplicate_shown": shown,
        "duplicate_idf": dup_idf,
    }
    if lsa is not None:
        arrays["lsa_terms"], arrays["lsa_components"] = lsa.terms, lsa.components
        arrays["prf_neighbours"] = lsa.feedback
    lists = related_lists(neighbours, groups, params.top_k)
    return RelatedModel(
        vectorizer, matrix, lists, arrays, lsa, params.lsa_weight, params.prf_weight
    )
