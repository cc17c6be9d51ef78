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
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from recommender.domain import CLICK, IMPRESSION
from recommender.scoring import HOUR, BetaPrior, trending_score
from recommender.store.codec import EventRow, PopularList
from recommender.store.keys import Keys

MINUTE = 60.0
GRAINS = (("m", MINUTE), ("h", HOUR))
CLICKS = "clicks"
VIEWS = "views"
EXPOSURE = "exposure"
KINDS = (CLICKS, VIEWS, EXPOSURE)
HITS = "hits"
"""Clicks again, undecayed (weight 1): the named Popular windows decay them with their own
half-lives when read (recommender/live/windows.py). Kept only where the version has windows."""
HORIZON_HALF_LIVES = 16.0
"""Buckets older than this many half-lives weigh under 2^-16 and are not read."""


def bucket_start(ts: float, size: float) -> int:
    """Start (epoch seconds) of the bucket of this size holding ts."""
    return int(math.floor(ts / size) * size)


COUNTED_AS = {CLICK: (CLICKS,), IMPRESSION: (VIEWS, EXPOSURE)}
"""The counter kinds each event type feeds (impressions twice: two half-lives)."""


@dataclass
class CounterPlan:
    """A batch's counter increments, as the event write script (store/scripts.RECORD_BATCH)
    applies them. A slot is one article's cell in one kind and time bucket, spread over the
    site-wide hash and its sections' hashes (`keys` positions). Per slot, `base` is the weight of
    the events that count whatever happens, `pending` that of the events that count only if
    Redis says so (a click whose (session, article) pair is new), `waiting` how many of those
    there are. A pending event's (slot, weight) pieces are `templates[template_of[n]]` (events
    of one article, time and type share one), for the script to take back out of the slots
    when the event turns out a repeat."""

    keys: list[str] = field(default_factory=list)
    slots: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    pending: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    templates: list[list[tuple[int, float]]] = field(default_factory=list)
    template_of: list[int] = field(default_factory=list)
    """Per event, its template (-1 for an event that counts whatever happens)."""

    def increments(self) -> dict[str, list[str]]:
        """Per counter hash, "article weight" pieces of the base sums (each slot's once per
        hash it is spread over)."""
        per_key: dict[str, list[str]] = {}
        for (article, where), total in zip(self.slots, self.base, strict=True):
            if total > 0:
                for k in where:
                    per_key.setdefault(self.keys[k], []).append(f"{article} {total!r}")
        return per_key


def plan_counters(
    events: Sequence[EventRow],
    pending: Sequence[bool],
    sections: Mapping[str, tuple[str, ...]],
    keys: Keys,
    cfg: TrendingScoring,
) -> CounterPlan:
    """The counter increments of a batch of accepted (article, ts, type, session) events, of
    which those marked `pending` count only if Redis says so. An event at ts adds
    2^((ts - start) / half_life) to its bucket starting at `start`, per kind it feeds (see
    COUNTED_AS) and grain: computed per (kind, grain) with numpy, one slot per article and
    bucket, so a hash gets one increment per article however many events it had. Sections that
    differ only in case share a hash; each adds its weight there."""
    plan = CounterPlan(template_of=[-1] * len(events))
    if not events:
        return plan
    ids, times, kinds, _ = zip(*events, strict=True)
    index: dict[str, int] = {}
    codes = np.asarray([index.setdefault(a, len(index)) for a in ids], dtype=np.int64)
    stamps = np.asarray(times, dtype=np.float64)
    waits = np.asarray(pending, dtype=bool)
    template_of = np.full(len(events), -1, dtype=np.int64)
    slot_keys = _SlotKeys(keys, list(index), sections)
    kind_names = list(dict.fromkeys(kinds))
    kind_of = np.asarray(kinds) if len(kind_names) > 1 else None
    for kind in kind_names:
        rows = np.arange(len(events)) if kind_of is None else np.flatnonzero(kind_of == kind)
        late = rows[waits[rows]]
        representatives = np.zeros(0, dtype=np.int64)
        if len(late):  # one template per (article, time) among this type's pending events
            times_at, time_of = np.unique(stamps[late], return_inverse=True)
            _, firsts, inverse = np.unique(
                codes[late] * len(times_at) + time_of, return_index=True, return_inverse=True
            )
            template_of[late] = inverse + len(plan.templates)
            representatives = np.searchsorted(rows, late[firsts])
        passes = _plan_kind(plan, kind, codes[rows], stamps[rows], waits[rows], representatives,
                            slot_keys, cfg)  # fmt: skip
        plan.templates += [list(pieces) for pieces in zip(*passes, strict=True)]
    plan.template_of = template_of.tolist()
    plan.keys = slot_keys.names
    return plan


class _SlotKeys:
    """Counter hash names of a batch by position, each built once. Articles with the same
    sections share a group, and their slots in a bucket the same hash positions."""

    def __init__(
        self, keys: Keys, articles: list[str], sections: Mapping[str, tuple[str, ...]]
    ) -> None:
        self.keys = keys
        self.articles = np.asarray(articles, dtype=object)
        groups: dict[tuple[str, ...], int] = {}
        self.group_of = np.asarray([groups.setdefault(sections[a], len(groups)) for a in articles])
        self.groups = [("", *group) for group in groups]  # "" = the site-wide hash
        self.names: list[str] = []
        self._at: dict[tuple[str, str, int, str], int] = {}

    def where(self, name: str, grain: str, start: int, group: int) -> tuple[int, ...]:
        """Positions of the hashes a group's weight in one bucket goes to."""
        return tuple(self._position(name, grain, start, s) for s in self.groups[group])

    def _position(self, name: str, grain: str, start: int, section: str) -> int:
        spot = (name, grain, start, section)
        n = self._at.get(spot)
        if n is None:
            n = self._at[spot] = len(self.names)
            self.names.append(self.keys.counter(name, grain, start, section))
        return n


