"""Redis Cluster (NEWSREC_REDIS_CLUSTER): a real three-primary cluster on loopback ports serves
the same answers as a single Redis on the same inputs, prunes old versions on every primary,
rides out a primary's restart, and refuses settings that do not match the Redis it names."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from recommender.config import ConfigError, Settings
from recommender.connect import async_client, check_server_client, keys_for, sync_client
from recommender.live.cluster_events import counter_increments
from recommender.live.counters import CounterPlan
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.cluster_script import Side, related, steps
from tests.corpus import write_corpus
from tests.helpers import RedisProcess, eventually
from tests.redis_cluster import RedisClusterProcess


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcess]:
    running = RedisClusterProcess(tmp_path_factory.mktemp("cluster"))
    yield running
    running.stop()


@pytest.fixture
def on_cluster(settings: Settings, cluster: RedisClusterProcess, tmp_path: Path) -> Settings:
    """The test's settings, on the cluster (same namespace, a model folder of its own)."""
    return replace(settings, redis_url=cluster.url, redis_cluster=True,
                   model_dir=tmp_path / "cluster-models", live_cache_seconds=0.0)  # fmt: skip


def test_control_keys_share_a_slot_and_versions_spread() -> None:
    keys = Keys("news", cluster=True)
    assert [keys.pointer, keys.lock] == ["{news}:current", "{news}:lock"]
    control = {key_slot(k.encode()) for k in (keys.pointer, keys.versions, keys.pending, keys.lock)}
    assert len(control) == 1
    spread = {key_slot(keys.related("V1", f"a{n}").encode()) for n in range(100)}
    assert len(spread) > 90
    assert Keys("news").pointer == "news:current"  # a single Redis keeps its names


def test_computed_amounts_reach_redis_as_the_script_sends_them(
    client: redis.Redis, namespace: str
) -> None:
    """A slot whose pending clicks all repeat adds its base weight: a number the script computed,
    which Redis formats as %.17g for HINCRBYFLOAT (0.1 -> 0.10000000000000001), not as repr."""
    plan = CounterPlan(keys=[f"{namespace}:h"], slots=[("a", (0,))], base=[0.1], pending=[0.25],
                       waiting=[1], templates=[[(0, 0.25)]], template_of=[-1, 0])  # fmt: skip
    ((key, article, amount),) = counter_increments(plan, [0.35], repeats=[0], counted=1)
    assert (key, article, amount) == (f"{namespace}:h", "a", "0.10000000000000001")
    client.eval("redis.call('HINCRBYFLOAT', KEYS[1], 'a', tonumber(ARGV[1]))", 1, key, "0.1")
    client.execute_command("HINCRBYFLOAT", f"{namespace}:ours", article, amount)
    assert client.hget(f"{namespace}:ours", "a") == client.hget(key, "a")


