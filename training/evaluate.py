"""Offline metrics of related lists and Popular lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def precision_at_k(
    lists: Mapping[str, Sequence[str]], labels: Mapping[str, set[str]], k: int = 10
) -> float:
    """Mean over labelled articles of the share of their first k related items that share a
    label with them (a short list counts its missing slots as misses)."""
    total, count = 0.0, 0
    for article_id, related in lists.items():
        own = labels.get(article_id)
        if not own:
            continue
        hits = sum(1 for other in related[:k] if labels.get(other, set()) & own)
        total += hits / k
        count += 1
    return total / count if count else 0.0
