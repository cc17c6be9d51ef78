"""The trending model: decayed click rate times decayed exposure, site-wide and per section.

The score formula lives in recommender/scoring.py (serving uses the same one); this module turns
a click log into its inputs. Scored as of one moment using only events up to then, so any past
moment replays exactly (training/trending/replay.py relies on that).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender import scoring
from recommender.domain import Article
from recommender.scoring import HOUR, BetaPrior, decay_weights, trending_score
from recommender.store.codec import PopularList
from recommender.windows import DEFAULT_WINDOWS, parse_windows
from training.sources.events import EventLog

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrendingParams:
    """How clicks and impressions become Popular scores."""

    half_life_hours: float = scoring.HALF_LIFE_HOURS
    """Half-life of clicks and of the click-rate counts; the training job fits it to the log."""
    exposure_half_life_hours: float = scoring.EXPOSURE_HALF_LIFE_HOURS
    """Half-life of the impressions saying what is shown now; fitted with half_life_hours."""
    window_hours: float = scoring.WINDOW_HOURS
    """Only events this recent count."""
    session_dedup_minutes: float = scoring.SESSION_DEDUP_MINUTES
    """One click (and one impression) per session per article per this many minutes."""
    use_impressions: bool = True
    """Score click rate x exposure where the log has impressions; False: decayed clicks only."""
    prior_alpha: float | None = None
    """Beta prior on click rates (with prior_beta); None: fitted to the window's counts."""
    prior_beta: float | None = None
    fit_half_life: bool = True
    """Let the training job fit both half-lives on the log's own hourly replay."""
    depth: int = 500
    """Entries kept per list: enough for any limit plus the excludes a request may carry."""
    windows: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    """Named Popular windows beside the fitted model (recommender/windows.py); a params file's
    [trending.windows.NAME] tables replace these."""

    def __post_init__(self) -> None:
        priors = (self.prior_alpha, self.prior_beta)
        checks = {
            "half_life_hours > 0": self.half_life_hours > 0,
            "exposure_half_life_hours > 0": self.exposure_half_life_hours > 0,
            "window_hours > 0": self.window_hours > 0,
            "session_dedup_minutes >= 0": self.session_dedup_minutes >= 0,
            "prior_alpha and prior_beta > 0 or none": all(p is None or p > 0 for p in priors),
            "depth >= 1": self.depth >= 1,
        }
        broken = [rule for rule, ok in checks.items() if not ok]
        if broken:
            raise ValueError(f"trending parameters out of range: need {', '.join(broken)}")
        if not isinstance(self.windows, dict):
            raise ValueError(f"windows: expected tables of window settings, got {self.windows!r}")
        parse_windows(self.windows)

    def as_dict(self) -> dict[str, object]:
        """Plain values for the manifest."""
        return asdict(self)


@dataclass(frozen=True)
class EventIndex:
    """A log as integer article codes (ids sorted), with the events that count marked."""

    ids: list[str]
    codes: NDArray[np.intp]
    ts: FloatArray
    is_click: NDArray[np.bool_]
    counted: NDArray[np.bool_]
    """Survives the session dedup: the first event of its kind per session and article per
    dedup period (a reader reloading a page is one reader)."""


@dataclass(frozen=True)
class Window:
    """The counted events of one scoring window, split by kind, with their ages at as_of."""

    size: int
    click_codes: NDArray[np.intp]
    click_ages: FloatArray
    view_codes: NDArray[np.intp]
    view_ages: FloatArray


def _dedup(codes: NDArray[np.intp], events: EventLog, minutes: float) -> NDArray[np.bool_]:
    """Causal dedup: an event counts when its session's last counted event of the same kind on
    the same article is at least `minutes` old (events without a session always count)."""
    counted = np.ones(len(events), dtype=np.bool_)
    period = minutes * 60.0
    last: dict[tuple[str, int, bool], float] = {}
    rows = zip(
        events.sessions, codes.tolist(), events.is_click.tolist(), events.ts.tolist(), strict=True
    )
    for i, (session, code, click, ts) in enumerate(rows):  # events are sorted by time
        if not session:
            continue
        key = (session, code, click)
        previous = last.get(key)
        if previous is None or ts - previous >= period:
            last[key] = ts
        else:
            counted[i] = False
    return counted


