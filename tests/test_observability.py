"""What operators see of a real `newsrec serve` process: Prometheus metrics on its own port,
JSON log lines, state changes and one audit line per write."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from tests.corpus import write_corpus
from tests.helpers import eventually, newsrec_env
from training.bench.processes import free_port, wait_serving
from training.pipeline import TrainConfig, train

SECRET = "zz-0ps-s3cret-zz"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
def test_metrics_and_json_logs_of_a_serving_process(
    tmp_path: Path, settings: Settings, client: redis.Redis
) -> None:
    articles, clicks = write_corpus(tmp_path)
    config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                         progress=False)  # fmt: skip
    version = train(config, client, Keys(settings.namespace), log=lambda _m: None).version
    port, metrics_port = free_port(), free_port()
    env = newsrec_env(replace(settings), NEWSREC_METRICS_PORT=str(metrics_port),
                      NEWSREC_LOG_FORMAT="json", NEWSREC_WRITE_TOKEN=f"ops={SECRET}")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "newsrec.cli", "serve", "--port", str(port)],
                            env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}", service="recommender.v1.Recommender")
        token = [("authorization", f"Bearer {SECRET}")]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RecommenderStub(channel)
            for _ in range(3):
                stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01"))
            events = [pb.Event(article_id="tech-02", session_id="r1"), pb.Event(article_id="b d")]
            stub.RecordEvents(pb.RecordEventsRequest(events=events), metadata=token)
            article = pb.ArticleInput(article_id="tech-new", title="A new chip and battery")
            stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]), metadata=token)
            stub.DeleteArticle(pb.DeleteArticleRequest(article_id="tech-03"), metadata=token)
            with pytest.raises(grpc.RpcError):
                stub.DeleteArticle(pb.DeleteArticleRequest(article_id="tech-04"))  # no token
        # A refused call's metric is recorded as the call ends, which may be just after the
        # client has its error: scrape until it is there (the values are then final).
        refused = (
            "newsrec_requests_total",
            (("code", "UNAUTHENTICATED"), ("method", "DeleteArticle")),
        )
        assert eventually(lambda: refused in scrape(metrics_port), seconds=5)
        got = scrape(metrics_port)
    finally:
        proc.terminate()
        _, log = proc.communicate(timeout=30)

    def value(name: str, **labels: str) -> float:
        return got.get((name, tuple(sorted(labels.items()))), -1.0)

    assert value("newsrec_requests_total", method="GetRelated", code="OK") == 3
    assert value("newsrec_request_seconds_count", method="GetRelated") == 3
    assert value("newsrec_requests_total", method="DeleteArticle", code="UNAUTHENTICATED") == 1
    assert value("newsrec_answer_cache_total", result="hit") == 2
    assert value("newsrec_answer_cache_total", result="miss") == 1
    assert value("newsrec_events_total", outcome="accepted", reason="") == 1
    assert value("newsrec_events_total", outcome="rejected", reason="malformed_id") == 1
    assert value("newsrec_upserts_total") == 1 and value("newsrec_takedowns_total") == 1
    for stage in ("vectorize", "encode", "score_words", "score", "write"):
        assert value("newsrec_upsert_stage_seconds_count", stage=stage) == 1, stage
        assert value("newsrec_upsert_stage_seconds_sum", stage=stage) > 0, stage
    assert value("newsrec_model_version", version=version) == 1
    assert 0 < value("newsrec_model_age_seconds") < 600
    assert value("newsrec_serving") == 1 and value("newsrec_redis_up") == 1
    assert value("newsrec_model_lost") == 0 and value("newsrec_redis_round_trips_total") > 3
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line JSON
    messages = [(entry["logger"], entry["message"]) for entry in lines]
    assert ("newsrec.health", f"live model version {version}") in messages
    assert ("newsrec.audit", "UpsertArticles articles tech-new by token:ops: OK") in messages
    assert ("newsrec.audit", "DeleteArticle article 'tech-03' by token:ops: OK") in messages
    assert SECRET not in log
