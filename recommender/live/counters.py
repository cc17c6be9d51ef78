"""Live trending: event weights in time-bucketed Redis hashes, blended with the nightly lists.

An event at time t goes into the bucket starting at s with weight 2^((t - s) / half_life), so a
bucket read at time `now` contributes value * 2^(-(now - s) / half_life): exactly each event's
decayed weight, without touching the events again. Three kinds are kept, one per term of
scoring.trending_score: clicks and impressions on the model's half-life, and impressions again
on the shorter exposure half-life. Events are written twice: into minute buckets (read only for
the partial hour after the nightly model's as_of, so nothing is counted twice) and into hour
buckets (for the rest: a day of hours is 24 reads, not 1,440).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.domain import CLICK, IMPRESSION
from recommender.scoring import HOUR, BetaPrior, trending_score
from recommender.store.codec import EventRow, PopularList
from recommender.store.keys import Keys
from recommender.store.scripts import increment_piece

MINUTE = 60.0
GRAINS = (("m", MINUTE), ("h", HOUR))
CLICKS = "clicks"
VIEWS = "views"
EXPOSURE = "exposure"
KINDS = (CLICKS, VIEWS, EXPOSURE)
HORIZON_HALF_LIVES = 16.0
"""Buckets older than this many half-lives weigh under 2^-16 and are not read."""


def bucket_start(ts: float, size: float) -> int:
    """Start (epoch seconds) of the bucket of this size holding ts."""
    return int(math.floor(ts / size) * size)


COUNTED_AS = {CLICK: (CLICKS,), IMPRESSION: (VIEWS, EXPOSURE)}
"""The counter kinds each event type feeds (impressions twice: two half-lives)."""


def counter_increments(
    events: Sequence[EventRow],
    sections: Mapping[str, tuple[str, ...]],
    keys: Keys,
    cfg: TrendingScoring,
) -> dict[str, list[str]]:
    """Per counter hash, the "article weight" pieces store.INCREMENT_FIELDS adds for a batch of
    accepted (article, ts, type, session) events: each article's in-bucket weights
    2^((ts - start) / half_life) summed per kind and bucket, computed per bucket with numpy
    and added to the site-wide hash and to each of the article's sections' hashes, so there is
    one increment per article per hash, not one per event. Sections that differ only in case
    share a hash; each adds its pieces there."""
    index: dict[str, int] = {}
    columns: dict[str, tuple[list[int], list[float]]] = {}  # event type -> (article, ts)
    for article_id, ts, kind, _ in events:
        n = index.get(article_id)
        if n is None:
            n = index[article_id] = len(index)
        column = columns.get(kind)
        if column is None:
            column = columns[kind] = ([], [])
        column[0].append(n)
        column[1].append(ts)
    articles = list(index)
    hashes = [("", *sections[a]) for a in articles]  # "" = site-wide
    per_key: dict[str, list[str]] = {}
    for kind, (positions, times) in columns.items():
        which = np.asarray(positions, dtype=np.intp)
        stamps = np.asarray(times, dtype=np.float64)
        for name in COUNTED_AS[kind]:
            half_life = cfg.half_life_of(name)
            for grain, size in GRAINS:
                starts = np.floor(stamps / size) * size  # bucket_start, per event
                weights = np.power(2.0, (stamps - starts) / half_life)
                distinct = np.unique(starts)
                for start in distinct.tolist():
                    picked = starts == start if len(distinct) > 1 else slice(None)
                    # bincount adds in input order: the same float sums as a loop would make
                    totals = np.bincount(which[picked], weights[picked], len(articles))
                    present = np.flatnonzero(totals)  # every weight is >= 1
                    by_section: dict[str, list[str]] = {}
                    for n, total in zip(present.tolist(), totals[present].tolist(), strict=True):
                        piece = increment_piece(articles[n], total)
                        for section in hashes[n]:
                            pieces = by_section.get(section)
                            if pieces is None:
                                pieces = by_section[section] = []
                            pieces.append(piece)
                    for section, pieces in by_section.items():
                        key = keys.counter(name, grain, int(start), section)
                        per_key.setdefault(key, []).extend(pieces)
    return per_key


def buckets_to_read(live_from: float, now: float, window: float) -> list[tuple[str, int]]:
    """(grain, start) of the buckets holding events after live_from (and within the window):
    minute buckets up to the next whole hour, then hour buckets up to now."""
    start = max(live_from, now - window)
    first_minute = bucket_start(start, MINUTE) + int(MINUTE)  # the partial minute was trained on
    next_hour = bucket_start(start, HOUR) + int(HOUR)
    if bucket_start(start, HOUR) == start:
        next_hour, first_minute = int(start), int(start)
    minutes = [("m", t) for t in range(first_minute, min(next_hour, int(now) + 1), int(MINUTE))]
    hours = [("h", t) for t in range(next_hour, bucket_start(now, HOUR) + 1, int(HOUR))]
    return minutes + hours


def read_plan(live_from: float, now: float, cfg: TrendingScoring) -> list[tuple[str, str, int]]:
    """(kind, grain, start) of every bucket worth reading for the three kinds."""
    plan = []
    for kind in KINDS:
        horizon = min(cfg.window, HORIZON_HALF_LIVES * cfg.half_life_of(kind))
        plan += [(kind, g, t) for g, t in buckets_to_read(live_from, now, horizon)]
    return plan


def live_components(
    plan: list[tuple[str, str, int]],
    values: list[dict[Any, Any]],
    now: float,
    cfg: TrendingScoring,
) -> dict[str, Components]:
    """Per article, live (C, I, E) as of now from the planned buckets' hashes."""
    parts = []
    for kind in KINDS:
        rows = [(n, (g, t)) for n, (k, g, t) in enumerate(plan) if k == kind]
        parts.append(
            decayed_sums(
                [b for _, b in rows], [values[n] for n, _ in rows], now, cfg.half_life_of(kind)
            )
        )
    clicks, views, exposure = parts
    return {
        a: (clicks.get(a, 0.0), views.get(a, 0.0), exposure.get(a, 0.0))
        for a in set(clicks) | set(views) | set(exposure)
    }


