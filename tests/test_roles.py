"""Replica roles (NEWSREC_ROLE): a reader answers reads and events and never loads the corpus
vectors; a writer places upserts and takedowns; both see each other's work through Redis within
the live-state interval. Two real `newsrec serve` processes on one namespace."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
import redis

from recommender.config import ConfigError, Settings, load_settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from tests.corpus import write_corpus
from tests.helpers import eventually, newsrec, newsrec_env
from tests.test_layout import mapped
from training.bench.processes import free_port, wait_serving
from training.pipeline import TrainConfig, train


@contextmanager
def replica(
    settings: Settings, role: str, log: Path
) -> Iterator[tuple[pb_grpc.RecommenderStub, int]]:
    """A `newsrec serve --role ROLE` process and a stub on it."""
    port = free_port()
    command = [sys.executable, "-m", "newsrec.cli", "serve", "--port", str(port), "--role", role]
    with log.open("w") as errors:
        proc = subprocess.Popen(command, env=newsrec_env(settings), stderr=errors)
        try:
            wait_serving(f"127.0.0.1:{port}")
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield pb_grpc.RecommenderStub(channel), proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def refused(call: object, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)  # type: ignore[operator]
    return caught.value


@pytest.mark.slow
def test_a_reader_and_a_writer_share_one_namespace(
    tmp_path: Path, settings: Settings, client: redis.Redis
) -> None:
    articles, clicks = write_corpus(tmp_path)
    config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                         progress=False)  # fmt: skip
    train(config, client, Keys(settings.namespace), log=lambda _m: None)
    with (
        replica(settings, "reader", tmp_path / "reader.err") as (reader, reader_pid),
        replica(settings, "writer", tmp_path / "writer.err") as (writer, _),
    ):
        assert reader.GetRelated(pb.GetRelatedRequest(article_id="tech-01")).items
        assert reader.GetPopular(pb.GetPopularRequest()).items
        event = pb.Event(article_id="tech-02", session_id="reader-1")
        # Events and model info: every role, on one shared state (the second is a repeat).
        assert reader.RecordEvents(pb.RecordEventsRequest(events=[event])).accepted == 1
        assert writer.RecordEvents(pb.RecordEventsRequest(events=[event])).deduplicated == 1
        for stub in (reader, writer):
            assert stub.GetModelInfo(pb.GetModelInfoRequest()).model_version
        article = pb.ArticleInput(article_id="tech-new", title="A new chip and a bigger battery",
                                  body="The chip maker shows a faster processor.")  # fmt: skip
        error = refused(reader.UpsertArticles, pb.UpsertArticlesRequest(articles=[article]))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "NEWSREC_ROLE=reader" in str(error.details()) and "writer" in str(error.details())
        error = refused(reader.DeleteArticle, pb.DeleteArticleRequest(article_id="tech-03"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        error = refused(writer.GetRelated, pb.GetRelatedRequest(article_id="tech-01"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "NEWSREC_ROLE=writer" in str(error.details())

        reply = writer.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]))
        assert reply.results[0].created and reply.results[0].related_count > 0
        writer.DeleteArticle(pb.DeleteArticleRequest(article_id="tech-03"))

        def reader_sees_the_writes() -> bool:
            new = reader.GetRelated(pb.GetRelatedRequest(article_id="tech-new", limit=50))
            old = reader.GetRelated(pb.GetRelatedRequest(article_id="tech-01", limit=50))
            return bool(new.items) and "tech-03" not in {i.article_id for i in old.items}

        assert eventually(reader_sees_the_writes, seconds=5)
        # The reader never loaded what places articles: no vectors, no encoder, no scipy.
        assert mapped(reader_pid) == set()


def test_an_unknown_role_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="role must be one of all, reader, writer"):
        load_settings(env={"NEWSREC_ROLE": "primary"})


@pytest.mark.slow
def test_a_publish_and_a_rollback_reach_every_replica_within_the_pointer_interval(
    tmp_path: Path, settings: Settings, client: redis.Redis
) -> None:
    """Replicas cache the live pointer at most pointer_cache_seconds (their sync loop re-reads
    it every 100 ms): a new version, and a rollback, are served by all of them within that."""
    articles, clicks = write_corpus(tmp_path)
    config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                         progress=False)  # fmt: skip
    keys = Keys(settings.namespace)
    first = train(config, client, keys, log=lambda _m: None).version
    bound = settings.pointer_cache_seconds + 0.5  # 0.5 s for process scheduling on CI

    def versions(stubs: list[pb_grpc.RecommenderStub]) -> set[str]:
        return {s.GetModelInfo(pb.GetModelInfoRequest()).model_version for s in stubs}

    with (
        replica(settings, "reader", tmp_path / "a.err") as (one, _),
        replica(settings, "all", tmp_path / "b.err") as (two, _),
    ):
        assert versions([one, two]) == {first}
        second = train(config, client, keys, log=lambda _m: None).version
        assert eventually(lambda: versions([one, two]) == {second}, seconds=bound)
        rolled = newsrec(settings, "rollback", "--to", first)
        assert rolled.returncode == 0, rolled.stderr
        assert eventually(lambda: versions([one, two]) == {first}, seconds=bound)
