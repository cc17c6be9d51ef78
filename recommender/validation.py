"""Request validation: every field checked and bounded before it reaches a key or a model.
Each failure is an InvalidRequest whose message names the field (and its size, where a size is
what is wrong)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from google.protobuf.timestamp_pb2 import Timestamp

from recommender.config import Settings
from recommender.domain import ID_MAX_LENGTH, Article, is_valid_id
from recommender.errors import InvalidRequest
from recommender.v1 import recommender_pb2 as pb

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_EXCLUDE_IDS = 200
MAX_SECTION_LENGTH = 64
MAX_EVENTS = 1000
MAX_LABELS = 20
TIMESTAMP_MIN_SECONDS = -62_135_596_800
"""0001-01-01T00:00:00Z: protobuf's Timestamp range starts here..."""
TIMESTAMP_MAX_SECONDS = 253_402_300_799
"""...and ends at 9999-12-31T23:59:59Z (nanos 0..999,999,999)."""
TIMESTAMP_MIN_NANOS = TIMESTAMP_MIN_SECONDS * 1_000_000_000
TIMESTAMP_MAX_NANOS = TIMESTAMP_MAX_SECONDS * 1_000_000_000 + 999_999_999


@dataclass(frozen=True)
class Limits:
    """The request size limits that are settings (recommender/config.py documents each)."""

    upsert_articles: int
    upsert_bytes: int
    title_chars: int
    body_chars: int
    url_chars: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits a server runs with."""
        return cls(
            upsert_articles=settings.upsert_max_articles,
            upsert_bytes=settings.upsert_max_bytes,
            title_chars=settings.max_title_chars,
            body_chars=settings.max_body_chars,
            url_chars=settings.max_url_chars,
        )


DEFAULT_LIMITS = Limits.from_settings(Settings())


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
    if len(section) > MAX_SECTION_LENGTH:
        raise InvalidRequest(
            f"{field} has {len(section):,} characters; at most {MAX_SECTION_LENGTH}"
        )
    if not section.isprintable():
        raise InvalidRequest(f"{field} must be printable characters only")
    return section


def check_length(value: str | Sequence[str], limit: int, field: str, unit: str) -> None:
    """A field no longer than its limit; the message says by how much."""
    if len(value) > limit:
        raise InvalidRequest(f"{field} has {len(value):,} {unit}; at most {limit:,}")


def valid_timestamp(ts: Timestamp) -> bool:
    """Within protobuf's valid range: years 1-9999, nanos 0..999,999,999."""
    return 0 <= ts.nanos <= 999_999_999 and (
        TIMESTAMP_MIN_SECONDS <= ts.seconds <= TIMESTAMP_MAX_SECONDS
    )


def check_timestamp(ts: Timestamp, field: str) -> float:
    """Epoch seconds of a Timestamp within protobuf's valid range; anything else would be
    INTERNAL inside the protobuf library."""
    if not valid_timestamp(ts):
        raise InvalidRequest(
            f"{field} is not a valid Timestamp (seconds {ts.seconds}, nanos {ts.nanos}): seconds "
            f"must lie within years 1-9999 ({TIMESTAMP_MIN_SECONDS}..{TIMESTAMP_MAX_SECONDS}) "
            "and nanos within 0..999999999"
        )
    return (ts.seconds * 1_000_000_000 + ts.nanos) / 1e9


def timestamp(epoch: float) -> Timestamp:
    """Epoch seconds as a protobuf Timestamp (a float near either end of the valid range is
    held inside it: 9999-12-31T23:59:59.999999999Z is 253402300800.0 as a float)."""
    ts = Timestamp()
    nanos = round(epoch * 1e9)
    ts.FromNanoseconds(min(max(nanos, TIMESTAMP_MIN_NANOS), TIMESTAMP_MAX_NANOS))
    return ts


def check_url(url: str, field: str, limit: int) -> str:
    """Empty, or an absolute http(s) URL: a page renders it as a link, so `javascript:`,
    `data:` or a relative path must never get into a list."""
    check_length(url, limit, field, "characters")
    if not url:
        return url
    shown = url[:60] + ("..." if len(url) > 60 else "")
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or not url.isprintable()
        or any(c.isspace() for c in url)
    ):
        raise InvalidRequest(f"{field} must be an absolute http:// or https:// URL, got {shown!r}")
    return url


def check_events(events: Sequence[pb.Event], per: str, where: str = "") -> Sequence[pb.Event]:
    """At most MAX_EVENTS events; `per` says where the limit applies and `where` which message
    it is, for the error. (Each event's fields are checked as the batch is recorded.)"""
    if len(events) > MAX_EVENTS:
        raise InvalidRequest(f"{where}events has {len(events)} entries; at most {MAX_EVENTS} {per}")
    return events


def check_batch_id(batch_id: str, field: str = "batch_id") -> str:
    """Empty (no idempotency key) or an id: it becomes part of a Redis key."""
    return check_id(batch_id, field) if batch_id else ""


def check_article(message: pb.ArticleInput, field: str, limits: Limits = DEFAULT_LIMITS) -> Article:
    """An upserted article, every field bounded."""
    check_id(message.article_id, f"{field}.article_id")
    if not (message.title.strip() or message.body.strip()):
        raise InvalidRequest(f"{field} needs a title or a body")
    check_length(message.title, limits.title_chars, f"{field}.title", "characters")
    check_length(message.body, limits.body_chars, f"{field}.body", "characters")
    check_length(message.sections, MAX_LABELS, f"{field}.sections", "entries")
    check_length(message.tags, MAX_LABELS, f"{field}.tags", "entries")
    sections = [check_section(s, f"{field}.sections[{n}]") for n, s in enumerate(message.sections)]
    tags = [check_section(t, f"{field}.tags[{n}]") for n, t in enumerate(message.tags)]
    url = check_url(message.url, f"{field}.url", limits.url_chars)
    published = (
        check_timestamp(message.published_at, f"{field}.published_at")
        if message.HasField("published_at")
        else None
    )
    return Article(
        id=message.article_id,
        title=message.title.strip(),
        body=message.body,
        sections=tuple(dict.fromkeys(s for s in sections if s)),
        tags=tuple(dict.fromkeys(t for t in tags if t)),
        url=url,
        published_at=published,
    )


def check_upsert(
    request: pb.UpsertArticlesRequest, limits: Limits = DEFAULT_LIMITS
) -> list[Article]:
    """Every article of an UpsertArticles call, checked before any is written; the call's size
    is bounded in articles and in bytes (the gRPC receive limit is at least the byte bound)."""
    count = len(request.articles)
    if not 1 <= count <= limits.upsert_articles:
        raise InvalidRequest(
            f"articles must hold 1 to {limits.upsert_articles} entries, got {count}"
        )
    articles = [check_article(a, f"articles[{n}]", limits) for n, a in enumerate(request.articles)]
    if len({a.id for a in articles}) != len(articles):
        raise InvalidRequest("articles repeats an article_id")
    size = request.ByteSize()
    if size > limits.upsert_bytes:
        raise InvalidRequest(
            f"articles: the request has {size:,} bytes; at most {limits.upsert_bytes:,} a call "
            f"(send fewer articles per call)"
        )
    return articles