def _plan_kind(
    plan: CounterPlan,
    kind: str,
    which: NDArray[np.int64],
    stamps: NDArray[np.float64],
    waits: NDArray[np.bool_],
    representatives: NDArray[np.int64],
    slot_keys: _SlotKeys,
    cfg: TrendingScoring,
) -> list[list[tuple[int, float]]]:
    """Add the slots of one event type's events (article positions, times, pending flags);
    return, per (counter kind, grain), the (slot, weight) piece of each event at
    `representatives`."""
    passes = []
    groups = len(slot_keys.groups)
    for name in cfg.counted_as(kind):
        half_life = cfg.half_life_of(name)
        for grain, size in GRAINS:
            starts = np.floor(stamps / size) * size  # bucket_start, per event
            weights = np.power(2.0, (stamps - starts) / half_life)
            buckets, bucket_of = np.unique(starts, return_inverse=True)
            cells, slot_of = np.unique(which * len(buckets) + bucket_of, return_inverse=True)
            article, bucket = np.divmod(cells, len(buckets))
            combos, combo_of = np.unique(
                bucket * groups + slot_keys.group_of[article], return_inverse=True
            )
            wheres = [
                slot_keys.where(name, grain, int(buckets[c // groups]), c % groups)
                for c in combos.tolist()
            ]
            first = len(plan.slots)
            plan.slots += zip(
                slot_keys.articles[article].tolist(),
                [wheres[c] for c in combo_of.tolist()],
                strict=True,
            )
            # bincount adds in input order: the same float sums as a loop would make
            plan.base += np.bincount(slot_of, np.where(waits, 0.0, weights), len(cells)).tolist()
            plan.pending += np.bincount(slot_of, np.where(waits, weights, 0.0), len(cells)).tolist()
            plan.waiting += np.bincount(slot_of, waits, len(cells)).astype(int).tolist()
            passes.append(
                list(
                    zip(
                        (slot_of[representatives] + first).tolist(),
                        weights[representatives].tolist(),
                        strict=True,
                    )
                )
            )
    return passes


def counter_increments(
    events: Sequence[EventRow],
    sections: Mapping[str, tuple[str, ...]],
    keys: Keys,
    cfg: TrendingScoring,
) -> dict[str, list[str]]:
    """Per counter hash, the "article weight" increments of a batch in which every event
    counts (plan_counters with nothing pending)."""
    return plan_counters(events, [False] * len(events), sections, keys, cfg).increments()


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
    totals, rank = decayed_totals(nightly, live, now, cfg)
    ids = list(totals)
    if not ids:
        return []
    matrix = np.asarray([totals[a] for a in ids])
    scores = trending_score(matrix[:, 0], matrix[:, 1], matrix[:, 2], cfg.prior)
    order = sorted(range(len(ids)), key=lambda n: (-scores[n], rank.get(ids[n], len(rank))))
    return [(ids[n], float(scores[n])) for n in order]


def decayed_totals(
    nightly: PopularList | None,
    live: dict[str, Components],
    now: float,
    cfg: TrendingScoring,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per article, (C, I, E) as of now: the nightly ones decayed forward plus the live ones;
    and each nightly article's rank."""
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
    return totals, rank


@dataclass(frozen=True)
class TrendingScoring:
    """The live model's trending parameters (from its manifest), in seconds."""

    half_life: float
    exposure_half_life: float
    window: float
    prior: BetaPrior | None

    hits: bool = False
    """Count clicks undecayed too (HITS), for the version's named Popular windows."""

    def half_life_of(self, kind: str) -> float:
        """Exposure decays on its own, shorter half-life; hits do not decay where stored."""
        if kind == HITS:
            return math.inf
        return self.exposure_half_life if kind == EXPOSURE else self.half_life

    def counted_as(self, event_type: str) -> tuple[str, ...]:
        """The counter kinds an event type feeds."""
        kinds = COUNTED_AS[event_type]
        return (*kinds, HITS) if self.hits and event_type == CLICK else kinds


V = TypeVar("V")


class LiveCounts(Generic[V]):
    """Per-process cache of live sums per article (for one version and section), recomputed
    at most once a `max_age` (a burst shows within that plus the write's own latency)."""

    def __init__(self, max_age: float = 1.0) -> None:
        self.max_age = max_age
        self._cache: dict[tuple[str, str], tuple[float, dict[str, V]]] = {}

    def get(self, version: str, section: str, now: float | None = None) -> dict[str, V] | None:
        """Cached sums if fresh enough."""
        hit = self._cache.get((version, section))
        now = time.monotonic() if now is None else now
        if hit is not None and now - hit[0] < self.max_age:
            return hit[1]
        return None

    def put(self, version: str, section: str, sums: dict[str, V]) -> None:
        """Remember freshly read sums."""
        if len(self._cache) > 10_000:
            self._cache.clear()  # sections are few; this only guards against abuse
        self._cache[(version, section)] = (time.monotonic(), sums)
