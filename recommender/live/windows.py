"""Named Popular windows at read time (recommender/windows.py has their formulas): the nightly
list's click totals decayed forward from its as_of, plus the live undecayed click counters
(HITS) read with each of the window's half-lives, scored with the shared formula.

Live counters count clicks per minute and per hour bucket without decay; a bucket's clicks are
taken at its middle, so a click's weight is off by at most 2^(bucket / (2 x half-life)): 6% for
an hour bucket at a 6 h half-life, 35% at the 1 h fast half-life of `rising`, which is why the
partial hour after as_of is read by the minute (0.6%) and why `rising` reads minute buckets
for its fast half-life's last hours too (RECENT_MINUTES)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recommender.errors import InvalidRequest
from recommender.live.counters import (
    HITS,
    HORIZON_HALF_LIVES,
    MINUTE,
    TrendingScoring,
    buckets_to_read,
)
from recommender.scoring import HOUR
from recommender.store.codec import PopularList
from recommender.windows import FITTED, PopularWindow, window_scores

Totals = tuple[float, ...]
RECENT_MINUTES = 120
"""Minute buckets read for the last two hours (a rising story's burst), hour buckets before."""


def choose_window(name: str, windows: dict[str, PopularWindow]) -> PopularWindow | None:
    """The window a GetPopular asks for (None: the fitted model, "" or "now"); InvalidRequest
    naming the known ones for any other name."""
    if name in ("", FITTED):
        return None
    if name not in windows:
        known = ", ".join([FITTED, *windows])
        raise InvalidRequest(f"window {name[:40]!r} is not a Popular window of this model: {known}")
    return windows[name]


def read_plan(
    live_from: float, now: float, window: PopularWindow, cfg: TrendingScoring
) -> list[tuple[str, int]]:
    """(grain, start) of the HITS buckets to read: after live_from (the nightly list counts
    what came before), within the trending window and 16 of the longest half-lives; the last
    RECENT_MINUTES by the minute."""
    horizon = min(cfg.window, HORIZON_HALF_LIVES * max(window.half_lives) * HOUR)
    plan = buckets_to_read(live_from, now, horizon)
    if window.kind != "rising":
        return plan
    split = now - RECENT_MINUTES * MINUTE
    finer: list[tuple[str, int]] = []
    for grain, start in plan:
        if grain == "h" and start + HOUR > split:  # a recent hour: by the minute instead
            end = min(start + int(HOUR), int(now) + 1)
            finer += [("m", t) for t in range(start, end, int(MINUTE))]
        else:
            finer.append((grain, start))
    return finer


def live_totals(
    plan: Sequence[tuple[str, int]], values: Sequence[dict[Any, Any]], now: float,
    window: PopularWindow,
) -> dict[str, Totals]:  # fmt: skip
    """Per article, its live clicks decayed with each of the window's half-lives."""
    half_lives = np.asarray(window.half_lives) * HOUR
    totals: dict[str, np.ndarray] = {}
    for (grain, start), hashed in zip(plan, values, strict=True):
        middle = start + (MINUTE if grain == "m" else HOUR) / 2
        factors = np.exp2(-max(now - middle, 0.0) / half_lives)
        for article, count in hashed.items():
            name = article.decode() if isinstance(article, bytes) else str(article)
            row = totals.setdefault(name, np.zeros(len(half_lives)))
            row += float(count) * factors
    return {a: tuple(float(x) for x in row) for a, row in totals.items()}


def rank(
    nightly: PopularList | None, live: dict[str, Totals], now: float, window: PopularWindow
) -> list[tuple[str, float]]:
    """The window's list: nightly totals decayed to now plus live ones, scored, best first
    (nightly order, then id, breaking ties). A decayed window keeps its nightly articles whose
    scores underflowed to 0 (a model days old still lists, as the fitted one does); `rising`
    lists only positive scores."""
    totals, order = window_totals(nightly, live, now, window)
    if not totals:
        return []
    ids = list(totals)
    scores = window_scores(window, np.vstack([totals[a] for a in ids]))
    keep = scores > 0
    if window.kind == "decayed":
        keep |= np.asarray([a in order for a in ids])
    ranked = sorted(np.flatnonzero(keep).tolist(),
                    key=lambda n: (-scores[n], order.get(ids[n], len(order)), ids[n]))  # fmt: skip
    return [(ids[n], float(scores[n])) for n in ranked]


def window_totals(
    nightly: PopularList | None, live: dict[str, Totals], now: float, window: PopularWindow
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per article, its click totals as of now (one per half-life of the window): the nightly
    ones decayed forward plus the live ones; and each nightly article's rank."""
    width = len(window.half_lives)
    totals: dict[str, np.ndarray] = {}
    order: dict[str, int] = {}
    if nightly is not None:
        decay = np.exp2(-max(now - nightly.as_of, 0.0) / (np.asarray(window.half_lives) * HOUR))
        for n, (article, _) in enumerate(nightly.items):
            order[article] = n
            stored = nightly.components.get(article, (0.0, 0.0, 0.0))
            totals[article] = np.asarray(stored[:width], dtype=np.float64) * decay
    for article, values in live.items():
        totals[article] = totals.get(article, np.zeros(width)) + np.asarray(values)
    return totals, order


def hits_key_args(plan: Sequence[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """(kind, grain, start) of each planned bucket, for Keys.counter."""
    return [(HITS, grain, start) for grain, start in plan]
