"""The multi-key commands whose form differs on Redis Cluster, where no command may span hash
slots: redis-py's cluster client splits MSET and MGET by slot (one command per slot, pipelined
per node: not atomic, which a version's immutable keys never need). UNLINK, DEL and EXISTS it
splits by itself, and SCAN it sends to every primary; a single Redis keeps its one command."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster


def is_cluster(client: object) -> bool:
    """True for redis-py's cluster clients (sync or asyncio)."""
    return isinstance(client, RedisCluster | AsyncRedisCluster)


def set_many(client: Any, values: Mapping[str, bytes]) -> None:
    """One MSET on a single Redis; one per slot on a cluster."""
    if is_cluster(client):
        client.mset_nonatomic(values)
    else:
        client.mset(values)


def get_many(client: Any, names: Sequence[str]) -> list[Any]:
    """One MGET on a single Redis; one per slot on a cluster (values in the order asked)."""
    if not names:
        return []
    if is_cluster(client):
        return list(client.mget_nonatomic(list(names)))
    return list(client.mget(list(names)))
