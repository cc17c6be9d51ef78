"""Why each article's related list holds what it holds (`related.explain = true`): per
article, its heaviest TF-IDF terms and, for each list entry in order, the cosines the blend
adds up and the recency factor, so that

    score = recency x (tfidf_share x tfidf + lsa_share x lsa + embedding_share x embedding)

recomputes the listed score. Served by GetRelated(explain=true) (recommender/explain.py), which
finds the terms two articles share from their two term lists. Opt-in: about 1.5 kB of Redis
per article at 50 entries a list."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.similarity import Shares
from training.related.lists import RelatedLists
from training.related.model import Recency, RelatedModel, blend_shares, recency_of
from training.related.params import RelatedParams

EXPLAIN_TERMS = 12
"""Heaviest terms kept per article: shared terms are found among these."""
BLOCK = 4096
"""Articles whose explanations are computed at a time."""


@dataclass(frozen=True)
class Explanations:
    """Everything the explanation records are computed from, kept until they are written."""

    model: RelatedModel
    params: RelatedParams
    recency: Recency | None
    """The search's recency rules (training/related/model.py), whose factor each part carries."""

    @classmethod
    def of(
        cls, model: RelatedModel, params: RelatedParams, articles: Sequence[Article]
    ) -> Explanations:
        """Of a fitted model and its articles (their dates, for the recency factor)."""
        return cls(model, params, recency_of(articles, params))

    @property
    def lists(self) -> RelatedLists:
        return self.model.lists

    @property
    def shares(self) -> Shares:
        embeddings = None if self.model.embedding is None else self.model.embedding.vectors
        weight = self.params.embedding_weight
        return blend_shares(self.model.lsa, self.model.lsa_weight, embeddings, weight)

    def encoded(self) -> Iterator[bytes]:
        """One JSON record per article, in article order."""
        terms = self.model.vectorizer.get_feature_names_out()
        shares = self.shares
        head = {"shares": [round(x, 6) for x in (shares.tfidf, shares.lsa, shares.embedding)]}
        for start in range(0, len(self.lists), BLOCK):
            stop = min(start + BLOCK, len(self.lists))
            parts = self._parts(start, stop)
            for row in range(start, stop):
                record = {**head, "terms": _top_terms(self.model.matrix, row, terms),
                          "parts": parts[row - start]}  # fmt: skip
                yield json.dumps(record, separators=(",", ":")).encode()

    def _parts(self, start: int, stop: int) -> list[list[list[float]]]:
        """Per article of the block, per list entry: [tfidf, lsa, embedding, recency]."""
        idx = self.lists.indices[start:stop]
        valid = idx >= 0
        rows = np.broadcast_to(np.arange(start, stop)[:, None], idx.shape)[valid]
        cols = idx[valid].astype(np.int64)
        matrix = self.model.matrix
        tfidf = np.asarray(sp.csr_matrix(matrix[rows]).multiply(matrix[cols]).sum(axis=1)).ravel()
        columns = [tfidf]
        for dense in (self._lsa(), self._embedding()):
            columns.append(np.zeros(len(rows)) if dense is None
                           else np.einsum("ij,ij->i", dense[rows], dense[cols]))  # fmt: skip
        columns.append(np.ones(len(rows)) if self.recency is None
                       else self.recency.factors(rows, cols))  # fmt: skip
        flat = np.round(np.column_stack(columns), 6).tolist()
        out, at = [], 0
        for count in valid.sum(axis=1).tolist():
            out.append(flat[at : at + count])
            at += count
        return out

    def _lsa(self) -> NDArray[np.float32] | None:
        return None if self.model.lsa is None else self.model.lsa.vectors

    def _embedding(self) -> NDArray[np.float32] | None:
        return None if self.model.embedding is None else self.model.embedding.vectors


def _top_terms(matrix: sp.csr_matrix, row: int, terms: NDArray[np.str_]) -> list[list[object]]:
    """The row's EXPLAIN_TERMS heaviest terms with their weights, heaviest first."""
    lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
    data, cols = matrix.data[lo:hi], matrix.indices[lo:hi]
    best = np.argsort(-data, kind="stable")[:EXPLAIN_TERMS]
    return [[str(terms[cols[n]]), round(float(data[n]), 6)] for n in best]
