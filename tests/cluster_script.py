"""One script of training, reads and writes that tests/test_cluster.py runs against a single Redis
and a Redis Cluster, step by step, comparing what each step answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import redis

from recommender.config import Settings
from recommender.server import make_service
from recommender.service import RecommenderService
from recommender.store.codec import text
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.helpers import ServerThread, newsrec
from tests.live_helpers import TECH_TEXT
from training.pipeline import TrainConfig, train
from training.related.params import RelatedParams

NEW_ID = "tech-new"
ASKED = ["sport-01", "tech-01", "tech-02", "politics-03", "business-05"]


@dataclass
class Side:
    """One Redis (single or cluster): its settings, a sync client, key names, a server."""

    settings: Settings
    client: redis.Redis
    keys: Keys
    server: ServerThread | None = None
    service: RecommenderService | None = None
    versions: list[str] = field(default_factory=list)

    def train(self, articles: Path, clicks: Path, keep: int = 3) -> str:
        """Train and publish (no embedding part: the encoder is not what these tests test)."""
        config = TrainConfig(
            articles=articles, clicks=clicks, model_dir=self.settings.model_dir, progress=False,
            related=RelatedParams(embedding_weight=0.0), keep_versions=keep,
        )  # fmt: skip
        self.versions.append(train(config, self.client, self.keys, log=lambda _m: None).version)
        if (
            self.server is not None and self.service is not None
        ):  # as its 100 ms sync loop would: the next call sees it all
            asyncio.run_coroutine_threadsafe(self.service.reader.sync(), self.server.loop).result(
                10
            )
        return "trained"

    @property
    def stub(self) -> Any:
        if self.server is None:
            self.service = make_service(self.settings)
            self.server = ServerThread(self.settings, self.service)
        return self.server.stub

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def call(method: Callable[[Any], Any], request: Any) -> Any:
    """The reply, or ("error", status name) for a refused call."""
    try:
        return method(request)
    except grpc.RpcError as exc:
        return ("error", exc.code().name)


def items(reply: Any, scores: bool = True) -> Any:
    """A list reply as comparable tuples (versions and times differ between the two sides)."""
    if isinstance(reply, tuple):
        return reply
    return [
        (i.article_id, i.score if scores else None, i.title, tuple(i.sections), i.url)
        for i in reply.items
    ]


def related(side: Side, ids: list[str] = ASKED) -> list[Any]:
    return [
        items(call(side.stub.GetRelated, pb.GetRelatedRequest(article_id=aid, limit=5)))
        for aid in ids
    ]


def popular(side: Side) -> list[Any]:
    """Site-wide and per-section Popular: ids, titles and sections compared exactly, scores (which
    decay with the wall clock between the two sides' calls) by approx in the test."""
    answers = []
    for section in ("", "tech", "news"):
        reply = call(side.stub.GetPopular, pb.GetPopularRequest(section=section, limit=10))
        answers.append(("scores", [i.score for i in reply.items], items(reply, scores=False)))
    return answers


def event(aid: str, ts: float, session: str = "", kind: int = pb.EVENT_TYPE_CLICK) -> pb.Event:
    found = pb.Event(article_id=aid, session_id=session, type=kind)  # type: ignore[arg-type]
    found.ts.FromNanoseconds(int(ts * 1e9))
    return found


def first_batch(base: float) -> list[pb.Event]:
    """Clicks with sessions (one repeated within the batch), a session-less click, impressions,
    and events that are rejected."""
    view = pb.EVENT_TYPE_IMPRESSION
    return [
        *[event("tech-01", base + 7.5 * i, f"a{i}") for i in range(6)],
        *[event("sport-02", base + 100 + i, f"a{i}") for i in range(3)],
        event("tech-01", base + 3, "a0"),
        event("politics-03", base + 11.25),
        *[event(aid, base + 20 + i, f"a{i}", view) for i, aid in enumerate(ASKED)],
        event("nope-1", base), event("bad id!", base),
    ]  # fmt: skip


def second_batch(base: float) -> list[pb.Event]:
    """Repeats of the first batch's (session, article) pairs: in part of a cell (tech-01), all
    of one (sport-02), none of another (business-04)."""
    return [
        *[event("tech-01", base + 50 + i, f"a{i}") for i in range(3)],
        event("tech-01", base + 61, "a9"),
        event("sport-02", base + 130, "a0"),
        *[event("business-04", base + 0.1 * i, f"b{i}") for i in range(4)],
        event("business-04", base + 1, "b0", pb.EVENT_TYPE_IMPRESSION),
    ]


def record(side: Side, batch: list[pb.Event], batch_id: str = "") -> Any:
    reply = side.stub.RecordEvents(pb.RecordEventsRequest(events=batch, batch_id=batch_id))
    return (reply.accepted, reply.deduplicated, reply.rejected, dict(reply.rejected_reasons),
            [(r.index, r.reason) for r in reply.rejected_events],
            reply.replayed_batches)  # fmt: skip


def upsert(side: Side, base: float) -> Any:
    article = pb.ArticleInput(article_id=NEW_ID, title="Chip and battery news", body=TECH_TEXT,
                              sections=["tech"], url="https://example.org/tech-new")  # fmt: skip
    article.published_at.FromSeconds(int(base))
    reply = side.stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]))
    return [(r.article_id, r.created, r.related_count, r.inserted_into) for r in reply.results]


