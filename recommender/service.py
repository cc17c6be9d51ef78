"""Request validation -> reads and writes -> response messages. Errors are domain errors."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterable, Callable, Iterable
from functools import partial

from recommender import metrics
from recommender.cache import LRU
from recommender.domain import Article
from recommender.errors import ArticleNotFound
from recommender.explain import popular_explanation, related_explanations
from recommender.live.articles import ArticleWriter
from recommender.live.config import VersionConfig
from recommender.live.counters import LiveCounts
from recommender.live.events import EventWriter
from recommender.popular import PopularRanker
from recommender.reader import Reader
from recommender.rules.fold import fold
from recommender.rules.model import ListRules
from recommender.rules.service import RuleService
from recommender.store.codec import Candidate, caller_identity
from recommender.v1 import recommender_pb2 as pb
from recommender.validation import (
    DEFAULT_LIMITS,
    Limits,
    check_batch_id,
    check_events,
    check_excludes,
    check_id,
    check_limit,
    check_section,
    check_timestamp,
    check_upsert,
    timestamp,
    valid_timestamp,
)
from recommender.windows import FITTED

log = logging.getLogger("newsrec.server")
STREAM_BATCH = 1000
"""StreamEvents records its single events in batches of this many."""


def in_section(sections: Iterable[str], section: str) -> bool:
    """Section match ignores case, as section names in keys do."""
    wanted = section.lower()
    return any(s.lower() == wanted for s in sections)


def to_item(article: Article, score: float) -> pb.Item:
    """One list entry, carrying what a page renders."""
    item = pb.Item(
        article_id=article.id,
        score=score,
        title=article.title,
        url=article.url,
        sections=list(article.sections),
        tags=list(article.tags),
    )
    if article.published_at is not None:
        item.published_at.CopyFrom(timestamp(article.published_at))
    return item


def pick(
    candidates: Iterable[tuple[str, float]], skip: set[str] | frozenset[str], limit: int
) -> list[tuple[str, float]]:
    """The first `limit` candidates whose ids are not in skip."""
    chosen: list[tuple[str, float]] = []
    for aid, score in candidates:
        if aid not in skip:
            chosen.append((aid, score))
            if len(chosen) == limit:
                break
    return chosen


def related_candidates(candidates: list[Candidate], section: str) -> list[tuple[str, float]]:
    """Candidates in the section (all when section is empty), as (id, score)."""
    return [(c, s) for c, s, secs in candidates if not section or in_section(secs, section)]


class RecommenderService:
    """The RPCs' logic; the gRPC servicer only hands requests in."""

    def __init__(
        self,
        reader: Reader,
        events: EventWriter,
        articles: ArticleWriter,
        live_counts: LiveCounts,
        answer_entries: int = 20_000,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.reader = reader
        self.events = events
        self.articles = articles
        self.live_counts = live_counts
        self.popular = PopularRanker(reader, live_counts)
        self.answers = LRU(answer_entries)
        """Hot answers, keyed by request, version and live-state epoch."""
        self.limits = limits
        self.rules = RuleService(reader)
        self._sections: tuple[str, frozenset[str]] = ("", frozenset())
        self._unknown_logged: set[str] = set()

    async def _items(self, version: str, chosen: list[tuple[str, float]]) -> list[pb.Item]:
        records = await self.reader.articles(version, [aid for aid, _ in chosen])
        return [to_item(r, s) for r, (_, s) in zip(records, chosen, strict=True) if r is not None]

    async def _listed(
        self,
        version: str,
        ranked: list[tuple[str, float]],
        skip: set[str],
        limit: int,
        rules: ListRules,
        keep: Callable[[Article], bool] = lambda _a: True,
    ) -> tuple[list[pb.Item], dict[str, str]]:
        """The first `limit` of `ranked` not skipped, with the list's editorial rules folded in
        (blocks by id alone need no records: the usual path stays one fetch of the chosen);
        and the rule id of each pin that placed an item."""
        skip = skip | self.reader.deleted
        if not rules.needs_records:
            chosen = pick(ranked, skip | rules.blocked_ids, limit)
            return await self._items(version, chosen), {}
        fetch = partial(self.reader.articles, version)
        placed = await fold(ranked, skip, limit, rules, fetch, keep)
        pins = {p.article.id: p.pin.rule_id for p in placed if p.pin is not None}
        return [to_item(p.article, p.score) for p in placed], pins

    async def _check_section(self, version: str, section: str) -> None:
        """A section the model does not know answers an empty list, as it should; it is
        counted (newsrec_unknown_sections) and logged once per name, so a caller's typo shows."""
        if not section:
            return
        if self._sections[0] != version:
            meta = await self.reader.meta(version)
            self._sections = (version, frozenset(s.lower() for s in meta.get("sections", [])))
        wanted = section.lower()
        if wanted in self._sections[1]:
            return
        metrics.UNKNOWN_SECTIONS.inc()
        if wanted not in self._unknown_logged and len(self._unknown_logged) < 1000:
            self._unknown_logged.add(wanted)
            log.info("section %r is not in model %s: its lists are empty (GetModelInfo lists "
                     "the sections)", section, version)  # fmt: skip

    async def _related_rules(self, version: str, article_id: str, now: float) -> ListRules:
        """The rules of one article's Related list (its sections read only when a rule needs
        them)."""
        rules = self.reader.rules
        if not rules.rules:
            return ListRules()
        sections: tuple[str, ...] = ()
        if rules.needs_own_sections:
            (record,) = await self.reader.articles(version, [article_id])
            sections = record.sections if record is not None else ()
        return rules.for_related(article_id, sections, now)

    async def get_related(self, request: pb.GetRelatedRequest) -> pb.GetRelatedResponse:
        """Related Articles for one article page."""
        article_id = check_id(request.article_id, "article_id")
        limit = check_limit(request.limit)
        skip = check_excludes(request.exclude_ids) | {article_id}
        section = check_section(request.section)
        version = await self.reader.live_version()
        await self.reader.ensure_synced()
        await self._check_section(version, section)
        # Answers hold until the version, the live state (upserts, takedowns, rules) or the
        # rules in force (one expires) change.
        now = time.time()
        stamp = f"{self.reader.epoch}:{self.reader.rules.stamp(now)}"
        cache_key = f"rel:{version}:{stamp}:{request.SerializeToString()!r}"
        cached = self.answers.get(cache_key)
        metrics.ANSWER_CACHE.labels("miss" if cached is None else "hit").inc()
        if cached is not None:
            return cached
        candidates = await self.reader.related(version, article_id)
        if candidates is None:
            raise ArticleNotFound(
                f"article_id {article_id!r} was taken down"
                if article_id in self.reader.deleted
                else f"article_id {article_id!r} is neither in model {version} nor upserted since"
            )
        rules = await self._related_rules(version, article_id, now)
        ranked = related_candidates(candidates, section)
        in_it = lambda a: not section or in_section(a.sections, section)  # noqa: E731
        items, pins = await self._listed(version, ranked, skip, limit, rules, in_it)
        if request.explain:
            listed = [(i.article_id, i.score) for i in items]
            whys = await related_explanations(self.reader, version, article_id, listed, pins)
            for item in items:
                item.explanation.CopyFrom(whys[item.article_id])
        response = pb.GetRelatedResponse(items=items, model_version=version)
        self.answers.put(cache_key, response)
        return response

    async def get_popular(self, request: pb.GetPopularRequest) -> pb.GetPopularResponse:
        """The Popular box, site-wide or for one section: nightly scores plus live clicks."""
        limit = check_limit(request.limit)
        skip = check_excludes(request.exclude_ids)
        section = check_section(request.section)
        version = await self.reader.live_version()
        await self.reader.ensure_synced()
        await self._check_section(version, section)
        now = time.time()
        window = int(now / self.live_counts.max_age) if self.live_counts.max_age else 0
        stamp = f"{self.reader.epoch}:{self.reader.rules.stamp(now)}:{window}"
        cache_key = f"pop:{version}:{stamp}:{request.SerializeToString()!r}"
        cached = self.answers.get(cache_key)
        metrics.ANSWER_CACHE.labels("miss" if cached is None else "hit").inc()
        if cached is not None:
            return cached
        cfg = await self.reader.config(version)
        ranked = await self.popular.ranked(version, section, cfg, request.window, now,
                                           request.explain)  # fmt: skip
        rules = self.reader.rules.for_popular(section, now)
        response = pb.GetPopularResponse(model_version=version, window=ranked.window)
        response.items.extend((await self._listed(version, ranked.items, skip, limit, rules))[0])
        for item in response.items if request.explain else ():
            totals = ranked.totals.get(item.article_id, (0.0, 0.0, 0.0))
            why = popular_explanation(ranked.window, ranked.spec, totals, item.score)
            item.explanation.CopyFrom(why)
        response.as_of.CopyFrom(timestamp(ranked.as_of))
        if self.live_counts.max_age:
            self.answers.put(cache_key, response)
        return response

    async def get_model_info(self) -> pb.GetModelInfoResponse:
        """Which version is live and how it was trained."""
        version = await self.reader.live_version()
        meta = await self.reader.meta(version)
        response = pb.GetModelInfoResponse(
            model_version=version,
            article_count=int(meta.get("articles", 0)),
            click_count=int(meta.get("clicks", 0)),
            sections=list(meta.get("sections", [])),
            popular_windows=[FITTED, *VersionConfig.from_meta(meta).windows],
            parameters={k: json.dumps(v) for k, v in meta.get("parameters", {}).items()},
        )
        response.trained_at.CopyFrom(timestamp(float(meta["trained_at"])))
        return response

    async def record_events(
        self, request: pb.RecordEventsRequest, peer: str = ""
    ) -> pb.RecordEventsResponse:
        """A batch of reader events from the caller at `peer` (grpc's context.peer())."""
        check_events(request.events, "a call (use StreamEventBatches for more)")
        batch_id = check_batch_id(request.batch_id)
        tally = await self.events.record_events(request.events, caller_identity(peer), batch_id)
        return tally.response()

    async def stream_events(
        self, events: AsyncIterable[pb.Event], peer: str = ""
    ) -> pb.RecordEventsResponse:
        """A client stream of single events, recorded in batches of STREAM_BATCH; an event with
        an invalid ts ends the stream (the events before it are recorded)."""
        async with self.events.stream(caller_identity(peer)) as stream:
            batch: list[pb.Event] = []
            n = 0
            async for event in events:
                if event.HasField("ts") and not valid_timestamp(event.ts):
                    if batch:
                        await stream.submit(batch, n - len(batch), singles=True)
                    where = f"stream event {n} (counting from 0; those before it were recorded)"
                    check_timestamp(event.ts, f"{where}: ts")
                batch.append(event)
                n += 1
                if len(batch) == STREAM_BATCH:
                    await stream.submit(batch, n - len(batch), singles=True)
                    batch = []
            if batch:
                await stream.submit(batch, n - len(batch), singles=True)
        return stream.tally.response()

    async def stream_event_batches(
        self, requests: AsyncIterable[pb.RecordEventsRequest], peer: str = ""
    ) -> pb.RecordEventsResponse:
        """A client stream of event batches, each checked and recorded as a RecordEvents call;
        a bad one ends the stream (the ones before it are recorded)."""
        async with self.events.stream(caller_identity(peer)) as stream:
            n = 0
            async for request in requests:
                where = f"stream message {n} (counting from 0; those before it were recorded): "
                check_events(request.events, "a message", where)
                batch_id = check_batch_id(request.batch_id, f"{where}batch_id")
                if request.events:
                    await stream.submit(request.events, n, batch_id, where=where)
                n += 1
        return stream.tally.response()

    async def upsert_articles(self, request: pb.UpsertArticlesRequest) -> pb.UpsertArticlesResponse:
        """New or edited articles; all are validated before any is written."""
        articles = check_upsert(request, self.limits)
        version = await self.reader.live_version()
        results = await self.articles.upsert(articles)
        return pb.UpsertArticlesResponse(results=results, model_version=version)

    async def delete_article(self, request: pb.DeleteArticleRequest) -> pb.DeleteArticleResponse:
        """A takedown of an article the live model or the live state knows."""
        article_id = check_id(request.article_id, "article_id")
        return pb.DeleteArticleResponse(existed=await self.articles.delete(article_id))
