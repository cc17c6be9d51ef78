"""The article vectors a server needs to place upserted articles: loaded from Redis on first use.

Similarity is the training job's blend (recommender/similarity.py) of the TF-IDF, LSA and
sentence-embedding cosines, the LSA part of an article carrying pseudo-relevance feedback from
its nearest TF-IDF neighbours; the embedding model is loaded with the index, so only a process
that scores upserts ever loads it. A replica holds the version's TF-IDF rows transposed (terms
x articles), so scoring one new article walks only the postings of its own terms (about 8 bytes
per non-zero: ~0.2 GB at 100k articles, ~2 GB at 1M), plus each article's raw and final LSA
rows (2 x 100 float32: 80 MB at 100k, 0.8 GB at 1M) and embeddings (384 float32: 150 MB at
100k). Articles upserted since are kept beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.encoder import Encoder, article_text, load_encoder
from recommender.similarity import Shares, expand_rows, lsa_raw
from recommender.textmodel import TextModel


@dataclass
class LiveVector:
    """An upserted article's vector: TF-IDF row, raw LSA projection and final LSA row, raw
    embedding (the encoder's) and final embedding (with feedback)."""

    tfidf: sp.csr_matrix
    raw: NDArray[np.float32] | None = None
    lsa: NDArray[np.float32] | None = None
    embedding_raw: NDArray[np.float32] | None = None
    embedding: NDArray[np.float32] | None = None

    def dense(self) -> NDArray[np.float32] | None:
        """The dense parts as one array, for storage (LiveVector.split reads it back)."""
        parts = (self.raw, self.lsa, self.embedding_raw, self.embedding)
        present = [p for p in parts if p is not None]
        return np.concatenate(present).astype(np.float32) if present else None

    @classmethod
    def split(
        cls, row: sp.csr_matrix, dense: NDArray[np.float32] | None, lsa_dims: int, emb_dims: int
    ) -> LiveVector:
        """Inverse of dense(): the raw and final LSA rows, then the raw and final embedding."""
        if dense is None:
            return cls(row)
        cuts = np.cumsum([lsa_dims, lsa_dims, emb_dims, emb_dims])
        raw, lsa, emb_raw, emb = np.split(dense[: cuts[-1]], cuts[:-1])
        return cls(row, *(part if len(part) else None for part in (raw, lsa, emb_raw, emb)))


UPSERT_THREADS = 1
"""Encoder threads of a serving process: it encodes one article per upsert (recommender/encoder)."""


@dataclass(frozen=True)
class EmbeddingPart:
    """The version's raw and final sentence embeddings, the blend and feedback settings, and
    the model that made them (training/related/embedding_part.py)."""

    weight: float
    feedback: int
    feedback_weight: float
    feedback_blend: float
    raw: NDArray[np.float32]
    vectors: NDArray[np.float32]
    encoder: Encoder

    @classmethod
    def from_arrays(cls, extras: dict[str, NDArray[Any]]) -> EmbeddingPart | None:
        """From the vectors blob (None without embeddings); loads the model (seconds)."""
        if "embedding_settings" not in extras:
            return None
        weight, feedback, feedback_weight, blend = (float(x) for x in extras["embedding_settings"])
        encoder = load_encoder(str(extras["embedding_model"][0]), threads=UPSERT_THREADS)
        return cls(weight, int(feedback), feedback_weight, blend, extras["embedding_raw"],
                   extras["embedding_vectors"], encoder)  # fmt: skip


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
    embedding: EmbeddingPart | None = None
    positions: dict[str, int] = field(default_factory=dict)
    live: dict[str, LiveVector] = field(default_factory=dict)
    _stacked: LiveRows | None = None

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
            EmbeddingPart.from_arrays(extras),
        )
        index.positions = {aid: n for n, aid in enumerate(ids)}
        return index

    @property
    def width(self) -> int:
        """Vocabulary size."""
        return int(self.postings.shape[0])

    def vectorize(self, article: Article) -> LiveVector:
        """The article's TF-IDF row (and raw LSA projection) exactly as training computes them;
        its final LSA row needs its neighbours, so `score` fills it in. Encodes the article
        (tens of ms) when the version blends embeddings."""
        row = self.text_model.row(article)
        vector = LiveVector(row)
        if self.lsa is not None:
            vector.raw = lsa_raw(row, self.lsa.terms, self.lsa.components)[0]
        if self.embedding is not None:
            vector.embedding_raw = self.embedding.encoder.encode([article_text(article)])[0]
        return vector

    @property
    def dims(self) -> tuple[int, int]:
        """Lengths of a live vector's LSA rows and embedding, as stored."""
        lsa = 0 if self.lsa is None else int(self.lsa.raw.shape[1])
        emb = 0 if self.embedding is None else int(self.embedding.vectors.shape[1])
        return lsa, emb

    def set_live(self, article_id: str, vector: LiveVector | None) -> None:
        """Add, replace or (vector None) drop a live article's vector. A new article is
        appended to the stacked live rows (amortised: no restack per upsert); a replaced or
        dropped one restacks them on next use."""
        if vector is None:
            if self.live.pop(article_id, None) is None:
                return
            self._stacked = None
            return
        known = article_id in self.live
        self.live[article_id] = vector
        if known:
            self._stacked = None
        elif self._stacked is not None:
            self._stacked.append(article_id, vector)

    def _live_rows(self) -> LiveRows:
        if self._stacked is None:
            self._stacked = LiveRows.of(list(self.live.items()), self.width, self.dims)
        return self._stacked

    def score(
        self, vector: LiveVector, self_id: str
    ) -> tuple[list[str], NDArray[np.float32], NDArray[np.float32]]:
        """Blended and TF-IDF-only similarity of the vector to every base and live article
        (itself at 0), and their ids (base, then live); fills in vector.lsa."""
        live = self._live_rows()
        # Only the postings of the article's own terms: a row slice, then one dense mat-vec.
        own_postings = self.postings[vector.tfidf.indices]
        tfidf = np.concatenate(
            [
                np.asarray(own_postings.T @ vector.tfidf.data).ravel(),
                np.asarray((live.rows @ vector.tfidf.T).toarray()).ravel(),
            ]
        ).astype(np.float32)
        # An edited article's old text no longer counts, and nothing is related to itself.
        masked = [
            n for n in (self.positions.get(a) for a in [*self.live, self_id]) if n is not None
        ]
        masked += [len(self.ids) + i for i, aid in enumerate(live.ids) if aid == self_id]
        tfidf[masked] = 0.0
        ids = self.ids + live.ids
        lsa = self._lsa_scores(vector, tfidf, live)
        emb = self._embedding_scores(vector, tfidf, masked, live)
        shares = Shares.of(
            self.lsa.weight if lsa is not None and self.lsa is not None else 0.0,
            self.embedding.weight if emb is not None and self.embedding is not None else 0.0,
        )
        if lsa is None and emb is None:
            return ids, tfidf, tfidf
        blended = shares.tfidf * tfidf
        if lsa is not None:
            blended += np.float32(shares.lsa) * lsa
        if emb is not None:
            blended += np.float32(shares.embedding) * emb
        blended[masked] = 0.0
        return ids, blended.astype(np.float32), tfidf

    def _lsa_scores(
        self, vector: LiveVector, tfidf: NDArray[np.float32], live: LiveRows
    ) -> NDArray[np.float32] | None:
        """LSA cosine to every article; fills in vector.lsa from its TF-IDF neighbours."""
        lsa = self.lsa
        if lsa is None or vector.raw is None:
            return None
        vector.lsa = _with_feedback(vector.raw, tfidf, lsa.feedback, lsa.raw, live.raw,
                                    lsa.feedback_weight)  # fmt: skip
        return _cosines(lsa.vectors, live.lsa, vector.lsa)

    def _embedding_scores(
        self, vector: LiveVector, tfidf: NDArray[np.float32], masked: list[int], live: LiveRows
    ) -> NDArray[np.float32] | None:
        """Embedding cosine to every article; fills in vector.embedding from its nearest
        articles by the training job's feedback rule."""
        part = self.embedding
        if part is None or vector.embedding_raw is None:
            return None
        similar = _cosines(part.raw, live.embedding_raw, vector.embedding_raw)
        closeness = (1 - part.feedback_blend) * tfidf + part.feedback_blend * similar
        closeness[masked] = -np.inf
        vector.embedding = _with_feedback(vector.embedding_raw, closeness, part.feedback,
                                          part.raw, live.embedding_raw,
                                          part.feedback_weight)  # fmt: skip
        return _cosines(part.vectors, live.embedding, vector.embedding)


