"""The nightly lists of the named Popular windows (recommender/windows.py): per window and
section, the articles best by the window's score as of the model's as_of, each with its click
totals (one per half-life of the window), which serving decays forward and adds its live
counters to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from recommender.domain import Article
from recommender.live.counters import HORIZON_HALF_LIVES
from recommender.store.codec import PopularList
from recommender.windows import PopularWindow, parse_windows, window_scores
from training.trending.model import EventIndex, TrendingParams, decayed, window_events

Totals = dict[str, tuple[float, ...]]


def click_totals(index: EventIndex, as_of: float, params: TrendingParams) -> dict[float, Totals]:
    """Per half-life (hours) any window names: each article's decayed counted clicks as of
    as_of (those older than 16 half-lives weigh under 2^-16 and are left out)."""
    half_lives = sorted({h for w in parse_windows(params.windows).values() for h in w.half_lives})
    totals: dict[float, Totals] = {}
    for hours in half_lives:  # clicks within 16 half-lives: a week's window reads a week
        window = window_events(index, as_of, HORIZON_HALF_LIVES * hours)
        sums = decayed(window.click_codes, window.click_ages, window.size, hours)
        totals[hours] = {index.ids[i]: (float(sums[i]),) for i in np.flatnonzero(sums > 0)}
    return totals


def window_lists(
    articles: Sequence[Article], index: EventIndex, as_of: float, params: TrendingParams
) -> dict[str, dict[str, PopularList]]:
    """Window -> section ("" = site-wide) -> its nightly list."""
    totals = click_totals(index, as_of, params)
    published = [a for a in articles if a.published_at is None or a.published_at <= as_of]
    out = {}
    for name, window in parse_windows(params.windows).items():
        per_article = {a.id: tuple(totals[h].get(a.id, (0.0,))[0] for h in window.half_lives)
                       for a in published}  # fmt: skip
        out[name] = _section_lists(published, per_article, window, as_of, params.depth)
    return out


def _section_lists(
    articles: Sequence[Article],
    totals: dict[str, tuple[float, ...]],
    window: PopularWindow,
    as_of: float,
    depth: int,
) -> dict[str, PopularList]:
    """Each section's list: the `depth` best by the window's score, and (rising) the `depth`
    with the most earlier clicks, whose history a live burst is measured against."""
    members: dict[str, list[str]] = defaultdict(list)
    for article in articles:
        if any(totals[article.id]):
            members[""].append(article.id)
            for section in {s.lower() for s in article.sections}:
                members[section].append(article.id)
    lists = {"": PopularList(as_of=as_of, items=[])}
    for section, ids in members.items():
        matrix = np.asarray([totals[i] for i in ids], dtype=np.float64)
        scores = window_scores(window, matrix)
        order = sorted(range(len(ids)), key=lambda n: (-scores[n], ids[n]))
        kept = [n for n in order[:depth] if scores[n] > 0]
        listed = set(kept)
        if window.kind == "rising":  # the baseline's articles, and the history of those that
            # may rise later
            most = max(depth, window.baseline_articles)
            busiest = sorted(range(len(ids)), key=lambda n: (-matrix[n, -1], ids[n]))[:most]
            kept += [n for n in busiest if n not in listed]
        items = [(ids[n], float(scores[n])) for n in kept]
        lists[section] = PopularList(as_of, items, {ids[n]: _padded(totals[ids[n]]) for n in kept})
    return lists


def _padded(values: tuple[float, ...]) -> tuple[float, float, float]:
    """Totals in the (C, I, E) slots a PopularList carries."""
    a, b, c = (*values, 0.0, 0.0, 0.0)[:3]
    return (a, b, c)
