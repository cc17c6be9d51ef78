"""Redis clients built from Settings: the configured server (password or ACL user in the URL,
TLS with `rediss://` and the redis_tls_* files), or the embedded one when none is set."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

from recommender.config import Settings
from recommender.embedded import resolve_redis_url


def _options(settings: Settings, timeout: float) -> dict[str, Any]:
    """Timeouts, and the TLS files for rediss:// URLs."""
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if settings.redis_url.startswith("rediss://"):
        if settings.redis_tls_ca:
            options["ssl_ca_certs"] = settings.redis_tls_ca
        if settings.redis_tls_cert:
            options["ssl_certfile"] = settings.redis_tls_cert
            options["ssl_keyfile"] = settings.redis_tls_key or None
    return options


def sync_client(settings: Settings, timeout: float = 30.0) -> redis.Redis:
    """A client for commands and the training job; checked with a PING."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    client = redis.Redis.from_url(url, **_options(settings, timeout))
    client.ping()
    return client


def async_client(settings: Settings) -> aioredis.Redis:
    """The server's client (connects on first use): every command gives up after
    redis_timeout_seconds, so a slow Redis never holds a call longer than that."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    return aioredis.Redis.from_url(url, **_options(settings, settings.redis_timeout_seconds))
