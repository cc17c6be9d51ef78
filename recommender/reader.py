"""Async reads for the server: the live version's lists merged with live state.

A background task re-reads the pointer and the live-state epoch every `sync_interval` (0.1 s), so
requests resolve both without a round trip and a takedown or upsert made through any replica
reaches every replica within that interval. A GetRelated then reads its list and its live
insertions in one pipeline, and the display records it lacks in a second. Versioned values never
change, so they are cached in-process; live sets (takedowns, upserted ids) are reloaded only when
the epoch moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis

from recommender import metrics
from recommender.cache import LRU
from recommender.domain import Article
from recommender.errors import NewsrecError, NoModelPublished, StoreUnavailable, store_error
from recommender.health import StoreHealth
from recommender.live.config import VersionConfig
from recommender.rules.model import RuleSet
from recommender.store import codec
from recommender.store.codec import Candidate, PopularList, text
from recommender.store.keys import Keys

REDIS_FAILED = (redis.RedisError, OSError, redis.exceptions.RedisClusterException)
"""Every failure of a Redis call: unreachable, timed out, out of memory, read-only, scripts,
and the cluster client's own (no node reachable, a slot no node serves)."""
log = logging.getLogger("newsrec.reader")


_MISSING = object()


def failed(exc: Exception) -> NewsrecError:
    """The domain error of a failed Redis call, counted by kind."""
    error = store_error(exc)
    metrics.REDIS_ERRORS.labels(type(error).__name__).inc()
    return error


