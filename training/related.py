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
from typing import Any, overload

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm import tqdm

from recommender.domain import Article
from recommender.textvectors import blend_scales, feedback_rows, lsa_from_raw, lsa_raw
from training.duplicates import (
    block_rows,
    duplicate_groups,
    duplicate_pairs,
    duplicate_vectors_of,
    earliest_members,
)
from training.memory import release_memory
from training.neighbours import search
from training.termcount import LETTERS_ONLY, MAX_NGRAM, WORDS
from training.vectorise import vectorise

__all__ = ["duplicate_groups"]  # re-exported for callers of the older API

LSA_FIT_ROWS = 20_000
"""The SVD is fitted on at most this many evenly spaced articles, then applied to all."""
FEEDBACK_SEARCH: dict[str, Any] = {"candidates": 30, "expand": 0}
"""Pruned-search knobs of the feedback neighbours (20k+ articles): they only lend vocabulary to
the LSA part, so a lighter search than the lists' own (100 candidates and a second pass) does;
at 1M articles the default search took 10 minutes on 2 cores."""
FEEDBACK_BLOCK_ROWS = 2_000
"""Sampled rows expanded by feedback at a time."""
LSA_BLOCK_ROWS = 50_000
"""Rows projected at a time."""
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
            f"1 <= ngram_max <= {MAX_NGRAM}": 1 <= self.ngram_max <= MAX_NGRAM,
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
        token_pattern=LETTERS_ONLY if params.letters_only else WORDS,
        dtype=np.float32,
    )


def fit_transform(
    articles: Sequence[Article], params: RelatedParams
) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """Fit TF-IDF on the corpus; rows of the result are L2-normalised article vectors."""
    fitted = vectorise(
        list(articles), make_vectorizer(params, len(articles)), params.title_weight,
        duplicates=False,
    )  # fmt: skip
    return fitted.vectorizer, fitted.tfidf


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
        feedback = top_candidates(
            matrix, params.prf_neighbours, progress=progress, **FEEDBACK_SEARCH
        ).indices
        release_memory()  # the search's freed blocks: GBs of heap at a million articles
    else:
        feedback = np.zeros((n_docs, 0), dtype=np.int32)
    sample = np.unique(np.linspace(0, n_docs - 1, min(n_docs, LSA_FIT_ROWS)).astype(np.int64))
    # Only the sampled rows are expanded: an expanded row holds its neighbours' terms too, so
    # expanding the whole corpus would multiply its size by about the number of neighbours.
    # In blocks, each cut to the LSA terms at once: all 20k expanded at once (float64, every
    # term) raised RSS by 2.2 GB at a million articles.
    expanded = sp.vstack([
        feedback_rows(matrix[part], feedback[part], matrix, params.prf_weight)[:, terms]
        for part in np.array_split(sample, max(1, len(sample) // FEEDBACK_BLOCK_ROWS))
    ]).tocsr()  # fmt: skip
    svd = TruncatedSVD(dims, algorithm="randomized", random_state=0)
    svd.fit(expanded)
    components = svd.components_.astype(np.float32)
    # In blocks of rows: whole-corpus temporaries (the column subset, the gathered feedback
    # rows) would take several GB at a million articles.
    raw = np.empty((n_docs, dims), dtype=np.float32)
    vectors = np.empty((n_docs, dims), dtype=np.float32)
    weight = params.prf_weight if len(feedback.T) else 0.0
    for start in range(0, n_docs, LSA_BLOCK_ROWS):
        raw[start : start + LSA_BLOCK_ROWS] = lsa_raw(
            matrix[start : start + LSA_BLOCK_ROWS], terms, components
        )
    for start in range(0, n_docs, LSA_BLOCK_ROWS):
        stop = start + LSA_BLOCK_ROWS
        vectors[start:stop] = lsa_from_raw(raw[start:stop], raw, feedback[start:stop], weight)
    return Lsa(feedback, terms, components, vectors, raw)


@dataclass
class ArticleVectors:
    """The blended similarity's two parts, unscaled: L2-normalised TF-IDF rows and optional
    L2-normalised LSA rows with their weight w; similarity = (1 - w) * sparse dot + w * dense
    dot. The parts are kept apart (the dense columns never enter a sparse product) and never
    copied scaled (a scaled TF-IDF copy is 2.4 GB at a million articles)."""

    sparse: sp.csr_matrix
    dense: NDArray[np.float32] | None = None
    weight: float = 0.0
    """Share of the dense part (0 without one)."""
    _sparse_t: sp.csc_matrix | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.sparse.shape[0])

    def block(self, start: int, stop: int) -> NDArray[np.float32]:
        """Similarities of rows start:stop to every row, as a dense array."""
        if self._sparse_t is None:
            self._sparse_t = self.sparse.T.tocsc()
        sims = np.asarray((self.sparse[start:stop] @ self._sparse_t).toarray(), dtype=np.float32)
        if self.dense is not None:
            sims *= np.float32(1.0 - self.weight)
            sims += np.float32(self.weight) * (self.dense[start:stop] @ self.dense.T)
        return sims

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


def article_vectors(matrix: sp.csr_matrix, lsa: Lsa | None, lsa_weight: float) -> ArticleVectors:
    """The search rows for TF-IDF rows and a fitted LSA (or TF-IDF alone)."""
    if lsa is None:
        return ArticleVectors(matrix)
    return ArticleVectors(matrix, lsa.vectors, lsa_weight)


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
    **knobs: Any,
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
        found = search(vectors.sparse, k, vectors.dense, vectors.weight, allowed=allowed,
                       progress=progress, **knobs)  # fmt: skip
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
    articles: Sequence[Article],
    params: RelatedParams,
    candidates: int,
    progress: bool = False,
    release_text: bool = False,
) -> RelatedModel:
    """The training path: vectors, near-duplicate groups, neighbours and per-article lists.
    With release_text, bodies are dropped from `articles` once vectorised (if it is a list)."""
    if not isinstance(articles, list):
        articles = list(articles)
    fitted = vectorise(articles, make_vectorizer(params, len(articles)), params.title_weight,
                       release_text=release_text, progress=progress)  # fmt: skip
    vectorizer, matrix = fitted.vectorizer, fitted.tfidf
    assert fitted.counts is not None
    dup_vectors, dup_idf = duplicate_vectors_of(fitted.counts)
    fitted.counts = None  # weighted in place: the same arrays
    pairs = (
        duplicate_pairs(dup_vectors, params.duplicate_threshold, progress)
        if params.duplicate_threshold <= 1
        else np.zeros((0, 2), dtype=np.int32)
    )
    del dup_vectors  # 1.2 GB at a million articles: gone before the LSA stage needs memory
    release_memory()
    lsa = fit_lsa(matrix, params, progress)
    groups = duplicate_groups(len(articles), pairs)
    shown = earliest_members(articles, groups)
    neighbours = top_candidates(
        article_vectors(matrix, lsa, params.lsa_weight),
        candidates,
        allowed=shown,
        recency=recency_of(articles, params),
        progress=progress,
    )
    release_memory()
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
