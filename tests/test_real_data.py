"""End to end on real public news data from ../shared/data (skipped with a reason if absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.helpers import ServerThread, precision_at_k, shared_file
from training.pipeline import TrainConfig, train

BBC_FLOOR = 0.955  # issue 14 target with the shipped defaults, through gRPC


@pytest.mark.slow
def test_bbc_related_precision_over_grpc(
    settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    path = shared_file("bbc", "articles.jsonl")
    result = train(
        TrainConfig(articles=path, model_dir=settings.model_dir, progress=False),
        client,
        Keys(settings.namespace),
        log=lambda _m: None,
    )
    labels = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        labels[row["id"]] = {row["category"]}
    lists = {}
    for article_id in labels:
        reply = server.stub.GetRelated(pb.GetRelatedRequest(article_id=article_id, limit=10))
        assert reply.model_version == result.version
        lists[article_id] = [item.article_id for item in reply.items]
    precision = precision_at_k(lists, labels, k=10)
    print(f"\nBBC related precision@10 over gRPC: {precision:.4f}")
    assert precision >= BBC_FLOOR
    assert result.meta["duplicate_pairs"] > 100  # BBC republishes stories; they are found


@pytest.mark.slow
def test_mind_sample_trains_and_reports_unknown_ids(
    settings: Settings, client: redis.Redis, server: ServerThread, tmp_path: Path
) -> None:
    news = shared_file("mind-sample", "news.tsv")
    behaviors = shared_file("mind-sample", "behaviors.tsv")
    result = train(
        TrainConfig(articles=news, clicks=behaviors, model_dir=settings.model_dir, progress=False),
        client,
        Keys(settings.namespace),
        log=lambda _m: None,
    )
    assert result.events is not None
    assert result.events.unknown_ids > 0
    assert result.meta["inputs"]["clicks"]["unknown_article_ids"] == result.events.unknown_ids
    popular = server.stub.GetPopular(pb.GetPopularRequest(limit=10))
    assert len(popular.items) == 10
    assert popular.as_of.ToDatetime().strftime("%Y-%m-%d") == "2019-11-14"
    sports = server.stub.GetPopular(pb.GetPopularRequest(section="sports", limit=5))
    assert sports.items and all("sports" in i.sections for i in sports.items)
