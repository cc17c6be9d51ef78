"""A replica pointed at a read-only Redis (a real redis-server started as `--replicaof` another):
reads keep answering, writes answer UNAVAILABLE saying why, never INTERNAL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import write_corpus
from tests.helpers import RedisProcess, ServerThread, eventually
from training.pipeline import TrainConfig, train


@pytest.fixture
def read_only(tmp_path: Path, settings: Settings) -> Iterator[Settings]:
    """A primary with a trained model and a replica of it; settings on the replica."""
    primary = RedisProcess(tmp_path / "primary")
    replica = RedisProcess(tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port))
    try:
        articles, clicks = write_corpus(tmp_path)
        config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                             progress=False)  # fmt: skip
        keys = Keys(settings.namespace)
        train(config, primary.client(), keys, log=lambda _m: None)
        assert eventually(lambda: replica.client().get(keys.pointer) is not None, 20)
        yield replace(settings, redis_url=replica.url)
    finally:
        replica.kill()
        primary.kill()


@pytest.mark.slow
def test_a_read_only_redis_serves_reads_and_refuses_writes_as_unavailable(
    read_only: Settings,
) -> None:
    server = ServerThread(read_only)
    try:
        assert server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01")).items
        assert server.stub.GetPopular(pb.GetPopularRequest()).items
        event = pb.Event(article_id="tech-02", session_id="reader-1")
        writes = [
            lambda: server.stub.RecordEvents(pb.RecordEventsRequest(events=[event])),
            lambda: server.stub.DeleteArticle(pb.DeleteArticleRequest(article_id="tech-03")),
        ]
        for write in writes:
            with pytest.raises(grpc.RpcError) as caught:
                write()
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "read-only replica" in (caught.value.details() or "")
    finally:
        server.stop()
