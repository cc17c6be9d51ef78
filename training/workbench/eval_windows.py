"""The named Popular windows in the Popular replay (`newsrec eval popular`): each window's
site-wide list from the events before a step, by the shared formula (recommender/windows.py),
and the measure `rising` is for: of the articles whose clicks grew most from the hour before
a step to the hour after it (the step's "growers", at most k of them), how many were listed
at the step's start."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from recommender.live.counters import HORIZON_HALF_LIVES
from recommender.windows import PopularWindow, parse_windows, window_scores
from training.trending.model import (
    EventIndex,
    FloatArray,
    TrendingParams,
    decayed,
    window_events,
)
from training.trending.replay import Replay, before

ScoreFn = Callable[[float], FloatArray]


def window_scorers(replay: Replay, params: TrendingParams) -> dict[str, ScoreFn]:
    """Per named window, scores per article code from the events before t."""
    return {f"window {name} ({window.kind})": _scorer(replay.index, window)
            for name, window in parse_windows(params.windows).items()}  # fmt: skip


def _scorer(index: EventIndex, window: PopularWindow) -> ScoreFn:
    def score(t: float) -> FloatArray:
        totals = []
        for hours in window.half_lives:  # as the nightly lists: within 16 half-lives
            events = window_events(index, before(t), HORIZON_HALF_LIVES * hours)
            totals.append(decayed(events.click_codes, events.click_ages, events.size, hours))
        return window_scores(window, np.column_stack(totals))

    return score


def fastest_growing(replay: Replay) -> list[NDArray[np.intp]]:
    """Per scored step, the codes of its (at most k) articles whose clicks grew most from the
    step before to the step after t, among those that grew; ties broken by code."""
    index, k, step = replay.index, replay.settings.k, replay.settings.step_seconds
    click_ts, click_codes = index.ts[index.is_click], index.codes[index.is_click]
    out = []
    for gains in replay.gains:
        lo, hi = np.searchsorted(click_ts, [gains.t - step, gains.t], side="left")
        earlier = np.bincount(click_codes[lo:hi], minlength=len(index.ids))
        growth = gains.clicks - earlier[gains.codes]
        grew = np.flatnonzero(growth > 0)
        order = np.lexsort((gains.codes[grew], -growth[grew]))[:k]
        out.append(gains.codes[grew[order]].astype(np.intp))
    return out
