"""Folding a list's rules into a ranked list at read time: blocked articles leave it, pinned
ones take their positions, and the rest keep the model's order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from recommender.domain import Article
from recommender.rules.model import ListRules, Rule

Fetch = Callable[[list[str]], Awaitable[list[Article | None]]]
"""Display records of ids, None for an unknown one (Reader.articles of the live version)."""


@dataclass(frozen=True)
class Placed:
    """One entry of a folded list: the article, its model score (0 for a pinned article the
    model did not list), and the pin that placed it, if one did."""

    article: Article
    score: float
    pin: Rule | None = None


async def fold(
    ranked: list[tuple[str, float]],
    skip: set[str] | frozenset[str],
    limit: int,
    rules: ListRules,
    fetch: Fetch,
    keep: Callable[[Article], bool] = lambda _a: True,
) -> list[Placed]:
    """The first `limit` entries of `ranked` (ids the caller skips, and blocked articles, left
    out), with the pins placed. A pin obeys `skip`, blocks and `keep` (a request's section
    filter) like any entry: a block wins over a pin. A pin that cannot apply (past `limit`,
    blocked, filtered) leaves its article where the model ranks it."""
    pins = await _placeable(rules, skip, limit, fetch, keep)
    dropped = skip | {p.article.id for p in pins} | rules.blocked_ids
    chosen: list[Placed] = []
    step, start = 2 * limit, 0
    while len(chosen) < limit and start < len(ranked):
        batch = [(aid, s) for aid, s in ranked[start : start + step] if aid not in dropped]
        start += step
        records = await fetch([aid for aid, _ in batch]) if batch else []
        chosen += [Placed(r, s) for (_, s), r in zip(batch, records, strict=True)
                   if r is not None and not rules.blocks(r)][: limit - len(chosen)]  # fmt: skip
    scores = dict(ranked)
    for entry in pins:  # lowest position first: each lands where it asked
        rule = entry.pin
        assert rule is not None and rule.pin is not None
        at = min(rule.pin.position - 1, len(chosen))
        chosen.insert(at, Placed(entry.article, scores.get(entry.article.id, 0.0), rule))
    return chosen[:limit]


async def _placeable(
    rules: ListRules,
    skip: set[str] | frozenset[str],
    limit: int,
    fetch: Fetch,
    keep: Callable[[Article], bool],
) -> list[Placed]:
    """The pins that apply to this answer, lowest position first (one per article: the
    lowest), with their articles' records."""
    out = skip | rules.blocked_ids
    pins = [(r, r.pin) for r in rules.pins if r.pin is not None]
    pins = [(r, p) for r, p in pins if p.position <= limit and p.article_id not in out]
    if not pins:
        return []
    records = await fetch([p.article_id for _, p in pins])
    placeable: dict[str, Placed] = {}
    for (rule, _), record in zip(pins, records, strict=True):
        if record is not None and not rules.blocks(record) and keep(record):
            placeable.setdefault(record.id, Placed(record, 0.0, rule))
    return list(placeable.values())
