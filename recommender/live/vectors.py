"""The article vectors a server needs to place upserted articles: loaded from Redis on first use.

Similarity is the training job's blend (recommender/similarity.py) of the TF-IDF, LSA and
sentence-embedding cosines, the LSA and embedding parts of an article carrying pseudo-relevance
feedback from its nearest articles; the embedding model is loaded with the index, so only a
process that scores upserts ever loads it. The version's vectors are held compactly
(recommender/live/compact.py: int8 dense rows, pruned float16 postings, an embedding sketch):
about 1.2 kB per article with embeddings. A new article's TF-IDF cosine is computed against
every article from its own terms' postings; its LSA and embedding cosines against candidates
only: its nearest articles by words and by meaning (the sketch), and every live article. On a
corpus smaller than the candidate budget, that is every article. Articles upserted since are
kept beside them, exact (recommender/live/liverows.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.encoder import Encoder, article_text, load_encoder
from recommender.live.arrayfiles import ArrayStore
from recommender.live.compact import Blob, Int8Rows, release_free_memory
from recommender.live.idtable import IdTable
from recommender.live.liverows import DENSE_PARTS, LiveRows, LiveVector
from recommender.live.postings import Postings, pruned_postings, stored_postings
from recommender.live.scored import DenseScores, JoinedIds, Scores, SparseScores
from recommender.live.sketch import SketchIndex
from recommender.similarity import Shares, expand_rows
from recommender.textmodel import TextModel

__all__ = ["DENSE_PARTS", "LiveRows", "LiveVector", "Scores", "VectorIndex"]

UPSERT_THREADS = min(2, os.cpu_count() or 1)
"""Encoder threads of a writer: it encodes one article per upsert, and two threads take ~35%
off that (11-14 ms against 18-21 ms, `newsrec bench encode`, benchmarks/RESULTS.md)."""
CANDIDATES_BY_WORDS = 3000
"""Articles with the highest TF-IDF cosine whose LSA and embedding cosines are computed."""
CANDIDATES_BY_MEANING = 3000
"""Articles nearest by the embedding sketch added to them."""
SMALL_PARTS = ("extra_lsa_settings", "extra_embedding_settings", "extra_embedding_model")
"""Blob members a writer keeps as they are."""
ROW_PARTS = ("extra_lsa_raw", "extra_lsa_vectors", "extra_embedding_raw",
             "extra_embedding_vectors")  # fmt: skip
"""Blob members a writer keeps as int8 rows."""


@dataclass(frozen=True)
class EmbeddingPart:
    """The version's raw and final sentence embeddings, the blend and feedback settings, and
    the model that made them (training/related/embedding_part.py)."""

    weight: float
    feedback: int
    feedback_weight: float
    feedback_blend: float
    raw: Int8Rows
    vectors: Int8Rows
    sketch: SketchIndex
    """Of the final vectors: queried with a new article's raw, then its final embedding."""
    encoder: Encoder

    @classmethod
    def stored(cls, arrays: Mapping[str, NDArray[Any]]) -> EmbeddingPart | None:
        """From the compact arrays (None without embeddings); loads the model (seconds)."""
        if "extra_embedding_settings" not in arrays:
            return None
        weight, feedback, feedback_weight, blend = (
            float(x) for x in arrays["extra_embedding_settings"]
        )
        model = str(arrays["extra_embedding_model"][0])
        return cls(weight, int(feedback), feedback_weight, blend,
                   Int8Rows.stored(arrays, "extra_embedding_raw"),
                   Int8Rows.stored(arrays, "extra_embedding_vectors"), SketchIndex.stored(arrays),
                   load_encoder(model, threads=UPSERT_THREADS))  # fmt: skip


