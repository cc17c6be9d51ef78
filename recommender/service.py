"""Request validation -> reads and writes -> response messages. Errors are domain errors."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, Iterable, Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from recommender.domain import ID_MAX_LENGTH, Article, is_valid_id
from recommender.errors import ArticleNotFound, InvalidRequest
from recommender.live import LiveWriter, TrendingConfig
from recommender.reader import LRU, Reader
from recommender.store import Candidate
from recommender.trending import Components, LiveCounts, blend, live_components, read_plan
from recommender.v1 import recommender_pb2 as pb

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_EXCLUDE_IDS = 200
MAX_SECTION_LENGTH = 64
MAX_EVENTS = 1000
STREAM_BATCH = 1000
"""StreamEvents records its single events in batches of this many."""
MAX_UPSERTS = 100
MAX_TITLE_CHARS = 1_000
MAX_BODY_CHARS = 200_000
MAX_LABELS = 20


def check_id(value: str, field: str) -> str:
    """An article id, or InvalidRequest naming the field."""
    if not value:
        raise InvalidRequest(f"{field} is empty")
    if not is_valid_id(value):
        shown = value[:40] + ("..." if len(value) > 40 else "")
        raise InvalidRequest(
            f"{field} {shown!r} is malformed: ids are 1-{ID_MAX_LENGTH} characters of "
            "A-Z a-z 0-9 . _ : ~ -"
        )
    return value


def check_limit(limit: int) -> int:
    """0 means the default; otherwise 1..MAX_LIMIT."""
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit must be between 1 and {MAX_LIMIT} (0 = {DEFAULT_LIMIT}), got {limit}"
        )
    return limit


def check_excludes(ids: Sequence[str]) -> set[str]:
    """At most MAX_EXCLUDE_IDS valid ids."""
    if len(ids) > MAX_EXCLUDE_IDS:
        raise InvalidRequest(f"exclude_ids has {len(ids)} ids; at most {MAX_EXCLUDE_IDS} allowed")
    return {check_id(i, f"exclude_ids[{n}]") for n, i in enumerate(ids)}


def check_section(section: str, field: str = "section") -> str:
    """A section name: free text, but bounded and printable before it reaches a key."""
    section = section.strip()
    if len(section) > MAX_SECTION_LENGTH or not section.isprintable():
        raise InvalidRequest(f"{field} must be at most {MAX_SECTION_LENGTH} printable characters")
    return section


def check_events(events: Sequence[pb.Event], per: str) -> Sequence[pb.Event]:
    """At most MAX_EVENTS events; `per` says where the limit applies, for the message."""
    if len(events) > MAX_EVENTS:
        raise InvalidRequest(f"events has {len(events)} entries; at most {MAX_EVENTS} {per}")
    return events


def check_article(message: pb.ArticleInput, field: str) -> Article:
    """An upserted article, every field bounded."""
    check_id(message.article_id, f"{field}.article_id")
    if not (message.title.strip() or message.body.strip()):
        raise InvalidRequest(f"{field} needs a title or a body")
    if len(message.title) > MAX_TITLE_CHARS or len(message.body) > MAX_BODY_CHARS:
        raise InvalidRequest(
            f"{field}: title is limited to {MAX_TITLE_CHARS} characters and "
            f"body to {MAX_BODY_CHARS}"
        )
    if len(message.sections) > MAX_LABELS or len(message.tags) > MAX_LABELS:
        raise InvalidRequest(f"{field}: at most {MAX_LABELS} sections and {MAX_LABELS} tags")
    sections = [check_section(s, f"{field}.sections[{n}]") for n, s in enumerate(message.sections)]
    tags = [check_section(t, f"{field}.tags[{n}]") for n, t in enumerate(message.tags)]
    if len(message.url) > 2048:
        raise InvalidRequest(f"{field}.url is longer than 2048 characters")
    published = (
        message.published_at.ToNanoseconds() / 1e9 if message.HasField("published_at") else None
    )
    return Article(
        id=message.article_id,
        title=message.title.strip(),
        body=message.body,
        sections=tuple(dict.fromkeys(s for s in sections if s)),
        tags=tuple(dict.fromkeys(t for t in tags if t)),
        url=message.url,
        published_at=published,
    )


def in_section(sections: Iterable[str], section: str) -> bool:
    """Section match ignores case, as section names in keys do."""
    wanted = section.lower()
    return any(s.lower() == wanted for s in sections)


def timestamp(epoch: float) -> Timestamp:
    """Epoch seconds as a protobuf Timestamp."""
    ts = Timestamp()
    ts.FromNanoseconds(round(epoch * 1e9))
    return ts


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
        writer: LiveWriter,
        live_counts: LiveCounts,
        answer_entries: int = 20_000,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.live_counts = live_counts
        self.answers = LRU(answer_entries)
        """Hot answers, keyed by request, version and live-state epoch."""

    async def _items(self, version: str, chosen: list[tuple[str, float]]) -> list[pb.Item]:
        records = await self.reader.articles(version, [aid for aid, _ in chosen])
        return [to_item(r, s) for r, (_, s) in zip(records, chosen, strict=True) if r is not None]

    async def get_related(self, request: pb.GetRelatedRequest) -> pb.GetRelatedResponse:
        """Related Articles for one article page."""
        article_id = check_id(request.article_id, "article_id")
        limit = check_limit(request.limit)
        skip = check_excludes(request.exclude_ids) | {article_id}
        section = check_section(request.section)
        version = await self.reader.live_version()
        await self.reader.ensure_synced()
        # Answers hold until the version or the live state (upserts, takedowns) changes.
        cache_key = f"rel:{version}:{self.reader.epoch}:{request.SerializeToString()!r}"
        cached = self.answers.get(cache_key)
        if cached is not None:
            return cached
        candidates = await self.reader.related(version, article_id)
        if candidates is None:
            raise ArticleNotFound(f"article {article_id!r} is not in model {version}")
        chosen = pick(related_candidates(candidates, section), skip | self.reader.deleted, limit)
        items = await self._items(version, chosen)
        response = pb.GetRelatedResponse(items=items, model_version=version)
        self.answers.put(cache_key, response)
        return response

    async def live_components(
        self, version: str, section: str, cfg: TrendingConfig
    ) -> dict[str, Components]:
        """Live (clicks, impressions, exposure) since the nightly model's as_of (cached ~1 s)."""
        cached = self.live_counts.get(version, section)
        if cached is not None:
            return cached
        now = time.time()
        plan = read_plan(cfg.as_of, now, cfg.scoring)
        keys = self.reader.keys
        values = (
            await self.reader.run(
                lambda p: [p.hgetall(keys.counter(k, g, t, section)) for k, g, t in plan]
            )
            if plan
            else []
        )
        components = live_components(plan, values, now, cfg.scoring)
        self.live_counts.put(version, section, components)
        return components

    async def get_popular(self, request: pb.GetPopularRequest) -> pb.GetPopularResponse:
        """The Popular box, site-wide or for one section: nightly scores plus live clicks."""
        limit = check_limit(request.limit)
        skip = check_excludes(request.exclude_ids)
        section = check_section(request.section)
        version = await self.reader.live_version()
        await self.reader.ensure_synced()
        window = int(time.time() / self.live_counts.max_age) if self.live_counts.max_age else 0
        cache_key = f"pop:{version}:{self.reader.epoch}:{window}:{request.SerializeToString()!r}"
        cached = self.answers.get(cache_key)
        if cached is not None:
            return cached
        nightly = await self.reader.popular(version, section)
        cfg = await self.writer.config(version)
        live = await self.live_components(version, section, cfg)
        now = time.time()
        ranked = (
            blend(nightly, live, now, cfg.scoring) if live else (nightly.items if nightly else [])
        )
        response = pb.GetPopularResponse(model_version=version)
        response.items.extend(
            await self._items(version, pick(ranked, skip | self.reader.deleted, limit))
        )
        response.as_of.CopyFrom(
            timestamp(now if live else (nightly.as_of if nightly else cfg.as_of))
        )
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
            parameters={k: json.dumps(v) for k, v in meta.get("parameters", {}).items()},
        )
        response.trained_at.CopyFrom(timestamp(float(meta["trained_at"])))
        return response

    async def record_events(self, events: Sequence[pb.Event]) -> pb.RecordEventsResponse:
        """A batch of reader events."""
        check_events(events, "a call (use StreamEventBatches for more)")
        return (await self.writer.record_events(events)).response()

    async def stream_events(self, events: AsyncIterable[pb.Event]) -> pb.RecordEventsResponse:
        """A client stream of single events, recorded in batches of STREAM_BATCH."""
        async with self.writer.stream() as stream:
            batch: list[pb.Event] = []
            async for event in events:
                batch.append(event)
                if len(batch) == STREAM_BATCH:
                    await stream.submit(batch)
                    batch = []
            if batch:
                await stream.submit(batch)
        return stream.tally.response()

    async def stream_event_batches(
        self, requests: AsyncIterable[pb.RecordEventsRequest]
    ) -> pb.RecordEventsResponse:
        """A client stream of event batches, each checked and recorded as a RecordEvents call;
        an oversized one ends the stream (the ones before it are recorded)."""
        async with self.writer.stream() as stream:
            n = 0
            async for request in requests:
                check_events(
                    request.events,
                    f"a message (stream message {n}, counting from 0; those before it were "
                    "recorded)",
                )
                if request.events:
                    await stream.submit(request.events)
                n += 1
        return stream.tally.response()

    async def upsert_articles(self, request: pb.UpsertArticlesRequest) -> pb.UpsertArticlesResponse:
        """New or edited articles; all are validated before any is written."""
        if not request.articles or len(request.articles) > MAX_UPSERTS:
            raise InvalidRequest(
                f"articles must hold 1 to {MAX_UPSERTS} entries, got {len(request.articles)}"
            )
        articles = [check_article(a, f"articles[{n}]") for n, a in enumerate(request.articles)]
        if len({a.id for a in articles}) != len(articles):
            raise InvalidRequest("articles repeats an article_id")
        version = await self.reader.live_version()
        results = await self.writer.upsert(articles)
        return pb.UpsertArticlesResponse(results=results, model_version=version)

    async def delete_article(self, request: pb.DeleteArticleRequest) -> pb.DeleteArticleResponse:
        """A takedown."""
        article_id = check_id(request.article_id, "article_id")
        return pb.DeleteArticleResponse(existed=await self.writer.delete(article_id))
