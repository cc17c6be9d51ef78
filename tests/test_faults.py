"""Faults, each with real processes really broken: Redis going away and coming back, Redis
coming back empty, Redis too slow, and events acknowledged only once Redis has them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import write_corpus
from tests.helpers import RedisProcess, ServerThread, eventually, newsrec
from training.export import export_events
from training.pipeline import TrainConfig, train

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def readiness(server: ServerThread) -> int:
    health = health_pb2_grpc.HealthStub(server.channel)
    return health.Check(health_pb2.HealthCheckRequest(service="recommender.v1.Recommender")).status


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()


@pytest.fixture
def serving(
    trained_on: tuple[RedisProcess, Settings],
) -> Iterator[tuple[RedisProcess, Settings, ServerThread]]:
    """A replica on the trained Redis, ready (health SERVING)."""
    own, settings = trained_on
    server = ServerThread(settings)
    try:
        assert eventually(lambda: readiness(server) == SERVING)
        yield own, settings, server
    finally:
        server.stop()


@pytest.fixture
def trained_on(tmp_path: Path, settings: Settings) -> Iterator[tuple[RedisProcess, Settings]]:
    """A Redis of the test's own (append-only, so a restart keeps its data) with a trained
    model, and settings for a replica on it with short timeouts."""
    own = RedisProcess(tmp_path / "redis", persist=True)
    try:
        articles, clicks = write_corpus(tmp_path)
        config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                             progress=False)  # fmt: skip
        train(config, own.client(), Keys(settings.namespace), log=lambda _m: None)
        yield own, replace(settings, redis_url=own.url, redis_grace_seconds=1.0,
                           redis_timeout_seconds=0.5)  # fmt: skip
    finally:
        own.kill()


@pytest.mark.slow
def test_redis_away_cached_answers_go_on_health_follows_and_recovers(
    serving: tuple[RedisProcess, Settings, ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    own, _, server = serving
    cached = server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01"))
    assert cached.items
    caplog.set_level(logging.INFO, logger="newsrec")
    own.kill()
    again = server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01"), timeout=2)
    assert again == cached  # answered from the cache, no Redis needed
    started = time.monotonic()
    uncached = code_of(lambda: server.stub.GetRelated(
        pb.GetRelatedRequest(article_id="sport-02"), timeout=2))  # fmt: skip
    assert uncached == grpc.StatusCode.UNAVAILABLE and time.monotonic() - started < 2.5
    assert eventually(lambda: readiness(server) == NOT_SERVING, seconds=4)
    time.sleep(2)  # the outage goes on: the log must not repeat itself
    lost = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in caplog.records]
    own.start()
    back_at = time.monotonic()
    assert eventually(lambda: readiness(server) == SERVING, seconds=5)
    assert time.monotonic() - back_at < 2.5  # within about 2 s of Redis returning
    assert server.stub.GetRelated(pb.GetRelatedRequest(article_id="sport-02")).items
    assert any("Redis is back" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_redis_back_empty_keeps_serving_the_cache_and_says_so(
    serving: tuple[RedisProcess, Settings, ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    own, _, server = serving
    cached = server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01"))
    popular = server.stub.GetPopular(pb.GetPopularRequest())
    caplog.set_level(logging.INFO, logger="newsrec")
    own.client().flushall()  # what a restart without persistence leaves
    assert eventually(lambda: readiness(server) == NOT_SERVING, seconds=4)
    assert server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01")) == cached
    assert server.stub.GetPopular(pb.GetPopularRequest()).items == popular.items
    code = code_of(lambda: server.stub.GetRelated(pb.GetRelatedRequest(article_id="sport-03")))
    assert code == grpc.StatusCode.UNAVAILABLE  # not NOT_FOUND, not FAILED_PRECONDITION
    said = [r.getMessage() for r in caplog.records if "no longer holds" in r.getMessage()]
    assert len(said) == 1 and "newsrec publish" in said[0]


@pytest.mark.slow
def test_slow_redis_never_holds_a_call_past_its_deadline(
    serving: tuple[RedisProcess, Settings, ServerThread],
) -> None:
    own, _, server = serving
    own.client().execute_command("CLIENT", "PAUSE", "4000", "ALL")  # every command waits
    started = time.monotonic()
    code = code_of(lambda: server.stub.GetRelated(
        pb.GetRelatedRequest(article_id="sport-04"), timeout=0.3))  # fmt: skip
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - started < 1.5
    started = time.monotonic()  # no client deadline: redis_timeout_seconds bounds it
    code = code_of(lambda: server.stub.GetRelated(pb.GetRelatedRequest(article_id="sport-05")))
    assert code == grpc.StatusCode.UNAVAILABLE and time.monotonic() - started < 2.0
    event = pb.Event(article_id="tech-02", session_id="reader-1")
    code = code_of(lambda: server.stub.RecordEvents(
        pb.RecordEventsRequest(events=[event]), timeout=0.3))  # fmt: skip
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.slow
def test_events_are_acknowledged_only_once_redis_has_them(
    serving: tuple[RedisProcess, Settings, ServerThread],
) -> None:
    """A producer sends batches while Redis dies and comes back: every event answered OK is in
    Redis (export-events finds it); a batch whose answer was lost with the connection may be
    there too (a retry with its batch_id would not count it twice)."""
    own, settings, server = serving
    acknowledged, refused, stop = [0], [0], threading.Event()

    def produce() -> None:
        n = 0
        while not stop.is_set():
            events = [pb.Event(article_id=f"tech-0{i % 9 + 1}", session_id=f"s{n}-{i}")
                      for i in range(20)]  # fmt: skip
            try:
                reply = server.stub.RecordEvents(pb.RecordEventsRequest(events=events), timeout=2)
                acknowledged[0] += reply.accepted
            except grpc.RpcError as exc:
                assert exc.code() in (grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.DEADLINE_EXCEEDED), exc  # fmt: skip
                refused[0] += 1
            n += 1

    try:
        producer = threading.Thread(target=produce)
        producer.start()
        time.sleep(0.5)
        own.kill()
        time.sleep(1.0)
        own.start()
        assert eventually(lambda: readiness(server) == SERVING, seconds=5)
        time.sleep(0.5)
        stop.set()
        producer.join(timeout=30)
        assert refused[0] > 0 and acknowledged[0] > 0
        exported = export_events(own.client(), Keys(settings.namespace),
                                 own.folder / "events.jsonl")  # fmt: skip
        assert acknowledged[0] <= exported <= acknowledged[0] + 20  # at most the batch in flight
    finally:
        stop.set()


@pytest.mark.slow
def test_redis_restarted_empty_then_newsrec_publish_restores_the_replica(
    tmp_path: Path, settings: Settings
) -> None:
    """Redis without persistence restarts empty under a serving replica: cached answers go on;
    `newsrec publish --model-dir` republishes the folder on disk; health turns SERVING and
    answers the replica never cached come back as they were, with no restart of the replica."""
    own = RedisProcess(tmp_path / "redis", persist=False)
    replica = None
    try:
        live = replace(settings, redis_url=own.url, redis_grace_seconds=1.0,
                       redis_timeout_seconds=0.5)  # fmt: skip
        articles, clicks = write_corpus(tmp_path)
        config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                             progress=False)  # fmt: skip
        version = train(config, own.client(), Keys(settings.namespace), log=lambda _m: None).version
        ids = [f"{topic}-0{n}" for topic in ("tech", "sport") for n in range(1, 6)]
        fresh = ServerThread(live)  # what every article's answer was, from another replica
        expected = {i: fresh.stub.GetRelated(pb.GetRelatedRequest(article_id=i)) for i in ids}
        fresh.stop()
        replica = ServerThread(live)
        assert eventually(lambda: readiness(replica) == SERVING)
        cached = replica.stub.GetRelated(pb.GetRelatedRequest(article_id=ids[0]))
        own.kill()
        own.start()  # no persistence: an empty Redis
        assert not own.client().dbsize()
        assert eventually(lambda: readiness(replica) == NOT_SERVING, seconds=4)
        assert replica.stub.GetRelated(pb.GetRelatedRequest(article_id=ids[0])) == cached
        done = newsrec(live, "publish", "--model-dir", str(settings.model_dir))
        assert done.returncode == 0, done.stderr
        assert eventually(lambda: readiness(replica) == SERVING, seconds=5)
        for article_id in ids[1:]:  # never asked of this replica: from Redis, not its cache
            answer = replica.stub.GetRelated(pb.GetRelatedRequest(article_id=article_id))
            assert answer.model_version == version and answer == expected[article_id]
    finally:
        if replica is not None:
            replica.stop()
        own.kill()