@dataclass(frozen=True)
class LsaPart:
    """The version's LSA projection, every article's raw and final rows, and the blend."""

    weight: float
    feedback: int
    feedback_weight: float
    slots: NDArray[np.int32]
    """Each vocabulary term's row of `by_term`, or -1 for terms the projection leaves out."""
    by_term: NDArray[np.float32]
    """The projection's components, a row per term it reads (terms x dims, C order)."""
    raw: Int8Rows
    vectors: Int8Rows

    @classmethod
    def stored(cls, arrays: Mapping[str, NDArray[Any]]) -> LsaPart | None:
        """From the compact arrays (None when the version has no LSA part)."""
        if "extra_lsa_settings" not in arrays:
            return None
        weight, feedback, feedback_weight = (float(x) for x in arrays["extra_lsa_settings"])
        return cls(weight, int(feedback), feedback_weight, arrays["lsa.slots"],
                   arrays["lsa.by_term"], Int8Rows.stored(arrays, "extra_lsa_raw"),
                   Int8Rows.stored(arrays, "extra_lsa_vectors"))  # fmt: skip

    @staticmethod
    def put(blob: Blob, store: ArrayStore) -> None:
        """The projection as LsaPart reads it: by term, with each term's slot."""
        terms, components = blob.array("extra_lsa_terms"), blob.array("extra_lsa_components")
        slots = np.full(int(blob.array("shape")[1]), -1, dtype=np.int32)
        slots[terms] = np.arange(len(terms), dtype=np.int32)
        store.put("lsa.slots", slots)
        store.put("lsa.by_term", np.ascontiguousarray(components.T, dtype=np.float32))

    def project(self, row: sp.csr_matrix) -> NDArray[np.float32]:
        """The unnormalised LSA projection of one TF-IDF row (recommender.similarity.lsa_raw,
        reading only the row's own terms: a millisecond less than scipy's column slice and
        its copy of the components, 10 ms at a million articles)."""
        slots = self.slots[row.indices]
        kept = slots >= 0
        weights = np.asarray(row.data[kept], dtype=np.float32)
        return np.asarray(weights @ self.by_term[slots[kept]], dtype=np.float32)


def compact_arrays(blob: Blob, store: ArrayStore) -> None:
    """Every array a writer scores upserts with, built from the vectors blob into the store
    a block at a time (recommender/live/compact.py)."""
    IdTable.of((str(i) for i in blob.array("ids")), store)
    store.put("kth", blob.array("kth"))
    pruned_postings(blob, store=store)
    for name in SMALL_PARTS:
        if name in blob.names:
            store.put(name, blob.array(name))
    if "extra_lsa_components" in blob.names:
        LsaPart.put(blob, store)
    for name in ROW_PARTS:
        if name in blob.names:
            blob.int8_rows(name, store)
    if "extra_embedding_vectors" in blob.names:
        SketchIndex.of(Int8Rows.stored(store.arrays, "extra_embedding_vectors"), store=store)


@dataclass(frozen=True)
class WordScores:
    """A new article's scores by words (VectorIndex.score_words), and what they were read
    against: the live rows, and the positions never scored."""

    live: LiveRows
    masked: NDArray[np.intp]
    tfidf: DenseScores
    near: SparseScores


