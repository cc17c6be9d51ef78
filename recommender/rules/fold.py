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
    filter) like any entry: a block wins over a pin."""
    pinned = {r.pin.article_id for r in rules.pins if r.pin is not None}
    dropped = skip | pinned | rules.blocked_ids
    chosen: list[Placed] = []
    step, start = 2 * limit, 0
    while len(chosen) < limit and start < len(ranked):
        batch = [(aid, s) for aid, s in ranked[start : start + step] if aid not in dropped]
        start += step
        records = await fetch([aid for aid, _ in batch]) if batch else []
        chosen += [Placed(r, s) for (_, s), r in zip(batch, records, strict=True)
                   if r is not None and not rules.blocks(r)][: limit - len(chosen)]  # fmt: skip
    return await _with_pins(chosen, ranked, skip, limit, rules, fetch, keep)


async def _with_pins(
    chosen: list[Placed],
    ranked: list[tuple[str, float]],
    skip: set[str] | frozenset[str],
    limit: int,
    rules: ListRules,
    fetch: Fetch,
    keep: Callable[[Article], bool],
) -> list[Placed]:
    """Each pin inserted at its position (or the end of a shorter list), lowest first."""
    pins = [r for r in rules.pins if r.pin is not None and r.pin.article_id not in skip]
    if not pins:
        return chosen
    records = await fetch([r.pin.article_id for r in pins if r.pin is not None])
    scores = dict(ranked)
    placed: set[str] = set()
    for rule, record in zip(pins, records, strict=True):
        if rule.pin is None or record is None or record.id in placed:
            continue
        if rules.blocks(record) or not keep(record):
            continue
        at = min(rule.pin.position - 1, len(chosen))
        chosen.insert(at, Placed(record, scores.get(record.id, 0.0), rule))
        placed.add(record.id)
    return chosen[:limit]
