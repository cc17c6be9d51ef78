"""PinArticle and BlockArticle requests checked and turned into rules, and rules back into
messages: one place for the gRPC calls and `newsrec rules` alike."""

from __future__ import annotations

from typing import Any

from recommender.errors import InvalidRequest
from recommender.rules.model import Block, Pin, Rule, new_rule_id
from recommender.v1 import recommender_pb2 as pb
from recommender.validation import (
    MAX_LIMIT,
    check_id,
    check_length,
    check_section,
    check_timestamp,
    timestamp,
)

MAX_NOTE_CHARS = 500


def pin_rule(request: pb.PinArticleRequest, created_by: str, now: float) -> Rule:
    """The rule a PinArticle request asks for (InvalidRequest naming a bad field)."""
    article_id = check_id(request.article_id, "article_id")
    if not 1 <= request.position <= MAX_LIMIT:
        raise InvalidRequest(f"position must be between 1 and {MAX_LIMIT}, got {request.position}")
    which = request.WhichOneof("list")
    if which is None:
        raise InvalidRequest('set related_to (an article id) or popular_section ("" = site-wide)')
    if which == "related_to":
        related_to = check_id(request.related_to, "related_to")
        if related_to == article_id:
            raise InvalidRequest(f"article_id {article_id!r} cannot be pinned to its own list")
        pin = Pin(article_id, request.position, related_to=related_to)
    else:
        section = check_section(request.popular_section, "popular_section")
        pin = Pin(article_id, request.position, popular_section=section)
    return Rule(new_rule_id("pin"), now, created_by, pin=pin, **_common(request, now))


def block_rule(request: pb.BlockArticleRequest, created_by: str, now: float) -> Rule:
    """The rule a BlockArticle request asks for (InvalidRequest naming a bad field)."""
    target = request.WhichOneof("target")
    if target is None:
        raise InvalidRequest("set what to block: article_id, tag or section")
    value = getattr(request, target)
    checked = check_id(value, target) if target == "article_id" else check_section(value, target)
    if not checked:
        raise InvalidRequest(f"{target} is empty")
    beside = request.WhichOneof("beside")
    where: dict[str, str] = {}
    if beside == "beside_article_id":
        where[beside] = check_id(request.beside_article_id, beside)
    elif beside == "beside_section":
        where[beside] = check_section(request.beside_section, beside)
        if not where[beside]:
            raise InvalidRequest("beside_section is empty (leave `beside` unset for everywhere)")
    block = Block(**{target: checked}, **where)
    return Rule(new_rule_id("block"), now, created_by, block=block, **_common(request, now))


def _common(request: pb.PinArticleRequest | pb.BlockArticleRequest, now: float) -> dict[str, Any]:
    """The expiry (in the future) and the note (bounded) of either request."""
    check_length(request.note, MAX_NOTE_CHARS, "note", "characters")
    expires = None
    if request.HasField("expires_at"):
        expires = check_timestamp(request.expires_at, "expires_at")
        if expires <= now:
            raise InvalidRequest(f"expires_at ({request.expires_at.ToJsonString()}) has passed")
    return {"expires_at": expires, "note": request.note}


def rule_message(rule: Rule) -> pb.Rule:
    """A stored rule as ListRules answers it."""
    message = pb.Rule(rule_id=rule.rule_id, created_by=rule.created_by,
                      created_at=timestamp(rule.created_at))  # fmt: skip
    body: pb.PinArticleRequest | pb.BlockArticleRequest
    if rule.pin is not None:
        body = message.pin
        body.article_id, body.position = rule.pin.article_id, rule.pin.position
        if rule.pin.related_to is not None:
            body.related_to = rule.pin.related_to
        else:
            body.popular_section = rule.pin.popular_section or ""
    else:
        body = message.block
        for name, value in vars(rule.block).items():
            if value is not None:
                setattr(body, name, value)
    body.note = rule.note
    if rule.expires_at is not None:
        body.expires_at.CopyFrom(timestamp(rule.expires_at))
    return message