@pytest.mark.slow
def test_same_answers_as_a_single_redis(
    settings: Settings, on_cluster: Settings, cluster: RedisClusterProcess, tmp_path: Path
) -> None:
    articles, clicks = write_corpus(tmp_path)
    base = (int(time.time()) // 3600 - 1) * 3600.0
    single_settings = replace(settings, live_cache_seconds=0.0)
    sides = [Side(single_settings, sync_client(single_settings), keys_for(single_settings)),
             Side(on_cluster, sync_client(on_cluster), keys_for(on_cluster))]  # fmt: skip
    assert type(sides[1].client).__name__ == "RedisCluster"
    try:
        for name, step in steps(articles, clicks, base):
            single, clustered = step(sides[0]), step(sides[1])
            assert _comparable(clustered) == _comparable(single), name
            if name.startswith("popular"):
                assert _scores(clustered) == pytest.approx(_scores(single), rel=1e-4), name
        first, second = sides[1].versions
        assert _popular_ids(sides[1]), "Popular had lists to compare"
        on_nodes = [
            len(n.client().keys(f"{on_cluster.namespace}:v:{first}:*")) for n in cluster.nodes
        ]
        assert all(on_nodes), f"a version's keys spread over every primary: {on_nodes}"
        for side in sides:  # keep 2: the rolled-back-to first version goes, from every primary
            side.train(articles, clicks, keep=2)
        assert cluster.keys_everywhere(f"{on_cluster.namespace}:v:{first}:*") == []
        assert cluster.keys_everywhere(f"{on_cluster.namespace}:v:{second}:*")
        assert len(sides[0].client.zrange(sides[0].keys.versions, 0, -1)) == 2
        assert len(sides[1].client.zrange(sides[1].keys.versions, 0, -1)) == 2
    finally:
        for side in sides:
            side.stop()


def _comparable(answer: object) -> object:
    """The answer without Popular's wall-clock-dependent scores."""
    if isinstance(answer, list):
        return [_comparable(a) for a in answer]
    if isinstance(answer, tuple) and answer and answer[0] == "scores":
        return answer[2]
    return answer


def _scores(answer: object) -> list[float]:
    assert isinstance(answer, list)
    return [s for _, scores, _ in answer for s in scores]


def _popular_ids(side: Side) -> list[str]:
    reply = side.stub.GetPopular(pb.GetPopularRequest(limit=10))
    return [i.article_id for i in reply.items]


@pytest.mark.slow
def test_a_primary_restarts_under_a_serving_replica(
    on_cluster: Settings, cluster: RedisClusterProcess, tmp_path: Path
) -> None:
    """Cached answers keep coming while one primary is down; the rest fail as UNAVAILABLE and
    come back once it is up again, without restarting the server."""
    articles, clicks = write_corpus(tmp_path)
    side = Side(on_cluster, sync_client(on_cluster), keys_for(on_cluster))
    side.train(articles, clicks)
    version = side.versions[0]
    ids = [f"{t}-{n:02d}" for t in ("sport", "tech", "politics", "business") for n in range(10)]
    down = cluster.node_of(side.keys.related(version, ids[0]))
    on_down = [a for a in ids if cluster.node_of(side.keys.related(version, a)) is down]
    assert len(on_down) >= 2, "the corpus puts two related lists on one primary"
    cached, uncached = on_down[0], on_down[1]
    reference = Side(on_cluster, side.client, side.keys)  # a second replica, to compare with
    expected = related(reference, [cached, uncached])
    reference.stop()
    try:
        assert related(side, [cached]) == expected[:1]
        down.kill()
        assert related(side, [cached]) == expected[:1]  # from the server's caches
        assert related(side, [uncached]) == [("error", "UNAVAILABLE")]
        down.start()
        assert eventually(cluster.ready, 30)
        assert eventually(lambda: related(side, [uncached]) == expected[1:], 30)
        reply = side.stub.RecordEvents(
            pb.RecordEventsRequest(events=[pb.Event(article_id=uncached, session_id="back")])
        )
        assert reply.accepted == 1
    finally:
        side.stop()


def test_settings_that_do_not_match_the_redis_are_refused(
    settings: Settings, cluster: RedisClusterProcess, tmp_path: Path
) -> None:
    embedded = replace(settings, redis_url="", redis_cluster=True)
    with pytest.raises(ConfigError, match=r"redis_cluster \(NEWSREC_REDIS_CLUSTER\).*embedded"):
        sync_client(embedded)
    with pytest.raises(ConfigError, match="redis_cluster"):
        async_client(embedded)
    single = RedisProcess(tmp_path / "single")
    try:
        plain = replace(settings, redis_url=single.url, redis_cluster=True)
        with pytest.raises(ConfigError, match="no usable Redis Cluster node"):
            sync_client(plain)
        with pytest.raises(ConfigError, match="no usable Redis Cluster node"):
            asyncio.run(check_server_client(async_client(plain), plain))
    finally:
        single.stop()
    node = replace(settings, redis_url=cluster.url, redis_cluster=False)
    with pytest.raises(ConfigError, match=r"is a Redis Cluster node: set redis_cluster"):
        sync_client(node)
    with pytest.raises(ConfigError, match=r"is a Redis Cluster node: set redis_cluster"):
        asyncio.run(check_server_client(async_client(node), node))
