"""Sanity gates: checks a trained model must pass before anything of it is published, so a bad
input (another site's click log, a truncated export, text that relates nothing) leaves the live
version serving. Each refusal names the check, the figures, and the flag that overrides it.

The click-log rule (docs/training.md has the figures): a sample log such as MIND's references
many articles outside the export (2.8% of its events, 3.8% of its distinct ids match), while
another site's log matches none. So a log passes when at least gate_min_matched_share of its
events or of its distinct ids match, and at least gate_min_matched_events events do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recommender.config import Settings
from training.sources.events import EventLog

RELATED_SCORE_FLOOR = 0.01
"""A list whose best item scores below this relates nothing: the items share no words (what is
left is numeric noise of the LSA part). MIND, BBC and the demo corpus: every article's best
item scores above 0.05."""


class GateRefused(ValueError):
    """A gate refused the model; nothing was published."""


@dataclass(frozen=True)
class Gates:
    """Thresholds (from Settings) and the overrides a run was given."""

    min_matched_share: float = 0.01
    min_matched_events: int = 100
    min_article_ratio: float = 0.5
    min_related_share: float = 0.1
    allow_unmatched_clicks: bool = False
    allow_shrink: bool = False
    allow_empty_related: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, **allow: bool) -> Gates:
        """The thresholds of settings, with the overrides given as allow_* keywords."""
        return cls(settings.gate_min_matched_share, settings.gate_min_matched_events,
                   settings.gate_min_article_ratio, settings.gate_min_related_share,
                   **allow)  # fmt: skip


@dataclass(frozen=True)
class ClickMatch:
    """How much of a click log refers to the export's articles."""

    events: int
    matched_events: int
    ids: int
    matched_ids: int

    @classmethod
    def of(cls, events: EventLog) -> ClickMatch:
        """The match of a log read with the export's ids (its unknown ones counted aside)."""
        matched_ids = len(set(events.article_ids))
        return cls(len(events) + events.unknown_ids, len(events),
                   matched_ids + events.unknown_distinct_ids, matched_ids)  # fmt: skip

    @property
    def event_share(self) -> float:
        return self.matched_events / self.events if self.events else 0.0

    @property
    def id_share(self) -> float:
        return self.matched_ids / self.ids if self.ids else 0.0


def check_clicks(match: ClickMatch, gates: Gates) -> str | None:
    """Why the click log looks foreign (or empty), or None when it passes."""
    if gates.allow_unmatched_clicks:
        return None
    floor = min(gates.min_matched_events, match.events)
    share = max(match.event_share, match.id_share)
    if match.events and match.matched_events >= floor and share >= gates.min_matched_share:
        return None
    return (
        f"click-log gate: {match.matched_events:,} of {match.events:,} events "
        f"({match.event_share:.2%}) and {match.matched_ids:,} of {match.ids:,} distinct article "
        f"ids ({match.id_share:.2%}) match the export; needed {gates.min_matched_share:.2%} of "
        f"either and at least {floor:,} events (gate_min_matched_share, "
        "gate_min_matched_events). Is it another site's log? Override with "
        "--allow-unmatched-clicks"
    )


def check_shrink(articles: int, live_articles: int | None, gates: Gates) -> str | None:
    """Why the model is suspiciously smaller than the live one, or None."""
    if gates.allow_shrink or live_articles is None:
        return None
    if articles >= gates.min_article_ratio * live_articles:
        return None
    return (
        f"shrink gate: the new model has {articles:,} articles, the live one "
        f"{live_articles:,}; below {gates.min_article_ratio:.0%} of it "
        "(gate_min_article_ratio). A truncated export? Override with --allow-shrink"
    )


def lists_with_related(scores: NDArray[np.float32]) -> int:
    """Articles whose best related item (column 0 of the best-first scores) is a real one."""
    if scores.ndim != 2 or scores.shape[1] == 0:
        return 0
    return int(np.count_nonzero(scores[:, 0] > RELATED_SCORE_FLOOR))


def check_related(with_lists: int, articles: int, gates: Gates) -> str | None:
    """Why the related lists look broken (none, or almost none, non-empty), or None."""
    if gates.allow_empty_related:
        return None
    share = with_lists / articles if articles else 0.0
    if with_lists > 0 and share >= gates.min_related_share:
        return None
    return (
        f"related gate: {with_lists:,} of {articles:,} articles ({share:.2%}) have a related "
        f"list; needed at least {gates.min_related_share:.2%} and one "
        "(gate_min_related_share). Override with --allow-empty-related"
    )


def enforce(refusals: list[str | None]) -> None:
    """Raise GateRefused naming every gate that failed (each with its override flag)."""
    failed = [r for r in refusals if r]
    if failed:
        raise GateRefused(
            "refusing to publish (the live version stays): " + "; ".join(failed)
            + " (or --force for every gate)"
        )  # fmt: skip
