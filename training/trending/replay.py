"""Replay primitives: the step grid, next-step gains, top-k ranking and nDCG/recall.

The rules every method is measured by (documented in the README):
- Step t scores a list made from events strictly before t against the clicks in [t, t + step).
- The first `warmup_hours` of the log are not scored: every method needs history (a 24 h count
  has none at the log's start), so all methods start on the same footing.
- Steps whose next step holds fewer than `min_clicks` clicks are not scored, for every method:
  with fewer clicks than a handful per list slot, nDCG@10 is mostly noise (night hours of a
  small sample). On MIND 91 of 120 hourly steps have >= 20 clicks.
- Gains are every click event in the log (all article ids, also those missing from the export),
  as readers produced them; metrics are the mean nDCG over scored steps and the recall pooled
  over them (clicks on listed articles / all clicks), with the ceiling a perfect top-k reaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recommender.scoring import HOUR
from training.metrics import ndcg
from training.sources.events import EventLog
from training.trending.model import EventIndex, FloatArray, TrendingParams, index_events


@dataclass(frozen=True)
class ReplaySettings:
    """How the replay walks the log."""

    step_seconds: float = HOUR
    warmup_hours: float = 24.0
    min_clicks: int = 20
    k: int = 10


@dataclass(frozen=True)
class StepGains:
    """Clicks per article in one step's next window [t, t + step)."""

    t: float
    codes: NDArray[np.intp]
    """Article codes with clicks, sorted."""
    clicks: FloatArray

    @property
    def total(self) -> float:
        """All clicks of the step."""
        return float(self.clicks.sum())

    def of(self, top: NDArray[np.intp]) -> FloatArray:
        """Gain of each listed article (0 for articles without clicks)."""
        where = np.searchsorted(self.codes, top)
        where = np.minimum(where, len(self.codes) - 1)
        return np.where(self.codes[where] == top, self.clicks[where], 0.0)


@dataclass(frozen=True)
class Replay:
    """A log prepared for replay: its index, all steps, and the scored ones with their gains."""

    index: EventIndex
    settings: ReplaySettings
    start: float
    """The first step after the warm-up (scored or not): nightly fits and days count from it."""
    all_steps: int
    gains: list[StepGains]

    @property
    def steps(self) -> FloatArray:
        """Start times of the scored steps."""
        return np.array([g.t for g in self.gains], dtype=np.float64)


def before(t: float) -> float:
    """The as_of that sees exactly the events before t (the model counts events <= as_of)."""
    return float(np.nextafter(t, -np.inf))


def step_grid(ts: FloatArray, settings: ReplaySettings) -> FloatArray:
    """Step starts: aligned to whole steps from the first event, after the warm-up, up to the
    last event."""
    if len(ts) == 0:
        return np.zeros(0)
    step = settings.step_seconds
    origin = math.floor(float(ts[0]) / step) * step
    first = origin + math.ceil(settings.warmup_hours * HOUR / step) * step
    return np.arange(first, float(ts[-1]) + 1e-9, step, dtype=np.float64)


def build_replay(events: EventLog, params: TrendingParams, settings: ReplaySettings) -> Replay:
    """Index the log and collect each scored step's next-step clicks."""
    index = index_events(events, params)
    grid = step_grid(index.ts, settings)
    click_ts = index.ts[index.is_click]
    click_codes = index.codes[index.is_click]
    gains = []
    for t in grid.tolist():
        lo, hi = np.searchsorted(click_ts, [t, t + settings.step_seconds], side="left")
        if hi - lo < settings.min_clicks or hi == lo:
            continue
        codes, counts = np.unique(click_codes[lo:hi], return_counts=True)
        gains.append(StepGains(t, codes.astype(np.intp), counts.astype(np.float64)))
    start = float(grid[0]) if len(grid) else 0.0
    return Replay(index, settings, start, len(grid), gains)


def top_k(scores: FloatArray, k: int) -> NDArray[np.intp]:
    """Codes of the k best positive scores, ties broken by code (codes follow id order, as
    popular_lists breaks ties by id)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        kth = np.partition(scores[positive], len(positive) - k)[len(positive) - k]
        positive = positive[scores[positive] >= kth]  # all ties at the boundary stay in
    order = np.lexsort((positive, -scores[positive]))
    return positive[order[:k]].astype(np.intp)


def step_metrics(top: NDArray[np.intp], gains: StepGains, k: int) -> tuple[float, float]:
    """(nDCG@k, hits) of one list: gain = next-step clicks; ideal = the best possible top k."""
    listed = gains.of(top[:k])
    return ndcg(listed, np.sort(gains.clicks)[::-1][:k]), float(listed.sum())


def ceiling_hits(gains: StepGains, k: int) -> float:
    """Clicks a perfect top-k would have caught."""
    return float(np.sort(gains.clicks)[::-1][:k].sum())