@dataclass
class VectorIndex:
    """One version's article vectors plus the live rows added since."""

    version: str
    text_model: TextModel
    ids: IdTable
    postings: Postings
    kth: NDArray[np.float32]
    """Score of each article's last related entry: a newcomer must beat it to enter the list."""
    lsa: LsaPart | None = None
    embedding: EmbeddingPart | None = None
    live: dict[str, LiveVector] = field(default_factory=dict)
    shadowed: dict[str, int] = field(default_factory=dict)
    """Base positions of live articles that are edits of the version's: the old text no longer
    counts (found once per live article, not per upsert)."""
    _stacked: LiveRows | None = None

    @classmethod
    def load(cls, version: str, vectorizer_json: bytes, blob_file: IO[bytes]) -> VectorIndex:
        """Assemble from the version's published text model and vectors blob (a file), in
        memory."""
        store = ArrayStore()
        compact_arrays(Blob(blob_file), store)
        release_free_memory()
        return cls.stored(version, vectorizer_json, store.arrays)

    @classmethod
    def stored(
        cls, version: str, vectorizer_json: bytes, arrays: Mapping[str, NDArray[Any]]
    ) -> VectorIndex:
        """Assemble from the text model and the compact arrays (in memory or mapped files)."""
        ids = IdTable.stored(arrays)
        return cls(version, TextModel.loads(vectorizer_json), ids,
                   stored_postings(arrays, len(ids)), arrays["kth"], LsaPart.stored(arrays),
                   EmbeddingPart.stored(arrays))  # fmt: skip

    @property
    def width(self) -> int:
        """Vocabulary size."""
        return len(self.postings.indptr) - 1

    def vectorize(self, article: Article) -> LiveVector:
        """The article's TF-IDF row, raw LSA projection and raw embedding exactly as training
        computes them; its final LSA row and embedding need its neighbours, so `score` fills
        them in. Encodes the article (tens of ms) when the version blends embeddings."""
        vector = self.vectorize_words(article)
        vector.embedding_raw = self.encode(article)
        return vector

    def vectorize_words(self, article: Article) -> LiveVector:
        """The article's TF-IDF row and raw LSA projection (a millisecond or two)."""
        row = self.text_model.row(article)
        vector = LiveVector(row)
        if self.lsa is not None:
            vector.raw = self.lsa.project(row)
        return vector

    def encode(self, article: Article) -> NDArray[np.float32] | None:
        """The article's raw embedding (None when the version blends none): the encoder runs
        in its own threads, so an upsert scores the words meanwhile (ArticleWriter)."""
        if self.embedding is None:
            return None
        return self.embedding.encoder.encode([article_text(article)])[0]

    @property
    def dims(self) -> tuple[int, int]:
        """Lengths of a live vector's LSA rows and embedding, as stored."""
        lsa = 0 if self.lsa is None else self.lsa.raw.shape[1]
        emb = 0 if self.embedding is None else self.embedding.vectors.shape[1]
        return lsa, emb

    def set_live(self, article_id: str, vector: LiveVector | None) -> None:
        """Add, replace or (vector None) drop a live article's vector. A new article is
        appended to the stacked live rows (amortised: no restack per upsert); a replaced or
        dropped one restacks them on next use."""
        if vector is None:
            if self.live.pop(article_id, None) is None:
                return
            self.shadowed.pop(article_id, None)
            self._stacked = None
            return
        known = article_id in self.live
        self.live[article_id] = vector
        position = self.ids.position(article_id)
        if position is not None:
            self.shadowed[article_id] = position
        if known:
            self._stacked = None
        elif self._stacked is not None:
            self._stacked.append(article_id, vector)

    def _live_rows(self) -> LiveRows:
        if self._stacked is None:
            self._stacked = LiveRows.of(list(self.live.items()), self.width, self.dims)
        return self._stacked

    def score(self, vector: LiveVector, self_id: str, words: WordScores | None = None) -> Scores:
        """Blended and TF-IDF-only similarity of the vector to the base and live articles it
        may be related to (never itself); fills in vector.lsa and vector.embedding. `words`:
        its `score_words`, when computed already (while the article was being encoded)."""
        if words is None:
            words = self.score_words(vector, self_id)
        ids, tfidf_all = JoinedIds(self.ids, words.live.ids), words.tfidf
        if self.lsa is None and self.embedding is None:
            every = tfidf_all.positive()
            return Scores(ids, every.positions, every.values, every.values)
        pool = self._candidates(vector, words.near, len(words.live.ids), words.masked)
        emb = self._embedding_scores(vector, tfidf_all, pool, words.masked, words.live)
        if emb is not None:
            pool, emb_scores = emb
        tfidf = tfidf_all.at(pool)
        lsa = None
        if self.lsa is not None and vector.lsa is not None:
            lsa = _dots(self.lsa.vectors, words.live.lsa, pool, vector.lsa)
        shares = Shares.of(
            self.lsa.weight if lsa is not None and self.lsa else 0.0,
            self.embedding.weight if emb is not None and self.embedding else 0.0,
        )
        blended = np.float32(shares.tfidf) * tfidf
        if lsa is not None:
            blended += np.float32(shares.lsa) * lsa
        if emb is not None:
            blended += np.float32(shares.embedding) * emb_scores
        return Scores(ids, pool, blended, tfidf)

    def score_words(self, vector: LiveVector, self_id: str) -> WordScores:
        """The part of scoring that needs no embedding: the TF-IDF cosine to every article
        sharing a term, the nearest by words, and the final LSA row (vector.lsa) from them."""
        live = self._live_rows()
        row = vector.tfidf
        values = self.postings.scores(row.indices, row.data, extra=len(live.ids))
        values[len(self.ids) :] = live.tfidf_dots(row)
        masked = self._masked(self_id, live.ids)
        values[masked] = 0
        tfidf = DenseScores(values)
        # The nearest by words: candidates, and the LSA feedback's neighbours among them.
        near = tfidf.best(max(CANDIDATES_BY_WORDS, self.lsa.feedback if self.lsa else 0))
        if self.lsa is not None and vector.raw is not None:
            vector.lsa = _with_feedback(vector.raw, near.values, near.positions,
                                        self.lsa.feedback, self.lsa.raw, live.raw,
                                        self.lsa.feedback_weight)  # fmt: skip
        return WordScores(live, masked, tfidf, near)

    def _masked(self, self_id: str, live_ids: list[str]) -> NDArray[np.intp]:
        """Positions never scored: an edited article's old text no longer counts, and
        nothing is related to itself."""
        own = self.ids.position(self_id)
        masked = [*self.shadowed.values(), *([] if own is None else [own])]
        masked += [len(self.ids) + i for i, aid in enumerate(live_ids) if aid == self_id]
        return np.asarray(masked, dtype=np.intp)

    def _candidates(
        self, vector: LiveVector, near: SparseScores, lives: int, masked: NDArray[np.intp]
    ) -> NDArray[np.intp]:
        """Positions whose embedding feedback and scores are computed first: the nearest base
        articles by words and by meaning (all of them on a small corpus), then every live
        article."""
        base = len(self.ids)
        if base <= CANDIDATES_BY_WORDS + CANDIDATES_BY_MEANING:
            picked = np.arange(base)
        else:
            picked = near.positions[near.positions < base]
            if self.embedding is not None and vector.embedding_raw is not None:
                nearest = self.embedding.sketch.nearest(vector.embedding_raw, CANDIDATES_BY_MEANING)
                picked = np.union1d(picked, nearest)
        chosen = np.union1d(picked, base + np.arange(lives))
        return chosen[~np.isin(chosen, masked)].astype(np.intp)

    def _embedding_scores(
        self, vector: LiveVector, words: DenseScores, pool: NDArray[np.intp],
        masked: NDArray[np.intp], live: LiveRows,
    ) -> tuple[NDArray[np.intp], NDArray[np.float32]] | None:  # fmt: skip
        """Embedding cosine to the pool, widened by the articles nearest to the new article's
        final embedding; fills that in from its nearest articles of the pool by the training
        job's feedback rule. Returns the widened pool and the cosines."""
        part = self.embedding
        if part is None or vector.embedding_raw is None:
            return None
        similar = _dots(part.raw, live.embedding_raw, pool, vector.embedding_raw)
        closeness = (1 - part.feedback_blend) * words.at(pool) + part.feedback_blend * similar
        vector.embedding = _with_feedback(vector.embedding_raw, closeness, pool, part.feedback,
                                          part.raw, live.embedding_raw,
                                          part.feedback_weight)  # fmt: skip
        if len(self.ids) > CANDIDATES_BY_WORDS + CANDIDATES_BY_MEANING:
            more = part.sketch.nearest(vector.embedding, CANDIDATES_BY_MEANING)
            pool = np.union1d(pool, more[~np.isin(more, masked)])
        return pool, _dots(part.vectors, live.embedding, pool, vector.embedding)


