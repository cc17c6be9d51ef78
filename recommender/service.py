"""Request validation -> store reads -> response messages. Errors are raised as domain errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from recommender.domain import ID_MAX_LENGTH, Article, is_valid_id
from recommender.errors import ArticleNotFound, InvalidRequest
from recommender.store import Candidate, Store
from recommender.v1 import recommender_pb2 as pb

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_EXCLUDE_IDS = 200
MAX_SECTION_LENGTH = 64


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


def check_section(section: str) -> str:
    """A section name: free text, but bounded and printable before it reaches a key."""
    section = section.strip()
    if len(section) > MAX_SECTION_LENGTH or not section.isprintable():
        raise InvalidRequest(f"section must be at most {MAX_SECTION_LENGTH} printable characters")
    return section


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


def timestamp(epoch: float) -> Timestamp:
    """Epoch seconds as a protobuf Timestamp."""
    ts = Timestamp()
    ts.FromNanoseconds(round(epoch * 1e9))
    return ts


def pick_related(
    candidates: list[Candidate], exclude: set[str], section: str, limit: int, self_id: str
) -> list[tuple[str, float]]:
    """The first `limit` candidates that are not excluded, not the article, and in the section."""
    chosen: list[tuple[str, float]] = []
    for cid, score, sections in candidates:
        if cid == self_id or cid in exclude or (section and not in_section(sections, section)):
            continue
        chosen.append((cid, score))
        if len(chosen) == limit:
            break
    return chosen


async def _items(store: Store, version: str, chosen: list[tuple[str, float]]) -> list[pb.Item]:
    """Attach display records to (id, score) pairs, dropping ids without a record."""
    records = await store.articles(version, [aid for aid, _ in chosen])
    return [to_item(rec, score) for rec, (_, score) in zip(records, chosen, strict=True) if rec]


async def get_related(store: Store, request: pb.GetRelatedRequest) -> pb.GetRelatedResponse:
    """Related Articles for one article page."""
    article_id = check_id(request.article_id, "article_id")
    limit = check_limit(request.limit)
    exclude = check_excludes(request.exclude_ids)
    section = check_section(request.section)
    version = await store.live_version()
    candidates = await store.related(version, article_id)
    if candidates is None:
        raise ArticleNotFound(f"article {article_id!r} is not in model {version}")
    chosen = pick_related(candidates, exclude, section, limit, article_id)
    return pb.GetRelatedResponse(items=await _items(store, version, chosen), model_version=version)


async def get_popular(store: Store, request: pb.GetPopularRequest) -> pb.GetPopularResponse:
    """The Popular box, site-wide or for one section."""
    limit = check_limit(request.limit)
    exclude = check_excludes(request.exclude_ids)
    section = check_section(request.section)
    version = await store.live_version()
    popular = await store.popular(version, section)
    response = pb.GetPopularResponse(model_version=version)
    if popular is None:  # a section without articles has an empty box, not an error
        return response
    chosen = [(aid, s) for aid, s in popular.items if aid not in exclude][:limit]
    response.items.extend(await _items(store, version, chosen))
    response.as_of.CopyFrom(timestamp(popular.as_of))
    return response


async def get_model_info(store: Store) -> pb.GetModelInfoResponse:
    """Which version is live and how it was trained."""
    version = await store.live_version()
    meta = await store.meta(version)
    response = pb.GetModelInfoResponse(
        model_version=version,
        article_count=int(meta.get("articles", 0)),
        click_count=int(meta.get("clicks", 0)),
        sections=list(meta.get("sections", [])),
        parameters={k: json.dumps(v) for k, v in meta.get("parameters", {}).items()},
    )
    response.trained_at.CopyFrom(timestamp(float(meta["trained_at"])))
    return response
