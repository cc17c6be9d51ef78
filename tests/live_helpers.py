"""Helpers of the live-update tests: train the tiny obvious corpus, click, upsert and poll a
real server (the fixtures are in tests/live_fixtures.py)."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import TOPICS
from tests.helpers import ServerThread
from training.pipeline import TrainConfig, TrainResult, train

TECH_TEXT = " ".join(TOPICS["tech"] * 6)


def retrain(
    articles: Path, clicks: Path | None, settings: Settings, client: redis.Redis
) -> TrainResult:
    config = TrainConfig(
        articles=articles, clicks=clicks, model_dir=settings.model_dir, progress=False
    )
    return train(config, client, Keys(settings.namespace), log=lambda _m: None)


def clicks(article_id: str, n: int, session: str = "s") -> list[pb.Event]:
    return [pb.Event(article_id=article_id, session_id=f"{session}{i}") for i in range(n)]


def popular_ids(server: ServerThread, section: str = "", limit: int = 10) -> list[str]:
    reply = server.stub.GetPopular(pb.GetPopularRequest(section=section, limit=limit))
    return [i.article_id for i in reply.items]


def upsert(
    server: ServerThread, article_id: str, body: str, sections: list[str]
) -> pb.UpsertResult:
    article = pb.ArticleInput(
        article_id=article_id,
        title=body[:40],
        body=body,
        sections=sections,
        url=f"https://example.org/{article_id}",
    )
    article.published_at.GetCurrentTime()
    reply = server.stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]))
    return reply.results[0]


def snapshot(client: redis.Redis, namespace: str) -> dict[bytes, bytes | None]:
    """Every key of the namespace with its serialized value: equal snapshots mean nothing was
    written in between."""
    return {k: client.dump(k) for k in client.scan_iter(match=f"{namespace}:*", count=1000)}


def counted(client: redis.Redis, keys: Keys, article_id: str, kind: str = "clicks") -> float:
    """An article's weight in the site-wide hour-bucket hashes of one kind (each event at an
    exact hour adds 1.0 there)."""
    total = 0.0
    for key in client.scan_iter(match=f"{keys.namespace}:rt:{kind}:h:*:*", count=1000):
        if key.decode().endswith(":*"):
            total += float(client.hget(key, article_id) or 0.0)
    return total


def at_hour(event: pb.Event, hours_ago: int = 1) -> pb.Event:
    """The event, timed at an exact hour (so its bucket weight is exactly 1.0)."""
    event.ts.FromSeconds((int(time.time()) // 3600 - hours_ago) * 3600)
    return event