def decayed_sums(
    buckets: list[tuple[str, int]], values: list[dict[Any, Any]], now: float, half_life: float
) -> dict[str, float]:
    """Each article's decayed event weight as of now, from the buckets' hashes."""
    totals: dict[str, float] = defaultdict(float)
    for (_, start), hashed in zip(buckets, values, strict=True):
        factor = 2.0 ** (-(now - start) / half_life)
        for article, value in hashed.items():
            name = article.decode() if isinstance(article, bytes) else str(article)
            totals[name] += float(value) * factor
    return dict(totals)


Components = tuple[float, float, float]


def blend(
    nightly: PopularList | None,
    live: dict[str, Components],
    now: float,
    cfg: TrendingScoring,
) -> list[tuple[str, float]]:
    """Nightly (C, I, E) decayed from the model's as_of to now plus live (C, I, E), scored with
    the shared formula; best first, nightly order breaking ties (scores of old lists underflow)."""
    rank: dict[str, int] = {}
    totals: dict[str, list[float]] = {}
    if nightly is not None:
        age = max(0.0, now - nightly.as_of)
        d_h, d_e = 2.0 ** (-age / cfg.half_life), 2.0 ** (-age / cfg.exposure_half_life)
        for n, (article, score) in enumerate(nightly.items):
            rank[article] = n
            c, i, e = nightly.components.get(article, (score, 0.0, 0.0))
            totals[article] = [c * d_h, i * d_h, e * d_e]
    for article, (c, i, e) in live.items():
        row = totals.setdefault(article, [0.0, 0.0, 0.0])
        row[0] += c
        row[1] += i
        row[2] += e
    ids = list(totals)
    if not ids:
        return []
    matrix = np.asarray([totals[a] for a in ids])
    scores = trending_score(matrix[:, 0], matrix[:, 1], matrix[:, 2], cfg.prior)
    order = sorted(range(len(ids)), key=lambda n: (-scores[n], rank.get(ids[n], len(rank))))
    return [(ids[n], float(scores[n])) for n in order]


@dataclass(frozen=True)
class TrendingScoring:
    """The live model's trending parameters (from its manifest), in seconds."""

    half_life: float
    exposure_half_life: float
    window: float
    prior: BetaPrior | None

    def half_life_of(self, kind: str) -> float:
        """Exposure decays on its own, shorter half-life."""
        return self.exposure_half_life if kind == EXPOSURE else self.half_life


class LiveCounts:
    """Per-process cache of live (C, I, E) per section, recomputed at most once a
    `max_age` (a burst shows within that plus the write's own latency)."""

    def __init__(self, max_age: float = 1.0) -> None:
        self.max_age = max_age
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Components]]] = {}

    def get(
        self, version: str, section: str, now: float | None = None
    ) -> dict[str, Components] | None:
        """Cached sums if fresh enough."""
        hit = self._cache.get((version, section))
        now = time.monotonic() if now is None else now
        if hit is not None and now - hit[0] < self.max_age:
            return hit[1]
        return None

    def put(self, version: str, section: str, sums: dict[str, Components]) -> None:
        """Remember freshly read sums."""
        if len(self._cache) > 10_000:
            self._cache.clear()  # sections are few; this only guards against abuse
        self._cache[(version, section)] = (time.monotonic(), sums)