def _with_feedback(
    raw: NDArray[np.float32],
    closeness: NDArray[np.float32],
    limit: int,
    base_raw: NDArray[np.float32],
    live_raw: NDArray[np.float32],
    weight: float,
) -> NDArray[np.float32]:
    """The final row of a new article: its raw row plus `weight` x the mean raw row of its
    (at most `limit`) closest articles with positive closeness, best first, as training does
    (recommender.similarity.expand_rows)."""
    count = min(limit, int(np.count_nonzero(closeness > 0)))
    nearest = np.argpartition(-closeness, count - 1)[:count] if count else np.zeros(0, int)
    nearest = nearest[np.argsort(-closeness[nearest], kind="stable")]
    return expand_rows(
        raw[None, :],
        _gather(base_raw, live_raw, nearest),
        np.arange(count, dtype=np.int32)[None, :],
        weight,
    )[0]


def _cosines(
    base: NDArray[np.float32], live: NDArray[np.float32], row: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Dot products of a row with every base, then every live row."""
    return np.concatenate([base @ row, live @ row]).astype(np.float32)


DENSE_PARTS = ("raw", "lsa", "embedding_raw", "embedding")
"""A live vector's dense parts, in LiveRows' order."""


@dataclass
class LiveRows:
    """The live articles' rows stacked, in one order: ids, TF-IDF, and each dense part in a
    buffer with spare capacity (doubling), so appending an upsert copies one row, not all."""

    ids: list[str]
    rows: sp.csr_matrix
    buffers: dict[str, NDArray[np.float32]]

    @classmethod
    def of(cls, items: list[tuple[str, LiveVector]], width: int, dims: tuple[int, int]) -> LiveRows:
        """Stack every live vector at once (built from arrays, not row by row)."""
        tfidf = [v.tfidf for _, v in items]
        rows = sp.csr_matrix(
            (
                np.concatenate([r.data for r in tfidf]) if tfidf else np.zeros(0, np.float32),
                np.concatenate([r.indices for r in tfidf]) if tfidf else np.zeros(0, np.int32),
                np.concatenate([[0], np.cumsum([r.nnz for r in tfidf])]).astype(np.int64),
            ),
            shape=(len(items), width),
            dtype=np.float32,
        )
        sizes = dict(zip(DENSE_PARTS, (dims[0], dims[0], dims[1], dims[1]), strict=True))
        buffers = {name: _stack([getattr(v, name) for _, v in items], sizes[name])
                   for name in DENSE_PARTS}  # fmt: skip
        return cls([aid for aid, _ in items], rows, buffers)

    def append(self, article_id: str, vector: LiveVector) -> None:
        """One more live article at the end."""
        count = len(self.ids)
        self.rows = sp.vstack([self.rows, vector.tfidf], format="csr", dtype=np.float32)
        for name, buffer in self.buffers.items():
            if count == len(buffer):
                grown = np.zeros((max(16, 2 * count), buffer.shape[1]), dtype=np.float32)
                grown[:count] = buffer
                self.buffers[name] = buffer = grown
            part = getattr(vector, name)
            buffer[count] = 0.0 if part is None else part
        self.ids.append(article_id)

    def part(self, name: str) -> NDArray[np.float32]:
        """One dense part's rows (a view of its buffer)."""
        return self.buffers[name][: len(self.ids)]

    @property
    def raw(self) -> NDArray[np.float32]:
        return self.part("raw")

    @property
    def lsa(self) -> NDArray[np.float32]:
        return self.part("lsa")

    @property
    def embedding_raw(self) -> NDArray[np.float32]:
        return self.part("embedding_raw")

    @property
    def embedding(self) -> NDArray[np.float32]:
        return self.part("embedding")


def _gather(
    base: NDArray[np.float32], live: NDArray[np.float32], rows: NDArray[np.intp]
) -> NDArray[np.float32]:
    """Rows of base and live stacked, without stacking them: a copy of the base rows per
    upsert cost tens of ms at 100k articles."""
    inside = rows < len(base)
    out = np.empty((len(rows), base.shape[1]), dtype=np.float32)
    out[inside] = base[rows[inside]]
    out[~inside] = live[rows[~inside] - len(base)]
    return out


def _stack(parts: list[NDArray[np.float32] | None], dims: int) -> NDArray[np.float32]:
    """Rows stacked into an (n, dims) array, a missing one as zeros."""
    zero = np.zeros(dims, dtype=np.float32)
    if not parts:
        return np.zeros((0, dims), dtype=np.float32)
    return np.stack([zero if p is None else p for p in parts]).astype(np.float32)
