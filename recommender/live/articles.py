"""Live article writes: upserted articles placed into Related lists, takedowns out of every answer.

The first upsert a process serves loads the version's article vectors (recommender/live/vectors.py:
numpy and scipy, never scikit-learn), so a replica that only reads never holds them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from recommender import metrics
from recommender.domain import Article
from recommender.encoder import EncoderUnavailable
from recommender.errors import ArticleNotFound, CannotScoreUpserts, NoModelPublished
from recommender.live.arrayfiles import ArrayFolder, ArrayStore
from recommender.live.compact import settle_heap
from recommender.live.config import VersionConfig
from recommender.reader import Reader
from recommender.store import codec
from recommender.store.codec import Candidate
from recommender.store.keys import LIVE_KEY_TTL
from recommender.v1 import recommender_pb2 as pb

log = logging.getLogger("newsrec.live")

if TYPE_CHECKING:  # the vectors pull in scipy's sparse matrices: loaded on the first upsert only
    from recommender.live.scored import Scores
    from recommender.live.vectors import LiveVector, VectorIndex

CHUNKS_PER_FETCH = 4
"""Vector blob chunks (32 MB each) fetched from Redis at a time when a writer loads a version."""
CANDIDATE_MARGIN = 10
"""Candidates beyond top_k looked at, so dropping near-duplicates still leaves top_k."""


@dataclass(frozen=True)
class Placement:
    """Where an upserted article goes: its own list and the lists it enters (hosts), as ids
    with its score; `duplicate` when it is a republished copy of an article already there."""

    own: list[tuple[str, float]]
    hosts: list[tuple[str, float]]
    duplicate: bool


def place(
    scored: Scores, kth: NDArray[np.float32], deleted: frozenset[str], cfg: VersionConfig
) -> Placement:
    """The article's best top_k (no near-duplicate: the same story is not 'related'), and the
    lists it beats the last entry of. `kth` covers the version's articles; positions past it are
    live upserts, whose lists are always open. Taken-down ids never count."""
    scores, text_scores, at = scored.blended, scored.tfidf, scored.positions
    depth = min(len(scores), cfg.top_k + CANDIDATE_MARGIN + len(deleted))
    best = np.argpartition(-scores, depth - 1)[:depth] if depth else np.zeros(0, dtype=int)
    best = best[np.argsort(-scores[best], kind="stable")]
    top = [int(j) for j in best if scores[j] > 0 and scored.ids[int(at[j])] not in deleted]
    # Near-duplicates by TF-IDF cosine: the LSA part makes every story of a thread look alike.
    duplicates = [j for j in top if text_scores[j] >= cfg.duplicate_threshold]
    own = [j for j in top if text_scores[j] < cfg.duplicate_threshold][: cfg.top_k]
    # A republished story enters no other list: those lists already show the original.
    hosts = [] if duplicates else [j for j in own if at[j] >= len(kth) or scores[j] > kth[at[j]]]

    def entries(picked: list[int]) -> list[tuple[str, float]]:
        return [(scored.ids[int(at[j])], float(scores[j])) for j in picked]

    return Placement(entries(own), entries(hosts), bool(duplicates))


class ArticleWriter:
    """Handles UpsertArticles and DeleteArticle."""

    def __init__(self, reader: Reader, writer_dir: Path | None = None) -> None:
        self.reader = reader
        self.writer_dir = writer_dir
        """Where the compact vectors are kept as mapped files (None: in memory)."""
        self.keys = reader.keys
        self._index: VectorIndex | None = None
        self._index_lock = asyncio.Lock()
        self._upsert_lock = asyncio.Lock()
        self._synced: frozenset[str] | None = None
        """The upserted set the index's live rows were last brought in line with."""

    async def vector_index(self, version: str) -> VectorIndex:
        """The version's vectors with every live upsert's vector, loaded on first use."""
        async with self._index_lock:
            if self._index is None or self._index.version != version:
                self._index = await self._load_index(version)
                self._synced = None
            await self._sync_live_rows(self._index)
            return self._index

    async def _load_index(self, version: str) -> VectorIndex:
        meta = await self.reader.meta(version)
        (text_model,) = await self.reader.run(lambda p: [p.get(self.keys.vectorizer(version))])
        folder = self._folder(version, meta)
        arrays = None if folder is None else await asyncio.to_thread(folder.open)
        where = "in memory" if folder is None else str(folder.final)
        if arrays is not None:
            log.info("version %s: mapping the vectors another writer built in %s", version, where)
        else:  # not built on this machine yet: from the published blob
            started = time.monotonic()
            arrays = await self._build_arrays(version, int(meta.get("vector_chunks", 0)), folder)
            took = time.monotonic() - started
            log.info("version %s: built the compact vectors in %.1f s (%s)", version, took, where)
        if arrays is None or text_model is None:
            raise NoModelPublished(f"version {version} was published without article vectors")
        index = await self._assemble(version, text_model, arrays)
        settle_heap()
        return index

    def _folder(self, version: str, meta: dict[str, Any]) -> ArrayFolder | None:
        if self.writer_dir is None:
            return None
        manifest = json.dumps(meta, sort_keys=True).encode()
        return ArrayFolder(self.writer_dir, self.keys.namespace, version, manifest)

    async def _build_arrays(
        self, version: str, count: int, folder: ArrayFolder | None
    ) -> dict[str, NDArray[Any]] | None:
        """The compact arrays from the version's vectors blob, in the folder when there is one
        (in memory if it cannot be written); None when the blob is missing."""
        with tempfile.TemporaryFile(prefix="newsrec-vectors-") as spool:
            # A few chunks at a time to a file: the blob is GBs at a million articles.
            for first in range(0, count, CHUNKS_PER_FETCH):
                wanted = range(first, min(first + CHUNKS_PER_FETCH, count))
                chunks = await self.reader.run(partial(self._get_chunks, version, wanted))
                if any(c is None for c in chunks):
                    return None
                await asyncio.to_thread(spool.write, b"".join(chunks))
            if not count:
                return None
            if folder is not None:
                try:
                    return await asyncio.to_thread(_build, spool, folder)
                except OSError as exc:
                    log.warning("writer_dir unusable for version %s (%s): keeping its vectors "
                                "in memory", version, exc)  # fmt: skip
            return await asyncio.to_thread(_build, spool, None)

    def _get_chunks(self, version: str, wanted: range, pipe: Any) -> None:
        for n in wanted:
            pipe.get(self.keys.vectors_chunk(version, n))

    async def _assemble(
        self, version: str, text_model: bytes, arrays: dict[str, NDArray[Any]]
    ) -> VectorIndex:
        from recommender.live.vectors import VectorIndex

        try:
            return await asyncio.to_thread(VectorIndex.stored, version, text_model, arrays)
        except EncoderUnavailable as exc:
            log.error("cannot score upserts for version %s: %s", version, exc)
            raise CannotScoreUpserts(f"this replica cannot place new articles: {exc}") from exc

    async def _sync_live_rows(self, index: VectorIndex) -> None:
        """Bring live rows in line with the upserted set another replica may have changed."""
        await self.reader.refresh_live()
        wanted = self.reader.upserted
        if wanted is self._synced:  # unchanged since (the common case: our own upserts)
            return
        for gone in [i for i in index.live if i not in wanted]:
            index.set_live(gone, None)
        missing = sorted(wanted - index.live.keys())
        if not missing:
            self._synced = wanted
            return
        raws = await self.reader.run(
            lambda p: (
                [p.get(self.keys.live_vector(index.version, i)) for i in missing]
                + [p.get(self.keys.live_doc(i)) for i in missing]
            )
        )
        vectors, docs = raws[: len(missing)], raws[len(missing) :]
        for aid, vec, doc in zip(missing, vectors, docs, strict=True):
            if vec is not None:
                index.set_live(aid, _live_vector(vec, index))
            elif doc is not None:  # upserted under an older version: re-vectorise its text
                vector = await asyncio.to_thread(index.vectorize, codec.decode_document(aid, doc))
                index.score(vector, aid)  # fills in its LSA row
                index.set_live(aid, vector)
        self._synced = wanted

    async def upsert(self, articles: list[Article]) -> list[pb.UpsertResult]:
        """Place each article: its own list, its entries in others' lists, its live records."""
        version = await self.reader.live_version()
        cfg = await self.reader.config(version)
        async with self._upsert_lock:  # one at a time per process: each sees the one before
            index = await self.vector_index(version)
            results = []
            for article in articles:
                results.append(await self._upsert_one(version, index, cfg, article))
            (epoch,) = await self.reader.run(lambda p: p.incr(self.keys.epoch))
            in_step = self._synced is self.reader.upserted
            if self.reader.apply_own_upserts(int(epoch), [a.id for a in articles]):
                if in_step:  # the index's live rows hold exactly the new set
                    self._synced = self.reader.upserted
            else:
                await self.reader.refresh_live()
        return results

    async def _upsert_one(
        self, version: str, index: VectorIndex, cfg: VersionConfig, article: Article
    ) -> pb.UpsertResult:
        created = article.id not in index.ids and article.id not in index.live
        vector, scored = await _score_while_encoding(index, article)
        placed = place(scored, index.kth, self.reader.deleted, cfg)
        with metrics.UPSERT_STAGES.labels("write").time():
            records = await self.reader.articles(version, [aid for aid, _ in placed.own])
            related: list[Candidate] = [
                (aid, score, rec.sections)
                for (aid, score), rec in zip(placed.own, records, strict=True)
                if rec is not None
            ]
            await self.reader.run(
                lambda pipe: self._write_upsert(
                    pipe, version, article, vector, related, placed.hosts, cfg
                )
            )
            index.set_live(article.id, vector)
        return pb.UpsertResult(
            article_id=article.id,
            created=created,
            related_count=len(related),
            inserted_into=len(placed.hosts),
        )

    def _write_upsert(
        self,
        pipe: Any,
        version: str,
        article: Article,
        vector: LiveVector,
        related: list[Candidate],
        hosts: list[tuple[str, float]],
        cfg: VersionConfig,
    ) -> None:
        """Queue an upsert's writes: its record, list and vector, its entries in hosts' lists."""
        from recommender.store.vectors import encode_vector

        keys = self.keys
        pipe.set(keys.live_doc(article.id), codec.encode_document(article))
        pipe.set(keys.live_related(article.id), codec.encode_related(related))
        pipe.set(
            keys.live_vector(version, article.id),
            encode_vector(vector.tfidf, vector.dense()),
            ex=LIVE_KEY_TTL,
        )
        pipe.hset(keys.upserted, article.id, repr(time.time()))
        pipe.srem(keys.deleted, article.id)
        for host, score in hosts:
            key = keys.live_inserts(host)
            pipe.zadd(key, {article.id: score})
            pipe.zremrangebyrank(key, 0, -(cfg.top_k + 1))
            pipe.expire(key, LIVE_KEY_TTL)

    async def delete(self, article_id: str) -> bool:
        """Record a takedown; True if the article was served until now, False if it had been
        taken down already (nothing changes). ArticleNotFound, recording nothing, for an id
        neither the live model nor the live state knows: the takedown set stays bounded by the
        articles that exist."""
        version = await self.reader.live_version()
        await self.reader.refresh_live()
        if article_id in self.reader.deleted:
            return False
        known = (
            article_id in self.reader.upserted
            or (await self.reader.articles(version, [article_id]))[0] is not None
        )
        if not known:
            raise ArticleNotFound(
                f"article_id {article_id!r} is neither in model {version} nor upserted since"
            )

        def build(pipe: Any) -> None:
            pipe.sadd(self.keys.deleted, article_id)
            pipe.hdel(self.keys.upserted, article_id)
            pipe.delete(self.keys.live_doc(article_id))  # one key per command: cluster-safe
            pipe.delete(self.keys.live_related(article_id))
            pipe.incr(self.keys.epoch)

        await self.reader.run(build)
        await self.reader.refresh_live()
        if self._index is not None:
            self._index.set_live(article_id, None)
        return True


