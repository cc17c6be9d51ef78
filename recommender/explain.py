"""Explanations (`explain=true`): why each item of a Related or Popular answer is there. Only
computed when asked: a Related explanation reads the version's explanation records
(training/related/explain.py, published with `related.explain = true`), a Popular one the
click totals its ranking was scored from."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from recommender.errors import NotExplained
from recommender.reader import Reader
from recommender.v1 import recommender_pb2 as pb
from recommender.windows import FITTED, PopularWindow

SHARED_TERMS = 5
"""Shared terms an explanation names."""


async def related_explanations(
    reader: Reader,
    version: str,
    article_id: str,
    items: Sequence[tuple[str, float]],
    pins: Mapping[str, str],
) -> dict[str, pb.Explanation]:
    """Per listed (id, score): the blend's parts as training recorded them ("model"), "live"
    for an upsert's placement, "pin" (with the rule id) for a pinned article; the shared
    terms."""
    meta = await reader.meta(version)
    if not meta.get("parameters", {}).get("related.explain", False):
        raise NotExplained(
            f"model {version} was trained without explanations: train with "
            "`related.explain = true` in the params file to answer explain=true"
        )
    # The version's own entries, unless the article was upserted since (its list was rebuilt
    # live) or an upsert of the entry outscored it (the served score is then not the model's).
    base = [] if article_id in reader.upserted else await reader.base_related(version, article_id)
    position = {cand[0]: (n, cand[1]) for n, cand in enumerate(base or [])}
    ids = [article_id, *(item for item, _ in items)]
    raws = await reader.run(lambda p: [p.get(reader.keys.explanation(version, i)) for i in ids])
    records = [None if raw is None else json.loads(raw) for raw in raws]
    own = records[0] or {}
    out = {}
    for (item, score), record in zip(items, records[1:], strict=True):
        terms = _shared(own.get("terms", []), (record or {}).get("terms", []))
        why = pb.Explanation(shared_terms=terms)
        listed = position.get(item)
        if item in pins:
            why.source, why.pinned_by = "pin", pins[item]
        elif listed is not None and own.get("parts") and abs(listed[1] - score) <= 1e-6:
            _set_parts(why, own["shares"], own["parts"][listed[0]])
        else:
            why.source = "live"
        out[item] = why
    return out


def _set_parts(why: pb.Explanation, shares: Sequence[float], parts: Sequence[float]) -> None:
    why.source = "model"
    why.tfidf, why.lsa, why.embedding, why.recency = parts
    why.tfidf_share, why.lsa_share, why.embedding_share = shares


def _shared(mine: Sequence[Sequence[Any]], theirs: Sequence[Sequence[Any]]) -> list[pb.SharedTerm]:
    """Terms in both lists, by the product of their weights, heaviest first."""
    weights = {str(term): float(w) for term, w in theirs}
    both = [(str(term), float(w) * weights[str(term)]) for term, w in mine if str(term) in weights]
    both.sort(key=lambda tw: -tw[1])
    return [pb.SharedTerm(term=t, weight=w) for t, w in both[:SHARED_TERMS]]


def popular_explanation(
    window_name: str, window: PopularWindow | None, totals: Sequence[float], score: float
) -> pb.Explanation:
    """What one Popular item's score was made of (totals as of the answer)."""
    why = pb.Explanation(window=window_name or FITTED)
    if window is None:  # the fitted model: (C, I, E)
        why.clicks, why.impressions, why.exposure = (float(x) for x in totals[:3])
    elif window.kind == "rising":
        why.clicks, why.earlier_clicks, why.velocity = float(totals[0]), float(totals[1]), score
    else:
        why.clicks = float(totals[0])
    return why
