"""The rule RPCs: PinArticle, BlockArticle, ListRules, RemoveRule (the gRPC servicer hands
them in; `newsrec rules` does the same through recommender/rules/commands.py)."""

from __future__ import annotations

import time

from recommender.errors import ArticleNotFound, RuleNotFound
from recommender.reader import Reader
from recommender.rules import store
from recommender.rules.model import Rule, RuleSet, check_room, check_rule_id
from recommender.rules.requests import block_rule, pin_rule, rule_message
from recommender.v1 import recommender_pb2 as pb


class RuleService:
    """Rules written to Redis, then applied on this replica at once (the others within their
    sync interval)."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def pin(self, request: pb.PinArticleRequest, created_by: str) -> pb.RuleResponse:
        """A pin, once its article and its list's article are known and served."""
        rule = pin_rule(request, created_by, time.time())
        assert rule.pin is not None
        await self._check_known(rule.pin.article_id, "article_id")
        if rule.pin.related_to is not None:
            await self._check_known(rule.pin.related_to, "related_to")
        return await self._add(rule)

    async def block(self, request: pb.BlockArticleRequest, created_by: str) -> pb.RuleResponse:
        """A block (of an article that may not exist yet: a block can come first)."""
        return await self._add(block_rule(request, created_by, time.time()))

    async def list(self) -> pb.ListRulesResponse:
        """Every rule in force, newest first (read from Redis, not this replica's copy)."""
        (stored,) = await self.reader.run(lambda p: store.queue_read(p, self.reader.keys))
        rules = RuleSet.decode(stored).in_force(time.time())
        return pb.ListRulesResponse(rules=[rule_message(r) for r in rules])

    async def remove(self, request: pb.RemoveRuleRequest) -> pb.RemoveRuleResponse:
        """Delete a rule; NOT_FOUND for an id no stored rule has."""
        check_rule_id(request.rule_id)
        removed, _ = await self.reader.run(
            lambda p: store.queue_remove(p, self.reader.keys, [request.rule_id])
        )
        if not removed:
            raise RuleNotFound(f"rule_id {request.rule_id!r} names no rule (see ListRules)")
        await self.reader.refresh_live()
        return pb.RemoveRuleResponse()

    async def _add(self, rule: Rule) -> pb.RuleResponse:
        now = time.time()
        check_room(self.reader.rules, now)
        expired = self.reader.rules.expired(now)
        await self.reader.run(lambda p: store.queue_add(p, self.reader.keys, rule, expired))
        await self.reader.refresh_live()
        return pb.RuleResponse(rule_id=rule.rule_id)

    async def _check_known(self, article_id: str, field: str) -> None:
        version = await self.reader.live_version()
        await self.reader.ensure_synced()
        (record,) = await self.reader.articles(version, [article_id])
        if record is None or article_id in self.reader.deleted:
            raise ArticleNotFound(
                f"{field} {article_id!r} is neither in model {version} nor upserted since"
                + (" (it was taken down)" if article_id in self.reader.deleted else "")
            )