def index_events(events: EventLog, params: TrendingParams) -> EventIndex:
    """Encode a log once so that scoring it at many moments is cheap."""
    first: dict[str, int] = {}  # a dict, not np.unique: sorting strings as objects is slow
    seen = np.fromiter(
        (first.setdefault(a, len(first)) for a in events.article_ids), np.intp, len(events)
    )
    ids = sorted(first)
    rank = np.empty(len(ids), dtype=np.intp)
    rank[[first[i] for i in ids]] = np.arange(len(ids))
    codes = rank[seen]  # codes follow id order, so ties broken by code are broken by id
    counted = _dedup(codes, events, params.session_dedup_minutes)
    return EventIndex(ids, codes, events.ts, events.is_click, counted)


def window_events(index: EventIndex, as_of: float, window_hours: float) -> Window:
    """Counted events in (as_of - window, as_of]."""
    lo = int(np.searchsorted(index.ts, as_of - window_hours * HOUR, side="right"))
    hi = int(np.searchsorted(index.ts, as_of, side="right"))
    keep = index.counted[lo:hi]
    clicks = keep & index.is_click[lo:hi]
    views = keep & ~index.is_click[lo:hi]
    ages = as_of - index.ts[lo:hi]
    codes = index.codes[lo:hi]
    return Window(len(index.ids), codes[clicks], ages[clicks], codes[views], ages[views])


def decayed(
    codes: NDArray[np.intp], ages: FloatArray, size: int, half_life_hours: float
) -> FloatArray:
    """Per-article sum of decay weights of these events."""
    weights = decay_weights(ages, half_life_hours * HOUR)
    return np.bincount(codes, weights=weights, minlength=size).astype(np.float64)


def fit_beta_prior(clicks: FloatArray, impressions: FloatArray) -> BetaPrior | None:
    """Method-of-moments Beta prior on click rates from per-article counts (Kleinman's weighted
    estimator, which allows for articles shown very different numbers of times); None when
    there are no impressions or no clicks to fit."""
    shown = impressions > 0
    n = impressions[shown]
    x = np.minimum(clicks[shown], n)  # a click logged without its impression: rate <= 1
    total = float(n.sum())
    if total <= 0 or x.sum() <= 0 or len(n) < 2:
        return None
    mean = float(x.sum()) / total
    spread = float(np.sum(n * (x / n - mean) ** 2))
    binomial = mean * (1.0 - mean)
    if binomial <= 0:
        return None
    # E[spread] = m(1-m) [(N - 1) + rho (sum n - N - sum n^2 / sum n + 1)], rho = 1/(a+b+1)
    slope = total - len(n) - float(np.sum(n * n)) / total + 1.0
    rho = (spread / binomial - (len(n) - 1)) / slope if slope > 0 else 1.0
    rho = min(max(rho, 1e-6), 1.0 - 1e-6)  # no overdispersion: a strong prior, not infinity
    strength = 1.0 / rho - 1.0
    return BetaPrior(mean * strength, (1.0 - mean) * strength)


def window_prior(window: Window, params: TrendingParams) -> BetaPrior | None:
    """The prior the score uses: None (decayed clicks only) when impressions are off or absent
    from the window, else the given one, else one fitted to the window's counts."""
    if not params.use_impressions or len(window.view_codes) == 0:
        return None
    if params.prior_alpha is not None and params.prior_beta is not None:
        return BetaPrior(params.prior_alpha, params.prior_beta)
    clicks = np.bincount(window.click_codes, minlength=window.size).astype(np.float64)
    views = np.bincount(window.view_codes, minlength=window.size).astype(np.float64)
    return fit_beta_prior(clicks, views)


