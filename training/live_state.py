"""Folding live state into a training run: upserted articles join the corpus (newer than the
export), taken-down ones leave it, and once published the folded upserts stop being live."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from recommender.domain import Article
from recommender.store.codec import decode_document, text
from recommender.store.keys import Keys


@dataclass(frozen=True)
class LiveState:
    """What the API changed since the last training, read at the start of a run."""

    upserts: dict[str, Article]
    upserted_at: dict[str, float]
    deleted: frozenset[str]


def read_live_state(client: redis.Redis, keys: Keys) -> LiveState:
    """Upserted articles (in full) and takedowns, as of now."""
    upserted_at = {text(k): float(v) for k, v in client.hgetall(keys.upserted).items()}
    ids = sorted(upserted_at)
    pipe = client.pipeline(transaction=False)
    for aid in ids:
        pipe.get(keys.live_doc(aid))
    docs = pipe.execute() if ids else []
    upserts = {aid: decode_document(aid, raw) for aid, raw in zip(ids, docs, strict=True) if raw}
    deleted = frozenset(text(d) for d in client.smembers(keys.deleted))
    return LiveState(upserts, upserted_at, deleted)


def merge_articles(exported: list[Article], live: LiveState) -> tuple[list[Article], int, int]:
    """The export with upserts replacing or joining it and takedowns removed; returns the
    corpus, how many upserts were folded in, and how many articles were dropped as taken down."""
    merged: dict[str, Article] = {a.id: a for a in exported}
    merged.update(live.upserts)
    corpus = [a for a in merged.values() if a.id not in live.deleted]
    return corpus, len(live.upserts), len(merged) - len(corpus)


def clear_folded(client: redis.Redis, keys: Keys, live: LiveState) -> int:
    """After publishing: upserts the new version now holds stop being live, unless they were
    upserted again during the run (their newer text stays live)."""
    current = {text(k): float(v) for k, v in client.hgetall(keys.upserted).items()}
    folded = [aid for aid, at in live.upserted_at.items() if current.get(aid) == at]
    pipe = client.pipeline(transaction=False)
    for aid in folded:
        pipe.hdel(keys.upserted, aid)
        pipe.delete(keys.live_doc(aid))
        pipe.delete(keys.live_related(aid))
    pipe.incr(keys.epoch)  # servers resync their live sets
    pipe.execute()
    return len(folded)
