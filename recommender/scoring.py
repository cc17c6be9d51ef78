"""Scoring formulas shared by training and serving: one formula, one place."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

HOUR = 3600.0


def decay_weights(age_seconds: ArrayLike, half_life_seconds: float) -> NDArray[np.float64]:
    """Weight of an event `age` seconds old: 1 now, 1/2 one half-life ago (future events: 0)."""
    age = np.asarray(age_seconds, dtype=np.float64)
    weights = np.exp2(-np.maximum(age, 0.0) / half_life_seconds)
    return np.where(age < 0, 0.0, weights)
