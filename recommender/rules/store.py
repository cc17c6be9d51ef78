"""Rules in Redis: one hash (Keys.rules: rule id -> JSON), outside the versions, so a rule
survives retraining and rollback. Every change bumps the live-state epoch: each replica's sync
loop reloads the rules with the takedowns within its interval (100 ms). The commands are queued
on a pipeline the caller runs (async in the server, sync in `newsrec rules`): one key each, so
they work on Redis Cluster too."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from recommender.rules.model import Rule
from recommender.store.keys import Keys


def queue_add(pipe: Any, keys: Keys, rule: Rule, expired: Iterable[str] = ()) -> None:
    """Store a rule; drop rules that have expired (they no longer apply or list)."""
    pipe.hset(keys.rules, rule.rule_id, rule.encode())
    queue_remove(pipe, keys, expired, bump=False)
    pipe.incr(keys.epoch)


def queue_remove(pipe: Any, keys: Keys, rule_ids: Iterable[str], bump: bool = True) -> None:
    """Delete rules (HDEL answers how many existed)."""
    ids = list(rule_ids)
    if ids:
        pipe.hdel(keys.rules, *ids)
    if bump:
        pipe.incr(keys.epoch)


def queue_read(pipe: Any, keys: Keys) -> None:
    """Every stored rule (RuleSet.decode reads the answer)."""
    pipe.hgetall(keys.rules)