def _top(scores: NDArray[np.float32], count: int) -> NDArray[np.intp]:
    """Positions of the `count` highest scores, unordered."""
    count = min(count, len(scores))
    return np.argpartition(-scores, count - 1)[:count] if count else np.zeros(0, np.intp)


def _with_feedback(
    raw: NDArray[np.float32],
    closeness: NDArray[np.float32],
    positions: NDArray[np.intp],
    limit: int,
    base_raw: Int8Rows,
    live_raw: NDArray[np.float32],
    weight: float,
) -> NDArray[np.float32]:
    """The final row of a new article: its raw row plus `weight` x the mean raw row of its
    (at most `limit`) closest articles with positive closeness (closeness[i] is that of
    positions[i]), best first, as training does (recommender.similarity.expand_rows)."""
    count = min(limit, int(np.count_nonzero(closeness > 0)))
    nearest = _top(closeness, count) if count else np.zeros(0, np.intp)
    nearest = nearest[np.argsort(-closeness[nearest], kind="stable")]
    return expand_rows(
        raw[None, :],
        _gather(base_raw, live_raw, positions[nearest]),
        np.arange(count, dtype=np.int32)[None, :],
        weight,
    )[0]


def _dots(
    base: Int8Rows, live: NDArray[np.float32], pool: NDArray[np.intp], row: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Dot products of a row with the pool's rows (base positions, then live ones)."""
    inside = pool < len(base)
    out = np.empty(len(pool), dtype=np.float32)
    out[inside] = base.dots(pool[inside], row)
    out[~inside] = live[pool[~inside] - len(base)] @ row
    return out


def _gather(base: Int8Rows, live: NDArray[np.float32], rows: NDArray[np.intp]) -> NDArray[Any]:
    """Rows of base and live stacked, without stacking them."""
    inside = rows < len(base)
    out = np.empty((len(rows), base.shape[1]), dtype=np.float32)
    out[inside] = base.take(rows[inside])
    out[~inside] = live[rows[~inside] - len(base)]
    return out
