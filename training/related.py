"""TF-IDF model and each article's top-K related articles by exact cosine similarity.

The similarity matrix is computed a block of rows at a time (sparse block x sparse corpus),
so memory stays at one dense block, never N x N.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm import tqdm

from recommender.domain import Article
from recommender.textmodel import document_text

LETTERS_ONLY = r"(?u)\b[^\W\d_][^\W\d_]+\b"


@dataclass(frozen=True)
class RelatedParams:
    """How text becomes vectors and how many neighbours to keep."""

    title_weight: int = 3
    sublinear_tf: bool = True
    stop_words: str | None = "english"
    ngram_max: int = 2
    min_df: int = 2
    max_df: float = 0.5
    letters_only: bool = True
    top_k: int = 50
    duplicate_threshold: float = 0.9
    """Candidates at least this similar to the article, or to a better candidate, are the same
    story republished: a list shows one story once."""

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


def _block_rows(n_docs: int, budget_bytes: int = 256 << 20) -> int:
    """Rows per block so one dense block of float32 similarities fits the budget."""
    return int(max(1, min(4096, budget_bytes // (4 * max(n_docs, 1)))))


@dataclass
class Neighbours:
    """Top candidates per article (index -1 = none) and near-duplicate pairs found on the way."""

    indices: NDArray[np.int32]
    scores: NDArray[np.float32]
    duplicate_pairs: NDArray[np.int32]
    """Shape (P, 2), i < j, cosine >= duplicate_threshold."""


def top_candidates(
    matrix: sp.csr_matrix, k: int, duplicate_threshold: float, progress: bool = False
) -> Neighbours:
    """Exact cosine top-k per row (self excluded) plus every pair above the duplicate threshold."""
    n = matrix.shape[0]
    k = max(0, min(k, n - 1))
    indices = np.full((n, k), -1, dtype=np.int32)
    scores = np.zeros((n, k), dtype=np.float32)
    pairs: list[NDArray[np.int32]] = []
    transposed = matrix.T.tocsc()
    step = _block_rows(n)
    for start in tqdm(range(0, n, step), desc="related", unit="block", disable=not progress):
        stop = min(start + step, n)
        block = (matrix[start:stop] @ transposed).toarray()
        rows = np.arange(stop - start)
        block[rows, rows + start] = -1.0  # never the article itself
        dup_r, dup_c = np.nonzero(block >= duplicate_threshold)
        keep = dup_r + start < dup_c
        pairs.append(np.stack([dup_r[keep] + start, dup_c[keep]], axis=1).astype(np.int32))
        if k == 0:
            continue
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        valid = top_scores > 0
        indices[start:stop] = np.where(valid, top, -1)
        scores[start:stop] = np.where(valid, top_scores, 0.0)
    dup = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int32)
    return Neighbours(indices=indices, scores=scores, duplicate_pairs=dup)


def duplicate_groups(n: int, pairs: NDArray[np.int32]) -> NDArray[np.int64]:
    """Label each article with its near-duplicate group (connected components of the pairs)."""
    graph = sp.coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])) if len(pairs) else ([], ([], [])),
        shape=(n, n),
    )
    _, labels = sp.csgraph.connected_components(graph, directed=False)
    return labels.astype(np.int64)


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