class Reader:
    """Everything the read RPCs need from Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        pointer_cache_seconds: float = 1.0,
        cache_entries: int = 50_000,
        health: StoreHealth | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.pointer_cache_seconds = pointer_cache_seconds
        self._pointer: str | None = None
        self._pointer_read_at = float("-inf")
        self._cache = LRU(cache_entries)
        self.epoch = -1
        self.deleted: frozenset[str] = frozenset()
        self.upserted: frozenset[str] = frozenset()
        self.rules = RuleSet()
        """Editorial pins and blocks (recommender/rules/), reloaded with the live sets."""
        self._synced_at = float("-inf")
        self._sync_task: asyncio.Task[None] | None = None
        self._config: tuple[str, VersionConfig] | None = None
        self.health = health or StoreHealth(grace_seconds=3.0)
        self.on_health: Callable[[bool], object] = lambda _serving: None
        """Called with the new readiness whenever it changes (the server sets the status)."""
        self._serving: bool | None = None
        self._metered: str | None = None

    async def sync(self) -> None:
        """Re-read the pointer and the live-state epoch in one round trip. A Redis without a
        pointer (never published, or restarted empty) leaves what this replica knew in place:
        its version, and its takedowns, which must not come back."""
        pointer, epoch = await self.run(
            lambda p: (p.get(self.keys.pointer), p.get(self.keys.epoch))
        )
        now = time.monotonic()
        self.health.succeeded(now)
        self.health.pointer(None if pointer is None else text(pointer), now)
        if pointer is None:
            return
        self._pointer, self._pointer_read_at = text(pointer), now
        await self.sync_live(epoch)
        self._synced_at = now
        if self._metered != self._pointer:  # the gauges follow the live version
            meta = await self.meta(self._pointer)
            metrics.live_model(self._pointer, float(meta.get("trained_at", 0.0)))
            self._metered = self._pointer

    def start_sync(self, interval: float = 0.1, longest: float = 1.0) -> None:
        """Keep pointer and live sets fresh in the background; while Redis fails, try again
        after doubling pauses up to `longest` (so recovery is seen within about a second)."""

        async def loop() -> None:
            delay = interval
            while True:
                try:
                    await self.sync()
                    delay = interval
                except NewsrecError as exc:
                    self.health.failed(exc, time.monotonic())
                    delay = min(max(2 * delay, interval), longest)
                except Exception:  # a bug must not end the loop: the replica would go stale
                    log.exception("live-state sync failed; retrying")
                    delay = min(max(2 * delay, interval), longest)
                self._report_health()
                await asyncio.sleep(delay)

        self._sync_task = asyncio.get_running_loop().create_task(loop())

    def _report_health(self) -> None:
        now = time.monotonic()
        metrics.REDIS_UP.set(int(self.health.down_since is None))
        metrics.MODEL_LOST.set(int(self.health.model_lost))
        serving = self.health.serving(now)
        if serving != self._serving:
            self._serving = serving
            self.on_health(serving)

    def lost(self, version: str) -> None:
        """Raise StoreUnavailable when Redis lost the live model: a missing versioned key then
        means the data is gone, not that the article is unknown."""
        if self.health.model_lost:
            raise StoreUnavailable(
                f"Redis no longer holds the live model {version} (restarted empty?); "
                "republish it with `newsrec publish --model-dir DIR`"
            )

    async def stop_sync(self) -> None:
        """Cancel the background task."""
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
            self._sync_task = None

    async def ensure_synced(self, max_age: float = 1.0) -> None:
        """Sync inline when no background task keeps the live sets fresh (and they are older
        than max_age); with the task, a Redis outage never makes a call wait on a sync."""
        if self._sync_task is None and time.monotonic() - self._synced_at > max_age:
            await self.refresh_live()
            self._synced_at = time.monotonic()

    async def live_version(self) -> str:
        """The live version, read at most every pointer_cache_seconds (the background sync
        refreshes it every 100 ms anyway). While Redis is down, or has lost the model, the last
        one seen, without a round trip; with none seen, StoreUnavailable or NoModelPublished."""
        now = time.monotonic()
        if self._pointer is not None and (
            now - self._pointer_read_at < self.pointer_cache_seconds
            or self.health.down_since is not None
            or self.health.model_lost
        ):
            return self._pointer
        metrics.REDIS_ROUND_TRIPS.inc()
        try:
            raw = await self.client.get(self.keys.pointer)
        except REDIS_FAILED as exc:
            if self._pointer is not None:
                return self._pointer
            raise failed(exc) from exc
        if raw is None:
            if self._pointer is not None:  # Redis lost it: the sync loop says so
                return self._pointer
            raise NoModelPublished("no model has been published yet: run `newsrec train`")
        self._pointer = text(raw)
        self._pointer_read_at = now
        return self._pointer

    async def run(self, build: Callable[[Any], object]) -> list[Any]:
        """Execute the commands `build` queues on a pipeline, in one round trip."""
        metrics.REDIS_ROUND_TRIPS.inc()
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                build(pipe)
                return list(await pipe.execute())
        except REDIS_FAILED as exc:
            raise failed(exc) from exc

    async def sync_live(self, epoch_raw: Any) -> None:
        """Reload takedowns, upserted ids and rules when the live-state epoch has moved."""
        epoch = int(epoch_raw or 0)
        if epoch == self.epoch:
            return
        deleted, upserted, rules = await self.run(
            lambda p: (
                p.smembers(self.keys.deleted),
                p.hkeys(self.keys.upserted),
                p.hgetall(self.keys.rules),
            )
        )
        self.deleted = frozenset(text(d) for d in deleted)
        self.upserted = frozenset(text(u) for u in upserted)
        self.rules = RuleSet.decode(rules)
        self.epoch = epoch

    def apply_own_upserts(self, epoch: int, article_ids: list[str]) -> bool:
        """This process's upserts moved the epoch to `epoch` (its INCR's answer). When that is
        the next epoch after the one synced (no other change came between), apply them here
        instead of reloading both live sets (HKEYS of every upserted id, twice an upsert);
        True if applied. A change another replica wrote but has not counted yet shows when its
        own INCR moves the epoch again."""
        if epoch != self.epoch + 1:
            return False
        added = frozenset(article_ids)
        self.upserted, self.deleted = self.upserted | added, self.deleted - added
        self.epoch = epoch
        return True

    async def refresh_live(self) -> None:
        """Resync live sets now (one GET, plus a reload if they changed)."""
        metrics.REDIS_ROUND_TRIPS.inc()
        try:
            epoch = await self.client.get(self.keys.epoch)
        except REDIS_FAILED as exc:
            raise failed(exc) from exc
        await self.sync_live(epoch)

    async def related(self, version: str, article_id: str) -> list[Candidate] | None:
        """An article's candidates, best first, with live insertions merged in; None if unknown.

        Deleted ids are left in: the caller filters them so it can refill from further down.
        """
        key = self.keys.related(version, article_id)
        cached = self._cache.get(key)

        def build(pipe: Any) -> None:
            pipe.get(self.keys.live_related(article_id))
            pipe.zrevrange(self.keys.live_inserts(article_id), 0, -1, withscores=True)
            if cached is None:
                pipe.get(key)

        await self.ensure_synced()
        live_raw, inserts, *rest = await self.run(build)
        if cached is None:
            if rest[0] is None:
                self.lost(version)
            cached = _MISSING if rest[0] is None else codec.decode_related(rest[0])
            self._cache.put(key, cached)
        if article_id in self.deleted:
            return None
        if live_raw is not None:
            base = codec.decode_related(live_raw)
        elif cached is not _MISSING:
            base = cached
        else:
            return None
        if not inserts:
            return list(base)
        inserted_ids = [text(m) for m, _ in inserts]
        records = await self.articles(version, inserted_ids)
        extra = [
            (aid, float(score), rec.sections)
            for aid, (_, score), rec in zip(inserted_ids, inserts, records, strict=True)
            if rec is not None
        ]
        merged: dict[str, Candidate] = {}
        for cand in sorted([*base, *extra], key=lambda c: -c[1]):
            merged.setdefault(cand[0], cand)
        return list(merged.values())

    async def base_related(self, version: str, article_id: str) -> list[Candidate] | None:
        """An article's list as the version published it (no live insertions), cached."""
        key = self.keys.related(version, article_id)
        cached = self._cache.get(key)
        if cached is None:
            (raw,) = await self.run(lambda p: [p.get(key)])
            cached = _MISSING if raw is None else codec.decode_related(raw)
            self._cache.put(key, cached)
        return None if cached is _MISSING else cached

    async def articles(self, version: str, article_ids: list[str]) -> list[Article | None]:
        """Display records: upserted ids from live state, the rest from the version (cached).

        An id the version lacks may have been upserted through another replica a moment ago,
        before this process's live sets caught up: its live record is looked up too; and an id
        still in this process's upserted set may have been folded into the version by a retrain
        since: its version record is looked up too.
        """
        result: list[Article | None] = [None] * len(article_ids)
        fetch: list[tuple[int, str, bool]] = []  # (position, key, is_live)
        for n, aid in enumerate(article_ids):
            if aid in self.upserted:
                fetch.append((n, self.keys.live_doc(aid), True))
                continue
            key = self.keys.article(version, aid)
            value = self._cache.get(key)
            if value is None:
                fetch.append((n, key, False))
            elif value is not _MISSING:
                result[n] = value
        if fetch:
            raws = await self.run(lambda p: [p.get(key) for _, key, _ in fetch])
            if any(raw is None and not live for (_, _, live), raw in zip(fetch, raws, strict=True)):
                self.lost(version)
            for (n, key, live), raw in zip(fetch, raws, strict=True):
                record = None if raw is None else codec.decode_article(article_ids[n], raw)
                if not live:
                    self._cache.put(key, _MISSING if record is None else record)
                result[n] = record
        # Live sets a moment stale, either way: an id upserted through another replica is only in
        # live state yet, and an upsert a retrain folded is only in the new version now.
        live_ids = {n for n, _, live in fetch if live}
        late = [(n, self.keys.live_doc(aid)) for n, aid in enumerate(article_ids)
                if result[n] is None and n not in live_ids]  # fmt: skip
        late += [(n, self.keys.article(version, article_ids[n])) for n in sorted(live_ids)
                 if result[n] is None]  # fmt: skip
        if late:
            raws = await self.run(lambda p: [p.get(key) for _, key in late])
            for (n, _), raw in zip(late, raws, strict=True):
                if raw is not None:
                    result[n] = codec.decode_article(article_ids[n], raw)
        return result

    async def popular(self, version: str, section: str, window: str = "") -> PopularList | None:
        """A section's nightly Popular list, of the fitted model or a named window (None when
        the section has none)."""
        key = (self.keys.popular_window(version, window, section) if window
               else self.keys.popular(version, section))  # fmt: skip
        value = self._cache.get(key)
        if value is None:
            (raw,) = await self.run(lambda p: p.get(key))
            if raw is None:
                self.lost(version)
            value = _MISSING if raw is None else codec.decode_popular(raw)
            self._cache.put(key, value)
        return None if value is _MISSING else value

    async def config(self, version: str) -> VersionConfig:
        """The version's parameters (parsed once per version)."""
        if self._config is None or self._config[0] != version:
            self._config = (version, VersionConfig.from_meta(await self.meta(version)))
        return self._config[1]

    async def meta(self, version: str) -> dict[str, Any]:
        """The version's manifest summary."""
        key = self.keys.meta(version)
        value = self._cache.get(key)
        if value is None:
            (raw,) = await self.run(lambda p: p.get(key))
            if raw is None:
                self.lost(version)
                raise NoModelPublished(f"version {version} has no metadata in Redis")
            value = codec.decode_meta(raw)
            self._cache.put(key, value)
        return value
