"""Replay evaluation of Popular (`newsrec eval popular`): at each step t, fit the trending model on
the events before t through the training code path, take its top 10 and score it against the
clicks in [t, t + step); baselines are measured in the same run on the same steps.

Step rules (warm-up, sparse steps, gains) are in training/replay_core.py. The trending rows go
through exactly what `newsrec train` runs: trending.index_scores (the shared scoring formula),
trending.popular_lists (the site-wide list) and, when params.fit_half_life, the nightly
half-life fit of training/halflife.py, redone every 24 h of replay on the steps before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.scoring import HOUR
from training.sources.articles import read_articles
from training.sources.events import read_events
from training.trending.halflife import DAY, HalfLifeFit, HalfLifeFitter
from training.trending.model import FloatArray, TrendingParams, index_scores, popular_lists
from training.trending.replay import (
    Replay,
    ReplaySettings,
    before,
    build_replay,
    ceiling_hits,
    step_metrics,
    top_k,
)
from training.workbench.eval_windows import fastest_growing, window_scorers

ScoreFn = Callable[[float], FloatArray]
"""Scores per article code from the events before t."""


@dataclass
class Series:
    """One method's per-step nDCG and hits over the replay's scored steps."""

    name: str
    ndcg: FloatArray
    hits: FloatArray
    rising: FloatArray | None = None
    """Per step, how many of the step's fastest-growing articles (growers) the list held."""


@dataclass
class ReplayResult:
    """Everything one replay measured: per-step series per method, fits, the held-out check."""

    replay: Replay
    series: list[Series]
    main: str
    fits: list[tuple[float, HalfLifeFit]] = field(default_factory=list)
    split: float = math.inf
    holdout: dict[str, float] = field(default_factory=dict)
    growers: list[NDArray[np.intp]] = field(default_factory=list)
    """Per scored step, its top-k articles by growth (training/workbench/eval_windows.py)."""

    def summary(self, name: str, days: str = "all") -> dict[str, float]:
        """nDCG@k (mean over steps), recall@k and the ceiling (pooled) on all/fit/held-out days."""
        steps = self.replay.steps
        mask = np.ones(len(steps), bool) if days == "all" else (steps >= self.split)
        if days == "fit":
            mask = ~mask
        totals = np.array([g.total for g in self.replay.gains])[mask]
        k = self.replay.settings.k
        ceiling = np.array([ceiling_hits(g, k) for g in self.replay.gains])[mask]
        series = next(s for s in self.series if s.name == name)
        clicks = float(totals.sum())
        grown = float(sum(len(g) for g, m in zip(self.growers, mask, strict=True) if m))
        rising = series.rising
        return {
            f"ndcg@{k}": float(series.ndcg[mask].mean()) if mask.any() else math.nan,
            f"recall@{k}": float(series.hits[mask].sum()) / clicks if clicks else math.nan,
            f"ceiling_recall@{k}": float(ceiling.sum()) / clicks if clicks else math.nan,
            f"rising@{k}": float(rising[mask].sum()) / grown
            if grown and rising is not None
            else math.nan,
            "steps": float(mask.sum()),
        }


