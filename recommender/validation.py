"""Request validation: every field checked and bounded before it reaches a key or a model.
Each failure is an InvalidRequest whose message names the field."""

from __future__ import annotations

from collections.abc import Sequence

from recommender.domain import ID_MAX_LENGTH, Article, is_valid_id
from recommender.errors import InvalidRequest
from recommender.v1 import recommender_pb2 as pb

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_EXCLUDE_IDS = 200
MAX_SECTION_LENGTH = 64
MAX_EVENTS = 1000
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
