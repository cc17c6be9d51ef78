"""Redis clients built from Settings: the configured server, or the embedded one."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from recommender.config import Settings
from recommender.embedded import resolve_redis_url


def sync_client(settings: Settings, timeout: float = 30.0) -> redis.Redis:
    """A client for commands and the training job; checked with a PING."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=5)
    client.ping()
    return client


def async_client(settings: Settings) -> aioredis.Redis:
    """The server's client (connects on first use)."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    return aioredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)
