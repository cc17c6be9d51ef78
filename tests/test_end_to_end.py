"""Train -> publish -> query over a real gRPC server, on the tiny obvious corpus."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import write_corpus
from tests.helpers import ServerThread, eventually
from training.pipeline import TrainConfig, TrainResult, train


def train_small(
    tmp_path: Path, settings: Settings, client: redis.Redis, **kw: object
) -> TrainResult:
    articles, clicks = write_corpus(tmp_path)
    config = TrainConfig(
        articles=articles,
        clicks=clicks,
        model_dir=settings.model_dir,
        progress=False,
        **kw,  # type: ignore[arg-type]
    )
    return train(config, client, Keys(settings.namespace), log=lambda _m: None)


@pytest.fixture
def trained(tmp_path: Path, settings: Settings, client: redis.Redis) -> TrainResult:
    return train_small(tmp_path, settings, client)


def status_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()


def test_no_model_published_is_failed_precondition(server: ServerThread) -> None:
    code = status_of(lambda: server.stub.GetRelated(pb.GetRelatedRequest(article_id="x")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    code = status_of(lambda: server.stub.GetPopular(pb.GetPopularRequest()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def test_related_is_same_topic_sorted_and_never_self(
    trained: TrainResult, server: ServerThread
) -> None:
    reply = server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-05"))
    assert reply.model_version == trained.version
    assert len(reply.items) == 10  # the default limit
    ids = [i.article_id for i in reply.items]
    assert "tech-05" not in ids
    assert all(i.startswith("tech-") for i in ids[:9])  # the 9 other tech stories lead
    scores = [i.score for i in reply.items]
    assert scores == sorted(scores, reverse=True)
    first = reply.items[0]
    assert first.title and first.url.startswith("https://example.org/tech/")
    assert first.sections[0] == "tech" and first.HasField("published_at")


def test_related_limit_exclude_and_section(trained: TrainResult, server: ServerThread) -> None:
    full = server.stub.GetRelated(pb.GetRelatedRequest(article_id="sport-04", limit=5))
    assert len(full.items) == 5
    excluded = [full.items[0].article_id, full.items[1].article_id]
    reply = server.stub.GetRelated(
        pb.GetRelatedRequest(article_id="sport-04", limit=5, exclude_ids=excluded)
    )
    ids = [i.article_id for i in reply.items]
    assert len(ids) == 5 and not set(ids) & set(excluded)
    assert ids[:3] == [i.article_id for i in full.items[2:5]]  # refilled from further down
    news = server.stub.GetRelated(
        pb.GetRelatedRequest(article_id="sport-04", limit=20, section="News")
    )
    assert news.items and all("news" in i.sections for i in news.items)


def test_popular_is_recent_and_counts_readers_once(
    trained: TrainResult, server: ServerThread
) -> None:
    reply = server.stub.GetPopular(pb.GetPopularRequest(limit=10))
    ids = [i.article_id for i in reply.items]
    # 15 readers within the hour beat 40 readers a day ago (6 h half-life) and one reloader
    assert ids[0] == "tech-01"
    assert ids.index("politics-03") < ids.index("sport-02")
    business = next(i for i in reply.items if i.article_id == "business-04")
    assert business.score == pytest.approx(1.0, abs=0.01)  # 30 reloads by one session: one read
    assert reply.as_of.seconds > 0
    sport = server.stub.GetPopular(pb.GetPopularRequest(section="sport"))
    assert [i.article_id for i in sport.items] == ["sport-02"]
    excluded = server.stub.GetPopular(pb.GetPopularRequest(limit=2, exclude_ids=["tech-01"]))
    assert [i.article_id for i in excluded.items] == ids[1:3]
    empty = server.stub.GetPopular(pb.GetPopularRequest(section="no-such-section"))
    assert list(empty.items) == []


def test_model_info(trained: TrainResult, server: ServerThread) -> None:
    info = server.stub.GetModelInfo(pb.GetModelInfoRequest())
    assert info.model_version == trained.version
    assert info.article_count == 40
    assert info.click_count == 95
    assert set(info.sections) == {"sport", "tech", "politics", "business", "news"}
    recorded = trained.meta["parameters"]["trending.half_life_hours"]
    assert json.loads(info.parameters["trending.half_life_hours"]) == recorded
    assert info.trained_at.seconds > 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetRelatedRequest(article_id=""), "article_id"),
        (pb.GetRelatedRequest(article_id="bad id!"), "article_id"),
        (pb.GetRelatedRequest(article_id="x" * 129), "article_id"),
        (pb.GetRelatedRequest(article_id="tech-01", limit=101), "limit"),
        (pb.GetRelatedRequest(article_id="tech-01", limit=-1), "limit"),
        (pb.GetRelatedRequest(article_id="tech-01", exclude_ids=["ok"] * 201), "exclude_ids"),
        (pb.GetRelatedRequest(article_id="tech-01", exclude_ids=["a b"]), "exclude_ids[0]"),
        (pb.GetRelatedRequest(article_id="tech-01", section="x" * 65), "section"),
    ],
)
def test_bad_related_requests_are_invalid_argument(
    trained: TrainResult, server: ServerThread, request_: pb.GetRelatedRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        server.stub.GetRelated(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in str(info.value.details())


def test_bad_popular_request_and_unknown_article(
    trained: TrainResult, server: ServerThread
) -> None:
    code = status_of(lambda: server.stub.GetPopular(pb.GetPopularRequest(limit=1000)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        server.stub.GetRelated(pb.GetRelatedRequest(article_id="no-such-article"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-article" in str(info.value.details())


def test_redis_unreachable_is_unavailable(settings: Settings) -> None:
    from dataclasses import replace

    down = ServerThread(replace(settings, redis_url="redis://127.0.0.1:1/0"))
    try:
        code = status_of(lambda: down.stub.GetRelated(pb.GetRelatedRequest(article_id="a")))
        assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        down.stop()


def test_health_and_reflection(
    server: ServerThread, tmp_path: Path, settings: Settings, client: redis.Redis
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(server.channel)

    def status(service: str) -> int:
        return health.Check(health_pb2.HealthCheckRequest(service=service)).status

    assert status("") == health_pb2.HealthCheckResponse.SERVING  # the process: liveness
    # Readiness: nothing published yet, nothing to serve.
    assert status("recommender.v1.Recommender") == health_pb2.HealthCheckResponse.NOT_SERVING
    train_small(tmp_path, settings, client)
    assert eventually(
        lambda: status("recommender.v1.Recommender") == health_pb2.HealthCheckResponse.SERVING
    )
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    answers = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert "recommender.v1.Recommender" in names
