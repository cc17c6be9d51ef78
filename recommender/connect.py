"""Redis clients built from Settings: the configured server (password or ACL user in the URL,
TLS with `rediss://` and the redis_tls_* files), a Redis Cluster reached through any of its
nodes (redis_cluster), or the embedded one when no URL is set."""

from __future__ import annotations

from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from recommender.config import ConfigError, Settings, mask_url
from recommender.embedded import resolve_redis_url
from recommender.store.keys import Keys

CLUSTER_SETTING = "redis_cluster (NEWSREC_REDIS_CLUSTER)"


def keys_for(settings: Settings) -> Keys:
    """The namespace's key names, hash-tagged where a cluster needs it (store/keys.py)."""
    return Keys(settings.namespace, cluster=settings.redis_cluster)


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


def cluster_url(settings: Settings) -> str:
    """The node a cluster client starts from: a TCP URL, since the embedded Redis (no URL) and
    Unix sockets are single nodes. ConfigError naming the settings otherwise."""
    url = settings.redis_url
    if not url:
        raise ConfigError(
            f"{CLUSTER_SETTING} is true but redis_url (NEWSREC_REDIS_URL) is empty: the embedded "
            "Redis is a single node; set redis_url to any node of the cluster (redis://host:port)"
        )
    if not url.startswith(("redis://", "rediss://")):
        raise ConfigError(
            f"{CLUSTER_SETTING} is true but redis_url {mask_url(url)!r} is not a redis:// or "
            "rediss:// host:port URL: a cluster's nodes are reached over TCP"
        )
    return url


def _not_a_cluster(settings: Settings, exc: Exception) -> ConfigError:
    return ConfigError(
        f"{CLUSTER_SETTING} is true but redis_url {mask_url(settings.redis_url)!r} is no usable "
        f"Redis Cluster node ({exc}): point redis_url at a cluster node, or unset redis_cluster "
        "for a single Redis"
    )


def _a_cluster(settings: Settings) -> ConfigError:
    return ConfigError(
        f"redis_url {mask_url(settings.redis_url)!r} is a Redis Cluster node: set "
        f"{CLUSTER_SETTING} to true"
    )


def sync_client(settings: Settings, timeout: float = 30.0) -> redis.Redis:
    """A client for commands and the training job; checked with a PING (and, on a single Redis,
    that it is not a cluster node, whose keys the plain client cannot follow)."""
    if settings.redis_cluster:
        url = cluster_url(settings)
        try:
            cluster = RedisCluster.from_url(url, **_options(settings, timeout))
        except RedisClusterException as exc:  # cluster mode disabled, db other than 0, ...
            raise _not_a_cluster(settings, exc) from None
        cluster.ping()
        # The cluster client serves the commands newsrec sends (multi-key ones go through
        # store/cluster.py, which splits them by slot), so callers keep one client type.
        return cast(redis.Redis, cluster)
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    client = redis.Redis.from_url(url, **_options(settings, timeout))
    client.ping()
    _refuse_cluster_node(client, settings)
    return client


def _refuse_cluster_node(client: redis.Redis, settings: Settings) -> None:
    """A cluster node behind a plain client answers MOVED for most keys: say which setting."""
    try:
        enabled = int(client.info("cluster").get("cluster_enabled", 0))
    except redis.ResponseError:  # INFO not allowed for this user: nothing to tell
        return
    if enabled:
        raise _a_cluster(settings)


def async_client(settings: Settings) -> aioredis.Redis:
    """The server's client (connects on first use): every command gives up after
    redis_timeout_seconds, so a slow Redis never holds a call longer than that. On a cluster,
    redis-py's cluster client (it learns the slots from the first node that answers)."""
    options = _options(settings, settings.redis_timeout_seconds)
    if settings.redis_cluster:
        try:
            cluster = AsyncRedisCluster.from_url(cluster_url(settings), **options)
        except RedisClusterException as exc:
            raise _not_a_cluster(settings, exc) from None
        return cast(aioredis.Redis, cluster)  # the same commands the server sends (see above)
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    return aioredis.Redis.from_url(url, **options)


async def check_server_client(client: aioredis.Redis, settings: Settings) -> None:
    """At `newsrec serve` start: ConfigError when redis_cluster does not match what redis_url
    names. An unreachable Redis is no config error: the server starts and its sync loop waits
    for it (health NOT_SERVING meanwhile)."""
    try:
        if settings.redis_cluster:
            await cast(AsyncRedisCluster, client).initialize()
            return
        info = await client.info("cluster")
    except RedisClusterException as exc:
        if "not enabled" in str(exc):
            raise _not_a_cluster(settings, exc) from None
        return
    except (redis.RedisError, OSError):
        return
    if int(info.get("cluster_enabled", 0)):
        raise _a_cluster(settings)
