"""Live writes: reader events into trending counters, upserted articles into Related lists,
takedowns out of every answer. State lives in Redis so every replica serves it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender import store
from recommender.domain import CLICK, IMPRESSION, Article, is_valid_id
from recommender.errors import NoModelPublished
from recommender.reader import Reader
from recommender.scoring import HOUR, BetaPrior
from recommender.store import Candidate, EventRow
from recommender.trending import TrendingScoring, counter_increments
from recommender.v1 import recommender_pb2 as pb

if TYPE_CHECKING:  # the corpus pulls in scikit-learn: loaded on the first upsert only
    from recommender.corpus import Corpus

MAX_FUTURE_SECONDS = 300.0
LIVE_KEY_TTL = 7 * 24 * 3600
"""Upserted vectors and list insertions outlive any nightly cycle, then expire on their own."""
CANDIDATE_MARGIN = 10


@dataclass(frozen=True)
class TrendingConfig:
    """The live model's parameters, read from its manifest (times in seconds)."""

    scoring: TrendingScoring
    dedup: float
    top_k: int
    duplicate_threshold: float
    as_of: float

    @property
    def window(self) -> float:
        """Events older than this are rejected."""
        return self.scoring.window

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TrendingConfig:
        """Parameters the training run recorded (defaults for older manifests)."""
        p = meta.get("parameters", {})
        alpha, beta = p.get("trending.prior_alpha"), p.get("trending.prior_beta")
        half_life = float(p.get("trending.half_life_hours", 1.0)) * HOUR
        scoring = TrendingScoring(
            half_life=half_life,
            exposure_half_life=float(p.get("trending.exposure_half_life_hours", 0.25)) * HOUR,
            window=float(p.get("trending.window_hours", 72.0)) * HOUR,
            prior=BetaPrior(float(alpha), float(beta)) if alpha and beta else None,
        )
        return cls(
            scoring=scoring,
            dedup=float(p.get("trending.session_dedup_minutes", 30.0)) * 60.0,
            top_k=int(p.get("related.top_k", 50)),
            duplicate_threshold=float(p.get("related.duplicate_threshold", 0.9)),
            as_of=float(p.get("trending.as_of", 0.0)),
        )


@dataclass
class EventTally:
    """What happened to a batch of events."""

    accepted: int = 0
    deduplicated: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, other: EventTally) -> None:
        """Fold another batch's tally into this one."""
        self.accepted += other.accepted
        self.deduplicated += other.deduplicated
        self.rejected.update(other.rejected)

    def response(self) -> pb.RecordEventsResponse:
        """As the API reports it."""
        return pb.RecordEventsResponse(
            accepted=self.accepted,
            deduplicated=self.deduplicated,
            rejected=sum(self.rejected.values()),
            rejected_reasons=dict(self.rejected),
        )


_KIND_OF_TYPE = {
    pb.EVENT_TYPE_UNSPECIFIED: CLICK,
    pb.EVENT_TYPE_CLICK: CLICK,
    pb.EVENT_TYPE_IMPRESSION: IMPRESSION,
}
"""Event types the API knows; any other number is rejected as "bad_type"."""

SECTIONS_CACHE_ENTRIES = 200_000
"""Known articles whose sections the event path keeps (cleared when full; refilled on use)."""

STREAM_DEPTH = 4
"""Batches of one stream in flight at once: while one waits on Redis, the next is validated."""


