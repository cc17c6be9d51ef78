"""What a replica can serve, from what its sync loop sees of Redis: the state behind the gRPC
health status and the state-change log lines.

The replica is ready (health SERVING for recommender.v1.Recommender) while Redis answers (or has
been unreachable for less than a grace) and holds a live model. Unreachable past the grace, or
a Redis that came back empty (no persistence) while this replica had a model: NOT_SERVING, so
load balancers route to healthy replicas; the replica keeps answering what it has cached. The
log says each change once, with a reminder at most every REMIND_SECONDS while it lasts.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger("newsrec.health")
REMIND_SECONDS = 60.0


class StoreHealth:
    """Redis reachability and the live model, as the sync loop reports them."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace = grace_seconds
        self.down_since: float | None = None
        self.version: str | None = None
        """The live version last seen (kept while Redis is down or lost it)."""
        self.model_lost = False
        """Redis answers but no longer holds the live model this replica was serving."""
        self._reminded = -math.inf

    def failed(self, error: Exception, now: float) -> None:
        """A sync could not reach Redis (or Redis failed the call)."""
        if self.down_since is None:
            self.down_since = now
            self._reminded = now
            log.warning("Redis unreachable: %s; answering from the cache, NOT_SERVING after "
                        "%.1f s", error, self.grace)  # fmt: skip
        elif now - self._reminded >= REMIND_SECONDS:
            self._reminded = now
            log.warning("Redis still unreachable after %.0f s: %s", now - self.down_since, error)

    def succeeded(self, now: float) -> None:
        """A sync reached Redis."""
        if self.down_since is not None:
            log.info("Redis is back after %.1f s", now - self.down_since)
            self.down_since = None

    def pointer(self, version: str | None, now: float) -> None:
        """The live-version pointer as Redis has it now (None: no pointer)."""
        if version is None:
            if self.version is not None and not self.model_lost:
                self.model_lost, self._reminded = True, now
                log.error("Redis no longer holds the live model %s (restarted empty?): "
                          "answering from the cache; republish it with `newsrec publish "
                          "--model-dir DIR`", self.version)  # fmt: skip
            elif self.model_lost and now - self._reminded >= REMIND_SECONDS:
                self._reminded = now
                log.error("Redis still holds no live model (last: %s)", self.version)
            return
        if self.model_lost:
            log.info("live model back in Redis: version %s", version)
            self.model_lost = False
        elif self.version is not None and version != self.version:
            log.info("live model version %s -> %s", self.version, version)
        elif self.version is None:
            log.info("live model version %s", version)
        self.version = version

    def redis_up(self, now: float) -> bool:
        """Redis answers, or has been unreachable for less than the grace."""
        return self.down_since is None or now - self.down_since < self.grace

    def serving(self, now: float) -> bool:
        """Ready for traffic: Redis up (within the grace) and a live model in it."""
        return self.redis_up(now) and self.version is not None and not self.model_lost
