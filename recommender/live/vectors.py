"""The article vectors a server needs to place upserted articles: loaded from Redis on first use.

Similarity is the training job's blend (recommender/similarity.py): (1 - w) x TF-IDF cosine +
w x LSA cosine, the LSA part of an article carrying pseudo-relevance feedback from its nearest
TF-IDF neighbours. A replica holds the version's TF-IDF rows transposed (terms x articles), so
scoring one new article walks only the postings of its own terms (about 8 bytes per non-zero:
~0.2 GB at 100k articles, ~2 GB at 1M), plus each article's raw and final LSA rows (2 x 100
float32: 80 MB at 100k, 0.8 GB at 1M). Articles upserted since are kept beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.similarity import lsa_from_raw, lsa_raw
from recommender.textmodel import TextModel


@dataclass
class LiveVector:
    """An upserted article's vector: TF-IDF row, raw LSA projection and final LSA row."""

    tfidf: sp.csr_matrix
    raw: NDArray[np.float32] | None = None
    lsa: NDArray[np.float32] | None = None

    def dense(self) -> NDArray[np.float32] | None:
        """The LSA parts as one array, for storage."""
        if self.raw is None or self.lsa is None:
            return None
        return np.concatenate([self.raw, self.lsa]).astype(np.float32)


@dataclass(frozen=True)
class LsaPart:
    """The version's LSA projection, every article's raw and final rows, and the blend."""

    weight: float
    feedback: int
    feedback_weight: float
    terms: NDArray[np.int32]
    components: NDArray[np.float32]
    raw: NDArray[np.float32]
    vectors: NDArray[np.float32]

    @classmethod
    def from_arrays(cls, extras: dict[str, NDArray[Any]]) -> LsaPart | None:
        """From the vectors blob's extra arrays (None when the version has no LSA part)."""
        if "lsa_settings" not in extras:
            return None
        weight, feedback, feedback_weight = (float(x) for x in extras["lsa_settings"])
        return cls(
            weight,
            int(feedback),
            feedback_weight,
            extras["lsa_terms"],
            extras["lsa_components"],
            extras["lsa_raw"],
            extras["lsa_vectors"],
        )


@dataclass
class VectorIndex:
    """One version's article vectors plus the live rows added since."""

    version: str
    text_model: TextModel
    ids: list[str]
    postings: sp.csr_matrix
    """terms x articles."""
    kth: NDArray[np.float32]
    """Score of each article's last related entry: a newcomer must beat it to enter the list."""
    lsa: LsaPart | None = None
    positions: dict[str, int] = field(default_factory=dict)
    live: dict[str, LiveVector] = field(default_factory=dict)
    _stacked: (
        tuple[list[str], sp.csr_matrix, NDArray[np.float32] | None, NDArray[np.float32] | None]
        | None
    ) = None

    @classmethod
    def build(
        cls,
        version: str,
        vectorizer_json: bytes,
        ids: list[str],
        matrix: sp.csr_matrix,
        kth: NDArray[np.float32],
        extras: dict[str, NDArray[Any]],
    ) -> VectorIndex:
        """Assemble from the version's published text model and vectors blob."""
        index = cls(
            version,
            TextModel.loads(vectorizer_json),
            ids,
            matrix.T.tocsr(),
            kth,
            LsaPart.from_arrays(extras),
        )
        index.positions = {aid: n for n, aid in enumerate(ids)}
        return index

    @property
    def width(self) -> int:
        """Vocabulary size."""
        return int(self.postings.shape[0])

    def vectorize(self, article: Article) -> LiveVector:
        """The article's TF-IDF row (and raw LSA projection) exactly as training computes them;
        its final LSA row needs its neighbours, so `score` fills it in."""
        row = self.text_model.row(article)
        if self.lsa is None:
            return LiveVector(row)
        return LiveVector(row, lsa_raw(row, self.lsa.terms, self.lsa.components)[0])

    def set_live(self, article_id: str, vector: LiveVector | None) -> None:
        """Add, replace or (vector None) drop a live article's vector."""
        if vector is None:
            if self.live.pop(article_id, None) is None:
                return
        else:
            self.live[article_id] = vector
        self._stacked = None

    def _live_matrices(
        self,
    ) -> tuple[list[str], sp.csr_matrix, NDArray[np.float32] | None, NDArray[np.float32] | None]:
        if self._stacked is None:
            ids = list(self.live)
            rows = (
                sp.vstack([self.live[i].tfidf for i in ids]).tocsr()
                if ids
                else sp.csr_matrix((0, self.width), dtype=np.float32)
            )
            raw = lsa = None
            if self.lsa is not None and ids:
                dims = self.lsa.raw.shape[1]
                zero = np.zeros(dims, dtype=np.float32)
                raw = np.stack([v.raw if v.raw is not None else zero for v in self.live.values()])
                lsa = np.stack([v.lsa if v.lsa is not None else zero for v in self.live.values()])
            self._stacked = (ids, rows, raw, lsa)
        return self._stacked

    def score(
        self, vector: LiveVector, self_id: str
    ) -> tuple[list[str], NDArray[np.float32], NDArray[np.float32]]:
        """Blended and TF-IDF-only similarity of the vector to every base and live article
        (itself at 0), and their ids (base, then live); fills in vector.lsa."""
        live_ids, live_rows, live_raw, live_lsa = self._live_matrices()
        # Only the postings of the article's own terms: a row slice, then one dense mat-vec.
        own_postings = self.postings[vector.tfidf.indices]
        tfidf = np.concatenate(
            [
                np.asarray(own_postings.T @ vector.tfidf.data).ravel(),
                np.asarray((live_rows @ vector.tfidf.T).toarray()).ravel(),
            ]
        ).astype(np.float32)
        # An edited article's old text no longer counts, and nothing is related to itself.
        masked = [
            n for n in (self.positions.get(a) for a in [*self.live, self_id]) if n is not None
        ]
        masked += [len(self.ids) + i for i, aid in enumerate(live_ids) if aid == self_id]
        tfidf[masked] = 0.0
        ids = self.ids + live_ids
        if self.lsa is None or vector.raw is None:
            return ids, tfidf, tfidf
        lsa = self.lsa
        count = min(lsa.feedback, int(np.count_nonzero(tfidf > 0)))
        nearest = np.argpartition(-tfidf, count - 1)[:count] if count else np.zeros(0, int)
        nearest = nearest[np.argsort(-tfidf[nearest], kind="stable")]
        pool = np.vstack([lsa.raw, live_raw]) if live_raw is not None else lsa.raw
        vector.lsa = lsa_from_raw(
            vector.raw[None, :],
            pool[nearest],
            np.arange(count, dtype=np.int32)[None, :],
            lsa.feedback_weight,
        )[0]
        dense = lsa.vectors @ vector.lsa
        if live_lsa is not None:
            dense = np.concatenate([dense, live_lsa @ vector.lsa])
        blended = (1.0 - lsa.weight) * tfidf + lsa.weight * dense.astype(np.float32)
        blended[masked] = 0.0
        return ids, blended.astype(np.float32), tfidf
