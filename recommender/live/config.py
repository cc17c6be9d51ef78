"""The live version's parameters as serving needs them, read from the version's manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from recommender import scoring
from recommender.live.counters import TrendingScoring
from recommender.scoring import HOUR, BetaPrior
from recommender.similarity import DUPLICATE_THRESHOLD, TOP_K
from recommender.windows import PopularWindow, parse_windows

log = logging.getLogger("newsrec.config")


@dataclass(frozen=True)
class VersionConfig:
    """What training recorded about one version (times in seconds)."""

    scoring: TrendingScoring
    dedup: float
    top_k: int
    duplicate_threshold: float
    as_of: float
    windows: dict[str, PopularWindow] = field(default_factory=dict)
    """Named Popular windows beside the fitted model (recommender/windows.py)."""

    @property
    def window(self) -> float:
        """Events older than this are rejected."""
        return self.scoring.window

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> VersionConfig:
        """The parameters the training run recorded (the shared defaults for older manifests)."""
        p = meta.get("parameters", {})
        windows = _windows(p.get("trending.windows", {}))
        alpha, beta = p.get("trending.prior_alpha"), p.get("trending.prior_beta")
        hours = {
            name: float(p.get(f"trending.{name}", default)) * HOUR
            for name, default in (
                ("half_life_hours", scoring.HALF_LIFE_HOURS),
                ("exposure_half_life_hours", scoring.EXPOSURE_HALF_LIFE_HOURS),
                ("window_hours", scoring.WINDOW_HOURS),
            )
        }
        trending = TrendingScoring(
            half_life=hours["half_life_hours"],
            exposure_half_life=hours["exposure_half_life_hours"],
            window=hours["window_hours"],
            prior=BetaPrior(float(alpha), float(beta)) if alpha and beta else None,
            hits=bool(windows),
        )
        dedup = p.get("trending.session_dedup_minutes", scoring.SESSION_DEDUP_MINUTES)
        return cls(
            scoring=trending,
            dedup=float(dedup) * 60.0,
            top_k=int(p.get("related.top_k", TOP_K)),
            duplicate_threshold=float(p.get("related.duplicate_threshold", DUPLICATE_THRESHOLD)),
            as_of=float(p.get("trending.as_of", 0.0)),
            windows=windows,
        )


def _windows(spec: Any) -> dict[str, PopularWindow]:
    """The version's named Popular windows; none (with a warning) if its manifest's are
    unreadable: the fitted model keeps serving."""
    try:
        return parse_windows(dict(sorted(spec.items())) if isinstance(spec, dict) else {})
    except ValueError as exc:
        log.warning("the version's Popular windows are ignored: %s", exc)
        return {}