def run_scorer(
    replay: Replay, score: ScoreFn, growers: list[NDArray[np.intp]] | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-step (nDCG, hits, growers listed) of a scorer giving scores per article code from
    events before t."""
    k = replay.settings.k
    tops = [top_k(score(before(g.t)), k) for g in replay.gains]
    out = [step_metrics(top, g, k) for top, g in zip(tops, replay.gains, strict=True)]
    return np.array([o[0] for o in out]), np.array([o[1] for o in out]), listed(tops, growers)


def listed(tops: list[NDArray[np.intp]], growers: list[NDArray[np.intp]] | None) -> FloatArray:
    """Per step, how many of its growers the list held (zeros without growers)."""
    if growers is None:
        return np.zeros(len(tops))
    return np.array([len(np.intersect1d(t, g)) for t, g in zip(tops, growers, strict=True)],
                    dtype=np.float64)  # fmt: skip


def baselines(replay: Replay, articles: list[Article]) -> dict[str, ScoreFn]:
    """The issue's baselines, on raw click events (what a 'most read' query counts)."""
    index = replay.index
    size = len(index.ids)
    click_ts, click_codes = index.ts[index.is_click], index.codes[index.is_click]
    codes, first_rows = np.unique(index.codes, return_index=True)
    first_seen = np.full(size, np.inf)
    first_seen[codes] = index.ts[first_rows]  # the log is sorted: first row = first appearance
    code_of = {article_id: i for i, article_id in enumerate(index.ids)}
    for article in articles:
        if article.published_at is not None and article.id in code_of:
            first_seen[code_of[article.id]] = article.published_at

    def counts(as_of: float, hours: float) -> FloatArray:
        lo, hi = np.searchsorted(click_ts, [as_of - hours * HOUR, as_of], side="right")
        return np.bincount(click_codes[lo:hi], minlength=size).astype(np.float64)

    def gravity(as_of: float) -> FloatArray:
        age_hours = np.maximum(as_of - first_seen, 0.0) / HOUR
        return counts(as_of, math.inf) / (age_hours + 2.0) ** 1.8

    return {
        "all-time counts": lambda t: counts(t, math.inf),
        "last-24 h counts": lambda t: counts(t, 24.0),
        "last-1 h counts": lambda t: counts(t, 1.0),
        "HN gravity": gravity,
    }


def model_series(
    replay: Replay,
    articles: list[Article],
    params_at: Callable[[float], TrendingParams],
    growers: list[NDArray[np.intp]] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-step (nDCG, hits) of the trending model through the training path: index_scores,
    then popular_lists' site-wide list (all logged ids, stubs for those not in the export)."""
    index, k = replay.index, replay.settings.k
    known = {a.id for a in articles}
    everything = articles + [Article(i, i) for i in index.ids if i not in known]
    code_of = {article_id: i for i, article_id in enumerate(index.ids)}
    ndcg, hits, tops = [], [], []
    for gains in replay.gains:
        as_of, params = before(gains.t), params_at(gains.t)
        scores = index_scores(index, as_of, params)
        by_id = {index.ids[i]: float(scores[i]) for i in np.flatnonzero(scores > 0).tolist()}
        site = popular_lists(everything, by_id, as_of, replace(params, depth=k))[""]
        top = np.array([code_of[i] for i, _ in site.items], dtype=np.intp)
        value, hit = step_metrics(top, gains, k)
        ndcg.append(value)
        hits.append(hit)
        tops.append(top)
    return np.array(ndcg), np.array(hits), listed(tops, growers)


def nightly_fits(
    replay: Replay, params: TrendingParams, fitter: HalfLifeFitter | None = None
) -> list[tuple[float, HalfLifeFit]]:
    """The half-lives a nightly job would have fitted every 24 h of replay (on steps before)."""
    if not replay.gains:
        return []
    fitter = fitter or HalfLifeFitter(replay, params)
    days = np.arange(replay.start, replay.gains[-1].t + 1, DAY).tolist()
    return [(t, fitter.nightly(t)) for t in days]


def params_schedule(
    params: TrendingParams, fits: list[tuple[float, HalfLifeFit]]
) -> Callable[[float], TrendingParams]:
    """Params in force at t: the latest nightly fit at or before t, else the given ones."""
    if not params.fit_half_life:
        return lambda t: params
    times = [t for t, _ in fits]
    return lambda t: fits[np.searchsorted(times, t, side="right") - 1][1].params


def split_time(replay: Replay) -> float:
    """Start of the held-out days: the second half of the scored days (rounded to days)."""
    if not replay.gains:
        return math.inf
    days = math.floor((replay.gains[-1].t - replay.start) / DAY) + 1
    return replay.start + math.ceil(days / 2) * DAY


def holdout_check(fitter: HalfLifeFitter, split: float) -> dict[str, float]:
    """Half-lives fitted on the fit days only, scored on the held-out days, beside the best any
    half-lives reach there (a refit on the held-out days: optimistic); the gap is overfitting."""
    early, late = fitter.fit(until=split), fitter.fit(since=split)
    if not (early.fitted and late.fitted):
        return {}
    steps = [i for i, g in enumerate(fitter.replay.gains) if g.t >= split]
    pair = (early.params.half_life_hours, early.params.exposure_half_life_hours)
    return {
        "half_life_hours": pair[0],
        "exposure_half_life_hours": pair[1],
        "fit_days_ndcg": early.ndcg,
        "heldout_ndcg": fitter.mean_ndcg(steps, [pair])[0],
        "heldout_best_ndcg": late.ndcg,
    }


def replay_popular(
    articles: list[Article],
    replay: Replay,
    params: TrendingParams,
    with_baselines: bool = True,
) -> ReplayResult:
    """The full replay: baselines, the issue's reference models, the clicks-only model (what a
    log without impressions gets), `params` with fixed half-lives, and `params` as shipped."""
    series: list[Series] = []
    growers = fastest_growing(replay)

    def add(name: str, params_at: Callable[[float], TrendingParams]) -> None:
        series.append(Series(name, *model_series(replay, articles, params_at, growers)))

    if with_baselines:
        scorers = {**baselines(replay, articles), **window_scorers(replay, params)}
        for name, score in scorers.items():
            series.append(Series(name, *run_scorer(replay, score, growers)))
        fixed = replace(params, fit_half_life=False)
        one_hour = replace(fixed, half_life_hours=1.0, exposure_half_life_hours=1.0)
        one_hour = replace(one_hour, prior_alpha=None, prior_beta=None)  # fitted per window
        add("decayed clicks, 1 h", lambda t: replace(one_hour, use_impressions=False))
        add("decayed CTR x impressions, 1 h", lambda t: one_hour)
        clicks_only = replace(params, use_impressions=False)
        fitted = " (nightly fit)" if params.fit_half_life else ""
        add(
            f"decayed clicks{fitted}",
            params_schedule(clicks_only, nightly_fits(replay, clicks_only)),
        )
        if params.fit_half_life:
            hours = f"{fixed.half_life_hours:g} h / {fixed.exposure_half_life_hours:g} h"
            add(f"trending, fixed {hours}", lambda t: fixed)
    fitter = HalfLifeFitter(replay, params)
    fits = nightly_fits(replay, params, fitter) if params.fit_half_life else []
    main = f"trending{' (nightly fit)' if params.fit_half_life else ''}"
    add(main, params_schedule(params, fits))
    split = split_time(replay)
    check = holdout_check(fitter, split) if params.fit_half_life else {}
    return ReplayResult(replay, series, main, fits, split, check, growers)


def load_replay(
    articles: Path,
    clicks: Path,
    params: TrendingParams,
    settings: ReplaySettings,
    fmt: str = "auto",
) -> tuple[list[Article], Replay]:
    """Read the export and the whole click log (every id: see replay_core) and index it."""
    article_set = read_articles(articles, fmt)
    events = read_events(clicks, fmt)
    return article_set.articles, build_replay(events, params, settings)


def evaluate_popular(
    articles: Path,
    clicks: Path,
    params: TrendingParams,
    step_seconds: float = 3600,
    fmt: str = "auto",
) -> dict[str, float]:
    """Replay metrics of `params` (nDCG@10, recall@10, ceiling; also on the held-out days)."""
    settings = ReplaySettings(step_seconds=step_seconds)
    arts, replay = load_replay(articles, clicks, params, settings, fmt)
    result = replay_popular(arts, replay, params, with_baselines=False)
    metrics = result.summary(result.main)
    held = result.summary(result.main, "held-out")
    metrics.update({f"heldout_{key}": value for key, value in held.items()})
    return metrics