def window_components(
    window: Window, params: TrendingParams, memo: dict[tuple[bool, float], FloatArray] | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Decayed clicks C, impressions I (half_life_hours) and exposure E (exposure half-life) per
    article code: the inputs of recommender.scoring.trending_score. `memo` keeps decayed counts
    per (kind, half-life) when one window is scored many ways (the half-life fit)."""
    memo = {} if memo is None else memo

    def counts(clicks: bool, half_life_hours: float) -> FloatArray:
        key = (clicks, half_life_hours)
        if key not in memo:
            codes, ages = (
                (window.click_codes, window.click_ages)
                if clicks
                else (window.view_codes, window.view_ages)
            )
            memo[key] = decayed(codes, ages, window.size, half_life_hours)
        return memo[key]

    hl = params.half_life_hours
    return counts(True, hl), counts(False, hl), counts(False, params.exposure_half_life_hours)


def window_scores(
    window: Window,
    params: TrendingParams,
    prior: BetaPrior | None,
    memo: dict[tuple[bool, float], FloatArray] | None = None,
) -> FloatArray:
    """Trending score per article code: recommender.scoring.trending_score on the components."""
    return trending_score(*window_components(window, params, memo), prior)


def index_scores(index: EventIndex, as_of: float, params: TrendingParams) -> FloatArray:
    """Trending score per article code of the index as of `as_of`."""
    window = window_events(index, as_of, params.window_hours)
    return window_scores(window, params, window_prior(window, params))


def with_prior(index: EventIndex, as_of: float, params: TrendingParams) -> TrendingParams:
    """Params with the prior fixed to the one fitted at as_of (for the manifest and serving)."""
    if params.prior_alpha is not None and params.prior_beta is not None:
        return params
    prior = window_prior(window_events(index, as_of, params.window_hours), params)
    if prior is None:
        return params
    return replace(params, prior_alpha=prior.alpha, prior_beta=prior.beta)


def article_components(
    events: EventLog, as_of: float, params: TrendingParams
) -> dict[str, tuple[float, float, float]]:
    """(C, I, E) per article with events in the window: what live serving decays forward from
    as_of and adds its own counters to before calling trending_score."""
    index = index_events(events, params)
    clicks, views, exposure = window_components(
        window_events(index, as_of, params.window_hours), params
    )
    active = np.flatnonzero((clicks > 0) | (views > 0)).tolist()
    return {index.ids[i]: (float(clicks[i]), float(views[i]), float(exposure[i])) for i in active}


def article_scores(events: EventLog, as_of: float, params: TrendingParams) -> dict[str, float]:
    """Trending score per article as of `as_of` (only articles with a positive score)."""
    index = index_events(events, params)
    scores = index_scores(index, as_of, params)
    return {index.ids[i]: float(scores[i]) for i in np.flatnonzero(scores > 0).tolist()}


def popular_lists(
    articles: Sequence[Article], scores: dict[str, float], as_of: float, params: TrendingParams
) -> dict[str, PopularList]:
    """Site-wide ("") and per-section lists, best first. An article counts in every section it
    sits in; articles published after as_of are left out (not yet on the site)."""
    members: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for article in articles:
        score = scores.get(article.id, 0.0)
        if score <= 0 or (article.published_at is not None and article.published_at > as_of):
            continue
        members[""].append((article.id, score))
        for section in {s.lower() for s in article.sections}:
            members[section].append((article.id, score))
    lists = {}
    for section, items in members.items():
        items.sort(key=lambda item: (-item[1], item[0]))
        lists[section] = PopularList(as_of=as_of, items=items[: params.depth])
    lists.setdefault("", PopularList(as_of=as_of, items=[]))
    return lists


def with_components(
    lists: dict[str, PopularList], components: dict[str, tuple[float, float, float]]
) -> None:
    """Attach each listed article's (C, I, E) to its lists, in place."""
    for popular in lists.values():
        popular.components.update(
            {aid: components[aid] for aid, _ in popular.items if aid in components}
        )


def default_as_of(events: EventLog | None, articles: Sequence[Article]) -> float:
    """The newest event, else the newest publication time, else 0."""
    if events is not None and len(events):
        return float(events.ts.max())
    dates = [a.published_at for a in articles if a.published_at is not None]
    return max(dates) if dates else 0.0
