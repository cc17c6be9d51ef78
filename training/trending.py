"""The trending model: click counts with exponential time decay, site-wide and per section.

Scored as of one moment using only events up to then, so any past moment replays exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.scoring import HOUR, decay_weights
from recommender.store import PopularList
from training.sources import EventLog


@dataclass(frozen=True)
class TrendingParams:
    """How clicks become Popular scores."""

    half_life_hours: float = 6.0
    window_hours: float = 72.0
    """Only clicks this recent count."""
    session_dedup_minutes: float = 30.0
    """One click per session per article per this many minutes."""
    depth: int = 500
    """Entries kept per list: enough for any limit plus the excludes a request may carry."""

    def as_dict(self) -> dict[str, object]:
        """Plain values for the manifest."""
        return asdict(self)


def counted_clicks(events: EventLog, as_of: float, params: TrendingParams) -> NDArray[np.intp]:
    """Indices of the clicks that count: in the window up to as_of, one per session per article
    per dedup period (a reader reloading a page is one reader)."""
    start = as_of - params.window_hours * HOUR
    candidates = np.flatnonzero(events.is_click & (events.ts <= as_of) & (events.ts > start))
    dedup = params.session_dedup_minutes * 60.0
    last_counted: dict[tuple[str, str], float] = {}
    kept: list[int] = []
    for i in candidates.tolist():  # events are sorted by time
        session = events.sessions[i]
        if not session:
            kept.append(i)
            continue
        key = (session, events.article_ids[i])
        previous = last_counted.get(key)
        if previous is None or events.ts[i] - previous >= dedup:
            last_counted[key] = float(events.ts[i])
            kept.append(i)
    return np.asarray(kept, dtype=np.intp)


def article_scores(events: EventLog, as_of: float, params: TrendingParams) -> dict[str, float]:
    """Decayed click count per article as of `as_of`."""
    kept = counted_clicks(events, as_of, params)
    weights = decay_weights(as_of - events.ts[kept], params.half_life_hours * HOUR)
    scores: dict[str, float] = defaultdict(float)
    for i, w in zip(kept.tolist(), weights.tolist(), strict=True):
        scores[events.article_ids[i]] += w
    return dict(scores)


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


def default_as_of(events: EventLog | None, articles: Sequence[Article]) -> float:
    """The newest event, else the newest publication time, else 0."""
    if events is not None and len(events):
        return float(events.ts.max())
    dates = [a.published_at for a in articles if a.published_at is not None]
    return max(dates) if dates else 0.0
