"""Fit the trending half-lives on the click log's own replay (what `newsrec train` does).

The objective is the replay's own metric, mean nDCG@10 over the scored hourly steps of the last
FIT_DAYS, computed with the training scoring function (trending.window_scores) at every step.
The search is a coarse grid (factor 2, 3.75 min to 32 h) and then a fine one (factor 2^1/4)
around the best pair, the exposure half-life never longer than the click-rate one. The
objective is a step function of the half-lives (it changes only when a ranking changes), so
golden-section or gradient searches stall on its flats; the grid is cheap because decayed
counts are shared by every pair that uses the same half-life.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from recommender.scoring import HOUR
from training.sources.events import EventLog
from training.trending.model import (
    TrendingParams,
    index_events,
    window_events,
    window_prior,
    window_scores,
    with_prior,
)
from training.trending.replay import (
    Replay,
    ReplaySettings,
    before,
    build_replay,
    step_metrics,
    top_k,
)

DAY = 24 * HOUR
COARSE = tuple(2.0**e for e in range(-4, 6))
"""Half-lives tried first, in hours: 1/16 h to 32 h."""
FINE = (2.0**-0.5, 2.0**-0.25, 1.0, 2.0**0.25, 2.0**0.5)
"""Factors tried around the best coarse pair."""
FIT_DAYS = 7.0
"""The nightly fit replays the last week at most: recent behaviour, bounded cost."""
MIN_FIT_STEPS = 12
"""Fewer scored steps than this (half a day of busy hours) and the defaults are kept."""

Pair = tuple[float, float]


@dataclass(frozen=True)
class HalfLifeFit:
    """The outcome of one fit: the params to use and how they scored on the fit steps."""

    params: TrendingParams
    fitted: bool
    ndcg: float
    steps: int
    note: str

    def meta(self) -> dict[str, object]:
        """Plain values for the manifest."""
        ndcg = round(self.ndcg, 4) if self.fitted else None  # JSON has no NaN
        return {"fitted": self.fitted, "ndcg@10": ndcg, "steps": self.steps, "note": self.note}


class HalfLifeFitter:
    """Fits half-lives on one replay; remembers each (step, pair) result, so nightly refits
    over a growing log (the replay's walk-forward) only score what is new."""

    def __init__(self, replay: Replay, params: TrendingParams) -> None:
        self.replay = replay
        self.params = params
        self._done: dict[tuple[int, Pair], float] = {}

    def _score_steps(self, steps: list[int], pairs: list[Pair]) -> None:
        """nDCG of every (step, pair) not scored yet."""
        k = self.replay.settings.k
        for s in steps:
            todo = [p for p in pairs if (s, p) not in self._done]
            if not todo:
                continue
            gains = self.replay.gains[s]
            window = window_events(self.replay.index, before(gains.t), self.params.window_hours)
            prior = window_prior(window, self.params)
            memo: dict[tuple[bool, float], np.ndarray] = {}
            for pair in todo:
                params = replace(
                    self.params, half_life_hours=pair[0], exposure_half_life_hours=pair[1]
                )
                scores = window_scores(window, params, prior, memo)
                self._done[(s, pair)] = step_metrics(top_k(scores, k), gains, k)[0]

    def mean_ndcg(self, steps: list[int], pairs: list[Pair]) -> list[float]:
        """Mean nDCG@k over these steps, per pair."""
        self._score_steps(steps, pairs)
        return [float(np.mean([self._done[(s, p)] for s in steps])) for p in pairs]

    def _pairs(self, hours: tuple[float, ...], views: bool) -> list[Pair]:
        if not views:  # decayed clicks only: the exposure half-life plays no part
            return [(h, self.params.exposure_half_life_hours) for h in hours]
        # exposure says what is shown *now*: never longer-lived than the click rate's counts
        return [(h, e) for h in hours for e in hours if e <= h]

    def nightly(self, at: float) -> HalfLifeFit:
        """The fit a nightly job running at `at` makes: on the last FIT_DAYS of steps."""
        return self.fit(since=at - FIT_DAYS * DAY, until=at)

    def fit(self, since: float = -np.inf, until: float = np.inf) -> HalfLifeFit:
        """Best half-lives on the steps whose next window lies in [since, until)."""
        step = self.replay.settings.step_seconds
        steps = [i for i, g in enumerate(self.replay.gains) if g.t >= since and g.t + step <= until]
        if len(steps) < MIN_FIT_STEPS:
            note = f"{len(steps)} scored steps (< {MIN_FIT_STEPS}): kept the given half-lives"
            return HalfLifeFit(self.params, False, float("nan"), len(steps), note)
        views = self.params.use_impressions and bool(np.any(~self.replay.index.is_click))
        pairs = self._pairs(COARSE, views)
        scores = self.mean_ndcg(steps, pairs)
        best = pairs[int(np.argmax(scores))]
        around = [best[0] * f for f in FINE], [best[1] * f for f in FINE]
        pairs = (
            [(h, e) for h in around[0] for e in around[1] if e <= h * (1 + 1e-9)]
            if views
            else [(h, best[1]) for h in around[0]]
        )
        scores = self.mean_ndcg(steps, pairs)
        h, e = pairs[int(np.argmax(scores))]  # the first of equals: the shorter half-lives
        params = replace(
            self.params, half_life_hours=round(h, 4), exposure_half_life_hours=round(e, 4)
        )
        kind = "click rate x exposure" if views else "decayed clicks"
        note = f"{kind}: grid over {len(steps)} scored steps"
        return HalfLifeFit(params, True, max(scores), len(steps), note)


def fit_trending(
    events: EventLog, as_of: float, params: TrendingParams, settings: ReplaySettings | None = None
) -> tuple[TrendingParams, dict[str, object]]:
    """What the training job ships: half-lives fitted on the log's replay up to as_of (when
    params.fit_half_life), then the click-rate prior fitted at as_of; plus manifest notes."""
    fit_meta: dict[str, object] = {"fitted": False, "note": "fit_half_life is off"}
    if not params.fit_half_life:
        return with_prior(index_events(events, params), as_of, params), fit_meta
    replay = build_replay(events, params, settings or ReplaySettings())
    result = HalfLifeFitter(replay, params).nightly(as_of)
    return with_prior(replay.index, as_of, result.params), result.meta()


def fit_for_training(
    events: EventLog | None,
    as_of: float,
    params: TrendingParams,
    reread: Callable[[], EventLog] | None = None,
) -> tuple[TrendingParams, dict[str, object]]:
    """fit_trending for `newsrec train`: the fit replays every click of the log, also those on
    ids missing from the export (their timing says as much about half-lives), so a log read
    without them is read again in full (`reread`)."""
    if events is None:
        return params, {"fitted": False, "note": "no click log"}
    if events.unknown_ids and reread is not None and params.fit_half_life:
        events = reread()
    return fit_trending(events, as_of, params)
