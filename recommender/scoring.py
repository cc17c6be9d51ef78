"""Scoring formulas shared by training and serving: one formula, one place.

Popular ("trending") score of an article at time `now`, from its counted events before `now`
(one per reader per article per dedup period), each weighted 2^(-age / half_life):

    C = decayed clicks,       half-life h   (`half_life_hours`, fitted by the nightly job)
    I = decayed impressions,  half-life h
    E = decayed impressions,  half-life h_e (`exposure_half_life_hours`, fitted, shorter)

    ctr   = (C + alpha) / (I + alpha + beta)    click rate shrunk towards the site's prior
    score = ctr * E                             expected clicks at the article's current exposure

alpha and beta are a Beta prior on click rates fitted to the log (method of moments) and stored
with the model. A log with no impressions has no prior (None) and the score is C: decayed clicks.
Why this shape: on MIND, clicks in the next hour follow what is being shown now (E, a short
half-life) times how well it converts (a click rate over a longer half-life, shrunk so that an
article with 1 click in 2 views does not outrank one with 40 in 1,000).

Serving keeps click and impression counters (per minute and per hour), turns them into C, I and
E by summing each bucket's counts times `decay_weights` of its age (recommender/live/counters.py),
and calls `trending_score` with the stored prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

HOUR = 3600.0
# Defaults of the trending model: training fits or takes its parameters from these, records
# them in the manifest, and serving reads them from there (these only fill in older manifests).
HALF_LIFE_HOURS = 1.0
"""Half-life of clicks and of the click-rate counts."""
EXPOSURE_HALF_LIFE_HOURS = 0.25
"""Half-life of the impressions that say what is shown now."""
WINDOW_HOURS = 72.0
"""Only events this recent count."""
SESSION_DEDUP_MINUTES = 30.0
"""One click (and one impression) per session per article per this many minutes."""


@dataclass(frozen=True)
class BetaPrior:
    """Beta(alpha, beta) prior on an article's click rate: alpha clicks in alpha + beta views."""

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        """The prior click rate."""
        return self.alpha / (self.alpha + self.beta)


def decay_weights(age_seconds: ArrayLike, half_life_seconds: float) -> NDArray[np.float64]:
    """Weight of an event `age` seconds old: 1 now, 1/2 one half-life ago (future events: 0)."""
    age = np.asarray(age_seconds, dtype=np.float64)
    weights = np.exp2(-np.maximum(age, 0.0) / half_life_seconds)
    return np.where(age < 0, 0.0, weights)


def smoothed_ctr(
    clicks: ArrayLike, impressions: ArrayLike, prior: BetaPrior
) -> NDArray[np.float64]:
    """Posterior mean click rate: (clicks + alpha) / (impressions + alpha + beta)."""
    c = np.asarray(clicks, dtype=np.float64)
    i = np.asarray(impressions, dtype=np.float64)
    return (c + prior.alpha) / (i + prior.alpha + prior.beta)


def trending_score(
    clicks: ArrayLike,
    impressions: ArrayLike,
    exposure: ArrayLike,
    prior: BetaPrior | None,
) -> NDArray[np.float64]:
    """Popular score: smoothed_ctr(C, I) * E, or C alone when there is no prior (no impressions)."""
    if prior is None:
        return np.asarray(clicks, dtype=np.float64).copy()
    return smoothed_ctr(clicks, impressions, prior) * np.asarray(exposure, dtype=np.float64)
