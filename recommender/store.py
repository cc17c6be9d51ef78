"""Redis key schema and encodings (the only module that knows them), and the async reader.

Layout under the namespace `ns`:
  ns:live                  the live version (the pointer; flipping it publishes a version)
  ns:versions              sorted set: published versions, scored by publish time
  ns:pending               sorted set: versions being written, scored by start time
  ns:v:<ver>:meta          JSON: the version's manifest summary
  ns:v:<ver>:rel:<id>      JSON: [[id, score, [sections]], ...] related candidates, best first
  ns:v:<ver>:art:<id>      JSON: {"title","url","sections","tags","published_at"}
  ns:v:<ver>:pop:<sec>     JSON: {"as_of": epoch, "items": [[id, score], ...]}; <sec> "*" = site
A version's keys never change once written, so they can be cached in-process without
invalidation. No command touches two keys at once, so the schema works on Redis Cluster.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import redis
import redis.asyncio as aioredis

from recommender.domain import Article
from recommender.errors import NoModelPublished, StoreUnavailable

SITE_WIDE = "*"


def section_key_part(section: str) -> str:
    """Sections are free text: normalise case and percent-encode them before they enter a key."""
    return quote(section.strip().lower(), safe="") if section else SITE_WIDE


class Keys:
    """Builds every Redis key name for one namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.pointer = f"{namespace}:live"
        self.versions = f"{namespace}:versions"
        self.pending = f"{namespace}:pending"

    def version_prefix(self, version: str) -> str:
        """Every key of one version starts with this (used to delete a version)."""
        return f"{self.namespace}:v:{version}:"

    def meta(self, version: str) -> str:
        """The version's manifest summary."""
        return f"{self.namespace}:v:{version}:meta"

    def related(self, version: str, article_id: str) -> str:
        """One article's related candidates."""
        return f"{self.namespace}:v:{version}:rel:{article_id}"

    def article(self, version: str, article_id: str) -> str:
        """One article's display record."""
        return f"{self.namespace}:v:{version}:art:{article_id}"

    def popular(self, version: str, section: str) -> str:
        """The Popular list of one section ("" = site-wide)."""
        return f"{self.namespace}:v:{version}:pop:{section_key_part(section)}"


# --- encodings -------------------------------------------------------------------------------

Candidate = tuple[str, float, tuple[str, ...]]


def encode_related(candidates: list[Candidate]) -> bytes:
    """Related candidates, best first, each with its sections for the section filter."""
    rows = [[cid, round(score, 6), list(sections)] for cid, score, sections in candidates]
    return json.dumps(rows, separators=(",", ":")).encode()


def decode_related(raw: bytes) -> list[Candidate]:
    """Inverse of encode_related."""
    return [(cid, float(score), tuple(sections)) for cid, score, sections in json.loads(raw)]


def encode_article(article: Article) -> bytes:
    """What a page needs to render one item; the body stays out of Redis."""
    record = {
        "title": article.title,
        "url": article.url,
        "sections": list(article.sections),
        "tags": list(article.tags),
        "published_at": article.published_at,
    }
    return json.dumps(record, separators=(",", ":")).encode()


def decode_article(article_id: str, raw: bytes) -> Article:
    """Inverse of encode_article (body left empty)."""
    record = json.loads(raw)
    return Article(
        id=article_id,
        title=record["title"],
        url=record["url"],
        sections=tuple(record["sections"]),
        tags=tuple(record["tags"]),
        published_at=record["published_at"],
    )


@dataclass(frozen=True)
class PopularList:
    """A section's trending scores as of one moment."""

    as_of: float
    items: list[tuple[str, float]]


def encode_popular(popular: PopularList) -> bytes:
    """A Popular list with the moment it describes."""
    items = [[aid, round(score, 6)] for aid, score in popular.items]
    return json.dumps({"as_of": popular.as_of, "items": items}, separators=(",", ":")).encode()


def decode_popular(raw: bytes) -> PopularList:
    """Inverse of encode_popular."""
    data = json.loads(raw)
    return PopularList(as_of=float(data["as_of"]), items=[(a, float(s)) for a, s in data["items"]])


def encode_meta(meta: dict[str, Any]) -> bytes:
    """The manifest summary a server reports through GetModelInfo."""
    return json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()


def decode_meta(raw: bytes) -> dict[str, Any]:
    """Inverse of encode_meta."""
    result: dict[str, Any] = json.loads(raw)
    return result


# --- reading ---------------------------------------------------------------------------------


class _LRU:
    """A small bounded cache; safe for versioned keys because they never change."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)


_MISSING = object()


class Store:
    """Async reads of the live version for the server: pointer cached ~1 s, versioned data LRU."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        pointer_cache_seconds: float = 1.0,
        cache_entries: int = 50_000,
    ) -> None:
        self.client = client
        self.keys = keys
        self.pointer_cache_seconds = pointer_cache_seconds
        self._pointer: str | None = None
        self._pointer_read_at = float("-inf")
        self._cache = _LRU(cache_entries)

    async def live_version(self) -> str:
        """The live version; on a Redis failure, the last one seen (else StoreUnavailable)."""
        now = time.monotonic()
        if self._pointer is not None and now - self._pointer_read_at < self.pointer_cache_seconds:
            return self._pointer
        try:
            raw = await self.client.get(self.keys.pointer)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if self._pointer is not None:
                return self._pointer
            raise StoreUnavailable(f"Redis unreachable: {exc}") from exc
        if raw is None:
            raise NoModelPublished("no model has been published yet: run `newsrec train`")
        self._pointer = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._pointer_read_at = now
        return self._pointer

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """GET several keys in one round trip (a pipeline, not MGET, so it works on a cluster)."""
        if not keys:
            return []
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                return list(await pipe.execute())
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"Redis unreachable: {exc}") from exc

    async def cached_many(self, keys: list[str], decode: Any) -> list[Any]:
        """Decoded values of immutable keys, from the cache where possible; None when missing."""
        values: list[Any] = [self._cache.get(k) for k in keys]
        todo = [i for i, v in enumerate(values) if v is None]
        if todo:
            fetched = await self.get_many([keys[i] for i in todo])
            for i, raw in zip(todo, fetched, strict=True):
                values[i] = _MISSING if raw is None else decode(keys[i], raw)
                self._cache.put(keys[i], values[i])
        return [None if v is _MISSING else v for v in values]

    async def related(self, version: str, article_id: str) -> list[Candidate] | None:
        """The stored related candidates of an article, or None when it is not in the version."""
        key = self.keys.related(version, article_id)
        (value,) = await self.cached_many([key], lambda _k, raw: decode_related(raw))
        return value

    async def articles(self, version: str, article_ids: list[str]) -> list[Article | None]:
        """Display records of several articles in one round trip."""
        keys = [self.keys.article(version, aid) for aid in article_ids]
        prefix = len(self.keys.article(version, ""))
        return await self.cached_many(keys, lambda k, raw: decode_article(k[prefix:], raw))

    async def popular(self, version: str, section: str) -> PopularList | None:
        """A section's Popular list, or None when the section has none."""
        key = self.keys.popular(version, section)
        (value,) = await self.cached_many([key], lambda _k, raw: decode_popular(raw))
        return value

    async def meta(self, version: str) -> dict[str, Any]:
        """The version's manifest summary."""
        (value,) = await self.cached_many([self.keys.meta(version)], lambda _k, r: decode_meta(r))
        if value is None:
            raise NoModelPublished(f"version {version} has no metadata in Redis")
        return value
