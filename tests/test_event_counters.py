"""The one-script write path against a per-event reference, over a real server and Redis: random
clicks and impressions, with sessions and callers repeating within and across batches, leave in
Redis exactly each counted event's bucket weight, per kind, bucket and section hash."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any, cast

import pytest
import redis

from recommender.domain import CLICK, IMPRESSION
from recommender.live.config import VersionConfig
from recommender.live.counters import COUNTED_AS
from recommender.store import codec
from recommender.store.codec import EventRow
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.helpers import ServerThread
from tests.test_live_trending import bucket_weights

pytest_plugins = ["tests.live_fixtures"]  # live, live_settings, trained

ARTICLES = ["tech-01", "tech-02", "sport-03", "politics-04", "business-05", "sport-06"]


def random_batches(now: float) -> list[list[EventRow]]:
    """Three batches of (article, ts, type, session); "" sessions are the caller's clicks."""
    rng = random.Random(11)
    sessions = [f"reader-{n}" for n in range(25)] + [""] * 3
    return [
        [
            (rng.choice(ARTICLES), now - rng.uniform(0, 3 * 3600),
             CLICK if rng.random() < 0.7 else IMPRESSION, rng.choice(sessions))
            for _ in range(400)
        ]
        for _ in range(3)
    ]  # fmt: skip


def reference_counted(batches: list[list[EventRow]], period: int) -> list[EventRow]:
    """What counts: every impression; a click when its (period, session or caller, article) is
    new, in call order (the first of a batch wins within it)."""
    seen: set[tuple[int, str, str]] = set()
    counted = []
    for batch in batches:
        for article_id, ts, kind, session in batch:
            pair = (int(ts) // period * period, session or "caller", article_id)
            if kind == CLICK:
                if pair in seen:
                    continue
                seen.add(pair)
            counted.append((article_id, ts, kind, session))
    return counted


def as_event(row: EventRow) -> pb.Event:
    article_id, ts, kind, session = row
    kind_number = pb.EVENT_TYPE_CLICK if kind == CLICK else pb.EVENT_TYPE_IMPRESSION
    event = pb.Event(article_id=article_id, session_id=session, type=kind_number)
    event.ts.FromNanoseconds(round(ts * 1e9))
    return event


def test_counters_hold_each_counted_events_weight(
    live: ServerThread, client: redis.Redis, keys: Keys
) -> None:
    version = live.stub.GetModelInfo(pb.GetModelInfoRequest()).model_version
    cfg = VersionConfig.from_meta(codec.decode_meta(cast(bytes, client.get(keys.meta(version)))))
    sections = {
        a: codec.decode_article(a, cast(bytes, client.get(keys.article(version, a)))).sections
        for a in ARTICLES
    }
    batches = random_batches(time.time())
    for batch in batches:
        # exact timestamps as the server reads them back (nanoseconds)
        live.stub.RecordEvents(pb.RecordEventsRequest(events=[as_event(r) for r in batch]))
    counted = reference_counted(
        [[(a, round(ts * 1e9) / 1e9, k, s) for a, ts, k, s in b] for b in batches],
        max(1, int(cfg.dedup)),
    )
    assert 300 < len(counted) < 1200  # repeats were dropped, and many events counted
    want: dict[tuple[str, str], float] = defaultdict(float)
    for kind, names in COUNTED_AS.items():
        rows = [(a, ts, sections[a]) for a, ts, k, _ in counted if k == kind]
        for name in names:
            for cell, weight in bucket_weights(
                rows, name, keys, cfg.scoring.half_life_of(name)
            ).items():
                want[cell] += weight
    got: dict[tuple[str, str], float] = {}
    for kind in ("clicks", "views", "exposure"):
        for key in client.scan_iter(match=f"{keys.namespace}:rt:{kind}:*", count=1000):
            values: Any = client.hgetall(key)
            got.update({(key.decode(), f.decode()): float(v) for f, v in values.items()})
    assert got.keys() == want.keys()
    for cell, weight in want.items():
        assert got[cell] == pytest.approx(weight, rel=1e-9), cell
