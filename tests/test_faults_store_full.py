"""Redis out of memory under a real server, on a redis-server the test starts with a small
--maxmemory and noeviction: event writes answer RESOURCE_EXHAUSTED and leave nothing of the
failed batch behind; once memory is freed a retry counts it exactly once, and a retry with the
same batch_id after success counts nothing more."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import write_corpus
from tests.helpers import ServerThread
from tests.live_helpers import at_hour, counted, retrain, snapshot
from tests.owned_redis import owned_redis, redis_servers, version_of
from training.export import export_events

FILLER = "filler"


@pytest.fixture(params=redis_servers() or [""], ids=lambda b: version_of(b) if b else "none")
def full_redis(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[tuple[ServerThread, redis.Redis, Keys]]:
    """A trained model on an owned Redis, a server on it, and the Redis then filled up."""
    options = ("--maxmemory", "64mb", "--maxmemory-policy", "noeviction")
    with owned_redis(*options, binary=request.param or None) as url:
        own = replace(settings, redis_url=url, live_cache_seconds=0.0)
        client = redis.Redis.from_url(url)
        retrain(*write_corpus(tmp_path), own, client)
        server = ServerThread(own)
        try:
            fill(client)
            yield server, client, Keys(own.namespace)
        finally:
            server.stop()
            client.close()


def fill(client: redis.Redis) -> None:
    """Write 4 MB more, then cap memory just below what is used: Redis refuses every write that
    needs memory (OOM) until the filler is deleted."""
    with contextlib.suppress(redis.ResponseError):
        for n in range(64):
            client.set(f"{FILLER}:{n}", b"x" * 65_536)
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 256 * 1024)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set(f"{FILLER}:probe", b"x")


def free(client: redis.Redis) -> None:
    for key in client.scan_iter(match=f"{FILLER}:*", count=1000):
        client.delete(key)


def batch(tag: str, n: int = 300, batch_id: str = "") -> pb.RecordEventsRequest:
    events = [at_hour(pb.Event(article_id="sport-07", session_id=f"{tag}{i}")) for i in range(n)]
    events += [at_hour(pb.Event(article_id="sport-08", type=pb.EVENT_TYPE_IMPRESSION))] * 10
    return pb.RecordEventsRequest(events=events, batch_id=batch_id)


def test_record_events_is_all_or_nothing(
    full_redis: tuple[ServerThread, redis.Redis, Keys], tmp_path: Path
) -> None:
    server, client, keys = full_redis
    request = batch("r", batch_id="oom-1")
    state = snapshot(client, keys.namespace)
    with pytest.raises(grpc.RpcError) as info:
        server.stub.RecordEvents(request)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "out of memory" in str(info.value.details())
    assert snapshot(client, keys.namespace) == state  # no set, counter, stream entry or record
    free(client)
    reply = server.stub.RecordEvents(request)  # the producer's retry
    assert (reply.accepted, reply.replayed_batches) == (310, 0)
    assert counted(client, keys, "sport-07") == pytest.approx(300.0)
    assert counted(client, keys, "sport-08", "views") == pytest.approx(10.0)
    assert export_events(client, keys, tmp_path / "out.jsonl") == 310
    fill(client)  # full again: a retry of a recorded batch_id still answers, counting nothing
    state = snapshot(client, keys.namespace)
    again = server.stub.RecordEvents(request)
    assert (again.accepted, again.replayed_batches) == (310, 1)
    assert snapshot(client, keys.namespace) == state
    free(client)
    assert server.stub.RecordEvents(request).replayed_batches == 1
    assert counted(client, keys, "sport-07") == pytest.approx(300.0)
    assert export_events(client, keys, tmp_path / "out.jsonl") == 310


def test_stream_event_batches_is_all_or_nothing_per_message(
    full_redis: tuple[ServerThread, redis.Redis, Keys], tmp_path: Path
) -> None:
    server, client, keys = full_redis
    messages = [batch(f"m{n}-", 300, f"stream-{n}") for n in range(4)]
    state = snapshot(client, keys.namespace)
    with pytest.raises(grpc.RpcError) as info:
        server.stub.StreamEventBatches(iter(messages))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert snapshot(client, keys.namespace) == state
    free(client)
    reply = server.stub.StreamEventBatches(iter(messages))
    assert (reply.accepted, reply.replayed_batches) == (4 * 310, 0)
    assert counted(client, keys, "sport-07") == pytest.approx(1200.0)
    again = server.stub.StreamEventBatches(iter(messages))
    assert (again.accepted, again.replayed_batches) == (4 * 310, 4)
    assert counted(client, keys, "sport-07") == pytest.approx(1200.0)
    assert counted(client, keys, "sport-08", "views") == pytest.approx(40.0)
    assert export_events(client, keys, tmp_path / "out.jsonl") == 4 * 310
    without_ids = [pb.RecordEventsRequest(events=m.events) for m in messages]
    fill(client)
    with pytest.raises(grpc.RpcError) as full:
        server.stub.StreamEventBatches(iter(without_ids))
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    free(client)  # without batch_ids the repeats are only deduplicated: impressions count again
    plain = server.stub.StreamEventBatches(iter(without_ids))
    assert (plain.accepted, plain.deduplicated) == (40, 1200)
    assert counted(client, keys, "sport-07") == pytest.approx(1200.0)