class LiveWriter:
    """Handles RecordEvents/StreamEvents, UpsertArticles and DeleteArticle."""

    def __init__(self, reader: Reader, stream_max_batches: int = 1_000_000) -> None:
        self.reader = reader
        self.keys = reader.keys
        self.stream_max_batches = stream_max_batches
        self._config: tuple[str, TrendingConfig] | None = None
        self._corpus: Corpus | None = None
        self._sections: dict[str, tuple[str, ...]] = {}
        self._sections_stamp: tuple[str, int] | None = None
        self._corpus_lock = asyncio.Lock()
        self._upsert_lock = asyncio.Lock()

    async def config(self, version: str) -> TrendingConfig:
        """The live version's parameters (parsed once per version)."""
        if self._config is None or self._config[0] != version:
            self._config = (version, TrendingConfig.from_meta(await self.reader.meta(version)))
        return self._config[1]

    # --- events ------------------------------------------------------------------------------
    # Per event: a few attribute reads and dict lookups; everything else is per batch, per
    # article or per counter hash. Known articles' sections are cached for the live version and
    # live-state epoch (an upsert or takedown anywhere moves the epoch and empties the cache).

    async def record_events(
        self, events: Sequence[pb.Event], now: float | None = None
    ) -> EventTally:
        """Validate, deduplicate and count one batch; accepted events go to the stream too.

        Two Redis round trips (dedup, then counters and stream) plus one for article records
        this process has not seen yet. Rejected events never reach a key.
        """
        now = time.time() if now is None else now
        version = await self.reader.live_version()
        cfg = await self.config(version)
        await self.reader.ensure_synced()
        sections = self._known_sections(version)
        tally = EventTally()
        valid, unseen = self._validate(events, now, cfg, sections, tally.rejected)
        if unseen:
            ids = sorted(unseen)
            for aid, record in zip(ids, await self.reader.articles(version, ids), strict=True):
                if record is not None:
                    sections[aid] = record.sections
            known = [v for v in valid if v[0] in sections]
            tally.rejected["unknown_article"] += len(valid) - len(known)
            valid = known
        counted = await self._dedup_clicks(valid, cfg.dedup)
        tally.deduplicated = len(valid) - len(counted)
        tally.accepted = len(counted)
        if counted:
            await self._write_counts(counted, sections, cfg)
        tally.rejected = +tally.rejected  # drop zero counts
        return tally

    def stream(self, depth: int = STREAM_DEPTH) -> EventStream:
        """A stream's consecutive batches, recorded with up to `depth` in flight."""
        return EventStream(self, depth)

    def _known_sections(self, version: str) -> dict[str, tuple[str, ...]]:
        """Sections of the known, not taken-down articles seen lately (valid for this version
        and live-state epoch only)."""
        stamp = (version, self.reader.epoch)
        if self._sections_stamp != stamp or len(self._sections) > SECTIONS_CACHE_ENTRIES:
            self._sections_stamp, self._sections = stamp, {}
        return self._sections

    def _validate(
        self,
        events: Sequence[pb.Event],
        now: float,
        cfg: TrendingConfig,
        known: dict[str, tuple[str, ...]],
        rejected: Counter[str],
    ) -> tuple[list[EventRow], set[str]]:
        """Events that pass every check but the article lookup, as rows; and the article ids
        among them this process has yet to look up. Checks (and reasons) in this order:
        malformed_id, bad_session_id, bad_type, too_old, in_future, unknown_article (taken
        down); an id in `known` is well-formed, known and not taken down."""
        oldest, newest = now - cfg.window, now + MAX_FUTURE_SECONDS
        deleted = self.reader.deleted
        kinds = _KIND_OF_TYPE
        valid: list[EventRow] = []
        unseen: set[str] = set()
        for event in events:
            aid = event.article_id
            session = event.session_id
            if aid not in known and not is_valid_id(aid):
                rejected["malformed_id"] += 1
                continue
            if session and not is_valid_id(session):
                rejected["bad_session_id"] += 1
                continue
            kind = kinds.get(event.type)
            if kind is None:
                rejected["bad_type"] += 1
                continue
            if event.HasField("ts"):
                stamp = event.ts  # as Timestamp.ToNanoseconds() / 1e9, without its call
                ts = (stamp.seconds * 1_000_000_000 + stamp.nanos) / 1e9
                if ts < oldest:
                    rejected["too_old"] += 1
                    continue
                if ts > newest:
                    rejected["in_future"] += 1
                    continue
            else:
                ts = now
            if aid not in known:
                if aid in deleted:
                    rejected["unknown_article"] += 1
                    continue
                unseen.add(aid)
            valid.append((aid, ts, kind, session))
        return valid, unseen

    async def _dedup_clicks(self, events: list[EventRow], dedup: float) -> list[EventRow]:
        """Keep impressions, session-less clicks, and a session's first click on an article in
        each dedup period (a reader reloading a page is one reader). One script call per dedup
        set, its members packed in one argument."""
        period = max(1, int(dedup))
        groups: dict[tuple[int, int], dict[str, int]] = {}  # (period, shard) -> pair -> event
        checked = 0
        for n, (aid, ts, kind, session) in enumerate(events):
            if kind == CLICK and session:
                checked += 1
                group_key = (int(ts) // period * period, store.dedup_shard(session))
                group = groups.get(group_key)
                if group is None:
                    group = groups[group_key] = {}
                group.setdefault(f"{session} {aid}", n)
        if not checked:
            return events
        order = list(groups.items())
        replies = await self.reader.run(
            lambda p: [
                p.eval(
                    store.ADD_NEW_MEMBERS,
                    1,
                    self.keys.seen(start, shard),
                    2 * period,
                    store.pack_members(members),
                )
                for (start, shard), members in order
            ]
        )
        fresh: set[int] = set()
        for (_, members), added in zip(order, replies, strict=True):
            flags = added.decode() if isinstance(added, bytes) else str(added)
            fresh.update(n for n, flag in zip(members.values(), flags, strict=True) if flag == "1")
        if len(fresh) == checked:
            return events
        return [e for n, e in enumerate(events) if e[2] != CLICK or not e[3] or n in fresh]

    async def _write_counts(
        self, events: list[EventRow], sections: dict[str, tuple[str, ...]], cfg: TrendingConfig
    ) -> None:
        """One pipeline: one script call per counter hash, and one stream entry for the batch."""
        per_key = counter_increments(events, sections, self.keys, cfg.scoring)
        ttl = int(cfg.window + 2 * HOUR)
        entry = store.encode_event_batch(events)

        def build(pipe: Any) -> None:
            for key, pieces in per_key.items():
                pipe.eval(store.INCREMENT_FIELDS, 1, key, ttl, store.pack_increments(pieces))
            pipe.xadd(
                self.keys.events, {"e": entry}, maxlen=self.stream_max_batches, approximate=True
            )

        await self.reader.run(build)

    # --- upserts and takedowns ----------------------------------------------------------------

    async def corpus(self, version: str) -> Corpus:
        """The version's corpus with every live upsert's vector, loaded on first use."""
        async with self._corpus_lock:
            if self._corpus is None or self._corpus.version != version:
                self._corpus = await self._load_corpus(version)
            await self._sync_live_rows(self._corpus)
            return self._corpus

    async def _load_corpus(self, version: str) -> Corpus:
        from recommender.corpus import Corpus

        count = int((await self.reader.meta(version)).get("corpus_chunks", 0))
        vectorizer, *blob = await self.reader.run(
            lambda p: (
                [p.get(self.keys.vectorizer(version))]
                + [p.get(self.keys.corpus_chunk(version, n)) for n in range(count)]
            )
        )
        if vectorizer is None or not blob or any(c is None for c in blob):
            raise NoModelPublished(f"version {version} was published without corpus vectors")
        ids, matrix, kth, extras = await asyncio.to_thread(store.decode_corpus, blob)
        return await asyncio.to_thread(Corpus.build, version, vectorizer, ids, matrix, kth, extras)

    async def _sync_live_rows(self, corpus: Corpus) -> None:
        """Bring live rows in line with the upserted set another replica may have changed."""
        from recommender.corpus import LiveVector

        await self.reader.refresh_live()
        wanted = self.reader.upserted
        for gone in [i for i in corpus.live if i not in wanted]:
            corpus.set_live(gone, None)
        missing = sorted(wanted - corpus.live.keys())
        if not missing:
            return
        raws = await self.reader.run(
            lambda p: (
                [p.get(self.keys.live_vector(corpus.version, i)) for i in missing]
                + [p.get(self.keys.live_doc(i)) for i in missing]
            )
        )
        vectors, docs = raws[: len(missing)], raws[len(missing) :]
        for aid, vec, doc in zip(missing, vectors, docs, strict=True):
            if vec is not None:
                row, dense = store.decode_vector(vec, corpus.width)
                half = None if dense is None else len(dense) // 2
                corpus.set_live(
                    aid,
                    LiveVector(
                        row, *((None, None) if dense is None else (dense[:half], dense[half:]))
                    ),
                )
            elif doc is not None:  # upserted under an older version: re-vectorise its text
                vector = corpus.vectorize(store.decode_document(aid, doc))
                corpus.score(vector, aid)  # fills in its LSA row
                corpus.set_live(aid, vector)

    async def upsert(self, articles: list[Article]) -> list[pb.UpsertResult]:
        """Place each article: its own list, its entries in others' lists, its live records."""
        version = await self.reader.live_version()
        cfg = await self.config(version)
        async with self._upsert_lock:  # one at a time per process: each sees the one before
            corpus = await self.corpus(version)
            results = []
            for article in articles:
                results.append(await self._upsert_one(version, corpus, cfg, article))
            await self.reader.run(lambda p: p.incr(self.keys.epoch))
            await self.reader.refresh_live()
        return results

    async def _upsert_one(
        self, version: str, corpus: Corpus, cfg: TrendingConfig, article: Article
    ) -> pb.UpsertResult:
        vector = corpus.vectorize(article)
        created = article.id not in corpus.index and article.id not in corpus.live
        ids, scores, text_scores = corpus.score(vector, article.id)
        depth = min(len(scores), cfg.top_k + CANDIDATE_MARGIN + len(self.reader.deleted))
        best = np.argpartition(-scores, depth - 1)[:depth] if depth else np.zeros(0, dtype=int)
        best = best[np.argsort(-scores[best], kind="stable")]
        top = [int(j) for j in best if scores[j] > 0 and ids[j] not in self.reader.deleted]
        # Near-duplicates (the same story republished) by TF-IDF cosine: the LSA part makes
        # every story of a thread look alike.
        duplicates = [j for j in top if text_scores[j] >= cfg.duplicate_threshold]
        own = [j for j in top if text_scores[j] < cfg.duplicate_threshold][: cfg.top_k]
        records = await self.reader.articles(version, [ids[j] for j in own])
        related: list[Candidate] = [
            (ids[j], float(scores[j]), rec.sections)
            for j, rec in zip(own, records, strict=True)
            if rec is not None
        ]
        # A republished story enters no other list: those lists already show the original.
        hosts = (
            []
            if duplicates
            else [j for j in own if j >= len(corpus.ids) or scores[j] > corpus.kth[j]]
        )
        now = time.time()

        def build(pipe: Any) -> None:
            pipe.set(self.keys.live_doc(article.id), store.encode_document(article))
            pipe.set(self.keys.live_related(article.id), store.encode_related(related))
            pipe.set(
                self.keys.live_vector(version, article.id),
                store.encode_vector(vector.tfidf, vector.dense()),
                ex=LIVE_KEY_TTL,
            )
            pipe.hset(self.keys.upserted, article.id, repr(now))
            pipe.srem(self.keys.deleted, article.id)
            for j in hosts:
                key = self.keys.live_inserts(ids[j])
                pipe.zadd(key, {article.id: float(scores[j])})
                pipe.zremrangebyrank(key, 0, -(cfg.top_k + 1))
                pipe.expire(key, LIVE_KEY_TTL)

        await self.reader.run(build)
        corpus.set_live(article.id, vector)
        return pb.UpsertResult(
            article_id=article.id,
            created=created,
            related_count=len(related),
            inserted_into=len(hosts),
        )

    async def delete(self, article_id: str) -> bool:
        """Record a takedown; True if the article was known."""
        version = await self.reader.live_version()
        await self.reader.refresh_live()
        known = (
            article_id in self.reader.upserted
            or (await self.reader.articles(version, [article_id]))[0] is not None
        )

        def build(pipe: Any) -> None:
            pipe.sadd(self.keys.deleted, article_id)
            pipe.hdel(self.keys.upserted, article_id)
            pipe.delete(self.keys.live_doc(article_id))  # one key per command: cluster-safe
            pipe.delete(self.keys.live_related(article_id))
            pipe.incr(self.keys.epoch)

        await self.reader.run(build)
        await self.reader.refresh_live()
        if self._corpus is not None:
            self._corpus.set_live(article_id, None)
        return known


class EventStream:
    """The batches of one client stream: each is recorded as RecordEvents records a call, with
    up to `depth` in flight, so one batch's Redis round trips overlap the next one's reading and
    validation. Use as `async with writer.stream() as s: await s.submit(batch)`; on leaving the
    block every batch has been written (also when the block raises) and `tally` sums them."""

    def __init__(self, writer: LiveWriter, depth: int = STREAM_DEPTH) -> None:
        self.writer = writer
        self.depth = max(1, depth)
        self.tally = EventTally()
        self._in_flight: deque[asyncio.Task[EventTally]] = deque()

    async def submit(self, events: Sequence[pb.Event]) -> None:
        """Start recording a batch; waits only when `depth` batches are already in flight."""
        self._in_flight.append(asyncio.ensure_future(self.writer.record_events(events)))
        queue = self._in_flight
        while queue and (len(queue) >= self.depth or queue[0].done()):
            self.tally.add(await queue.popleft())

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, kind: object, error: object, trace: object) -> None:
        pending, self._in_flight = list(self._in_flight), deque()
        results = await asyncio.gather(*pending, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for result in results:
            if isinstance(result, EventTally):
                self.tally.add(result)
        if failures and error is None:
            raise failures[0]