async def _score_while_encoding(index: VectorIndex, article: Article) -> tuple[LiveVector, Scores]:
    """The article's vector and scores; its words are scored while the encoder (its own
    threads, tens of ms) embeds it, and the event loop is never blocked by either."""
    encoding = asyncio.create_task(asyncio.to_thread(_timed, "encode", index.encode, article))
    try:
        vector = _timed("vectorize", index.vectorize_words, article)
        words = await asyncio.to_thread(_timed, "score_words", index.score_words, vector,
                                        article.id)  # fmt: skip
    finally:
        vector_raw = await encoding  # never left running on its own
    vector.embedding_raw = vector_raw
    scores = await asyncio.to_thread(_timed, "score", index.score, vector, article.id, words)
    return vector, scores


def _timed(stage: str, work: Any, *args: Any) -> Any:
    with metrics.UPSERT_STAGES.labels(stage).time():
        return work(*args)


def _build(spool: IO[bytes], folder: ArrayFolder | None) -> dict[str, NDArray[Any]]:
    """Build the arrays from the spooled blob: as files of the folder, then mapped (a failed
    build leaves none), or in memory without a folder. `settle_heap` frees the temporaries."""
    from recommender.live.compact import Blob
    from recommender.live.vectors import compact_arrays

    store = ArrayStore() if folder is None else folder.store()
    try:
        spool.seek(0)
        compact_arrays(Blob(spool), store)
        return store.arrays if folder is None else folder.finish(store)
    finally:
        if folder is not None:
            folder.discard(store)


def _live_vector(raw: bytes, index: VectorIndex) -> LiveVector:
    """A stored live vector: TF-IDF row, then its LSA rows and embedding (where the version
    has them)."""
    from recommender.live.liverows import LiveVector
    from recommender.store.vectors import decode_vector

    row, dense = decode_vector(raw, index.width)
    return LiveVector.split(row, dense, *index.dims)