def take_down(side: Side, article_id: str) -> Any:
    reply = call(side.stub.DeleteArticle, pb.DeleteArticleRequest(article_id=article_id))
    return reply if isinstance(reply, tuple) else reply.existed


def roll_back(side: Side) -> Any:
    """`newsrec rollback` as an operator runs it (NEWSREC_REDIS_CLUSTER from the settings)."""
    env = {"NEWSREC_REDIS_CLUSTER": "true"} if side.settings.redis_cluster else {}
    done = newsrec(side.settings, "rollback", env=env)
    assert done.returncode == 0, done.stderr
    return "rolled back"


def live_state(side: Side) -> dict[str, Any]:
    """Every live-state key (SCAN: on a cluster, every primary) with its value, namespace cut;
    upsert times and vectors (keyed by version) are left out, as they differ by nature."""
    client, prefix = side.client, side.keys.live_prefix()
    state: dict[str, Any] = {}
    for raw in client.scan_iter(match=prefix + "*", count=1000):
        name, kind = text(raw)[len(prefix) :], text(client.type(raw))
        if name.startswith("vec:"):
            continue
        if kind == "hash":
            value: Any = client.hgetall(raw)
            state[name] = sorted(value) if name == "upserted" else value
        elif kind == "set":
            state[name] = sorted(client.smembers(raw))
        elif kind == "zset":
            state[name] = client.zrange(raw, 0, -1, withscores=True)
        elif kind == "stream":
            state[name] = [fields for _, fields in client.xrange(raw) or []]
        else:
            state[name] = client.get(raw)
    return state


def steps(articles: Path, clicks: Path, base: float) -> list[tuple[str, Callable[[Side], Any]]]:
    """The script: (name, step) pairs, each step returning what is compared."""
    return [
        ("train", lambda s: s.train(articles, clicks)),
        ("related", related),
        ("popular", popular),
        ("events", lambda s: record(s, first_batch(base), "batch-1")),
        ("same batch_id again", lambda s: record(s, first_batch(base), "batch-1")),
        ("repeated pairs", lambda s: record(s, second_batch(base))),
        ("popular with events", popular),
        ("upsert", lambda s: upsert(s, base)),
        ("related after upsert", lambda s: related(s, [NEW_ID, "tech-01", "tech-04"])),
        ("takedown", lambda s: take_down(s, "tech-02")),
        ("takedown again", lambda s: take_down(s, "tech-02")),
        ("takedown unknown", lambda s: take_down(s, "tech-99")),
        ("related after takedown", lambda s: related(s, ["tech-01", "tech-02", NEW_ID])),
        ("popular after takedown", popular),
        ("live state", live_state),
        ("retrain", lambda s: s.train(articles, clicks)),
        ("related v2", lambda s: related(s, [*ASKED, NEW_ID])),
        ("rollback", roll_back),
        ("related after rollback", lambda s: related(s, [*ASKED, NEW_ID])),
        ("popular after rollback", popular),
    ]
