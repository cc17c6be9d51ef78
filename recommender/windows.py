"""Named Popular windows: variants of the Popular list chosen per request with
`GetPopular(window=...)`, beside the fitted trending model (the default, also called "now").
One place for their settings and formulas, shared by training (the nightly lists) and serving
(the same formula on the nightly totals decayed forward plus the live counters).

Every window scores articles from decayed click totals, one per half-life it names (each click
weighs 2^(-age / half-life), as in recommender/scoring.py):

- "decayed": score = the total of its one half-life ("most read today" with a 6 h half-life:
  a day-old click weighs 1/16; "this week" with 42 h: a week-old one 1/16).
- "rising": an article's recent click rate against its own earlier rate and its section's,
  z-score style, so that acceleration counts, not size. Rates (clicks an hour) are estimated
  from a fast and a slow total (rate = total x ln 2 / half-life); over the fast half-life h_f,
  the article got `observed` = h_f x fast rate clicks where `expected` = h_f x max(own slow
  rate, the median slow rate of the section's `baseline_articles` busiest) were due:
      score = (observed - expected) / sqrt(expected + 1)
  and only articles with at least `min_clicks` decayed recent clicks are listed (one click on a
  quiet article does not top the list), and only while the score is at least `min_score`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FITTED = "now"
"""The fitted trending model's name as a window (GetPopular's default, window "")."""
KINDS = ("decayed", "rising")
_NAME = re.compile(r"[a-z0-9_-]{1,32}")


@dataclass(frozen=True)
class PopularWindow:
    """One named window's settings (hours); which fields count depends on `kind`."""

    kind: str = "decayed"
    half_life_hours: float = 6.0
    """decayed: the one half-life."""
    fast_half_life_hours: float = 1.0
    """rising: the half-life of the recent rate."""
    slow_half_life_hours: float = 24.0
    """rising: the half-life of the earlier rate it is compared with."""
    min_clicks: float = 2.0
    """rising: decayed recent clicks (fast half-life) an article needs to be listed: one click
    on a quiet article never is."""
    baseline_articles: int = 500
    """rising: the section's baseline is the median earlier rate of its this many busiest
    articles (most earlier clicks): the same set in the nightly list and when serving."""
    min_score: float = 0.5
    """rising: the score an article needs to be listed (1 = a standard deviation above what
    was due). The defaults were chosen on the first half of the MIND replay's days
    (docs/popular.md)."""

    @property
    def half_lives(self) -> tuple[float, ...]:
        """The half-lives (hours) of the click totals it reads, in that order."""
        if self.kind == "rising":
            return (self.fast_half_life_hours, self.slow_half_life_hours)
        return (self.half_life_hours,)

    def as_dict(self) -> dict[str, Any]:
        """The fields its kind reads, for the manifest and params files."""
        wanted = {
            "decayed": ("half_life_hours",),
            "rising": (
                "fast_half_life_hours",
                "slow_half_life_hours",
                "min_clicks",
                "min_score",
                "baseline_articles",
            ),
        }
        values = asdict(self)
        return {"kind": self.kind, **{k: values[k] for k in wanted[self.kind]}}  # fmt: skip


DEFAULT_WINDOWS: dict[str, dict[str, Any]] = {
    "today": PopularWindow("decayed", half_life_hours=6.0).as_dict(),
    "week": PopularWindow("decayed", half_life_hours=42.0).as_dict(),
    "rising": PopularWindow("rising").as_dict(),
}
"""The windows a version gets unless its params say otherwise."""


def parse_windows(spec: Mapping[str, Any]) -> dict[str, PopularWindow]:
    """Windows from their params/manifest form ({name: {kind, ...}}); ValueError naming the
    window and field that is wrong."""
    windows = {}
    for name, fields in spec.items():
        if not _NAME.fullmatch(str(name)) or name == FITTED:
            raise ValueError(f"window name {name!r}: 1-32 of a-z 0-9 _ -, and not {FITTED!r}")
        if not isinstance(fields, Mapping):
            raise ValueError(f"window {name!r}: expected a table of settings, got {fields!r}")
        try:
            window = PopularWindow(**fields)
        except TypeError as exc:
            raise ValueError(f"window {name!r}: {exc}") from None
        if window.kind not in KINDS:
            raise ValueError(f"window {name!r}: kind {window.kind!r} (known: {', '.join(KINDS)})")
        if not all(isinstance(h, int | float) and h > 0 for h in window.half_lives):
            raise ValueError(f"window {name!r}: half-lives must be positive numbers of hours")
        for field in ("min_clicks", "min_score"):
            value = getattr(window, field)
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"window {name!r}: {field} must be a number >= 0")
        if not (isinstance(window.baseline_articles, int) and window.baseline_articles >= 1):
            raise ValueError(f"window {name!r}: baseline_articles must be an integer >= 1")
        windows[str(name)] = window
    return windows


def window_scores(window: PopularWindow, totals: NDArray[np.float64]) -> NDArray[np.float64]:
    """Scores of one list's articles from their click totals (articles x half-lives, in
    `half_lives` order); 0 for an article the window does not list."""
    if window.kind == "decayed":
        return np.asarray(totals[:, 0], dtype=np.float64).copy()
    fast_h, slow_h = window.half_lives
    fast, slow = totals[:, 0], totals[:, 1]
    slow_rate = slow * math.log(2) / slow_h
    busiest = np.sort(slow_rate[slow > 0])[::-1][: window.baseline_articles]
    baseline = float(np.median(busiest)) if len(busiest) else 0.0
    observed = fast * math.log(2)  # = fast_h x (fast x ln 2 / fast_h)
    expected = fast_h * np.maximum(slow_rate, baseline)
    score = (observed - expected) / np.sqrt(expected + 1.0)
    listed = (fast >= window.min_clicks) & (score >= window.min_score) & (score > 0)
    return np.where(listed, score, 0.0)
