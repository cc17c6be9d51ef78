"""Editorial rules: a pin places an article at a position of one list, a block keeps articles
out of lists. Rules are JSON values of one Redis hash (recommender/rules/store.py), read by
every replica with the live state and folded into answers at read time (fold.py)."""

from __future__ import annotations

import bisect
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from recommender.domain import Article
from recommender.errors import InvalidRequest, StoreFull

log = logging.getLogger("newsrec.rules")


@dataclass(frozen=True)
class Pin:
    """Place `article_id` at 1-based `position` of one article's Related list (`related_to`)
    or one section's Popular list (`popular_section`, "" = site-wide)."""

    article_id: str
    position: int
    related_to: str | None = None
    popular_section: str | None = None


@dataclass(frozen=True)
class Block:
    """Keep one article (`article_id`), every article with a `tag`, or every article in a
    `section` out of lists: all of them, or only beside one article or one section."""

    article_id: str | None = None
    tag: str | None = None
    section: str | None = None
    beside_article_id: str | None = None
    beside_section: str | None = None

    @property
    def everywhere(self) -> bool:
        return self.beside_article_id is None and self.beside_section is None


@dataclass(frozen=True)
class Rule:
    """A pin or a block, with who made it, when, why, and until when."""

    rule_id: str
    created_at: float
    created_by: str
    pin: Pin | None = None
    block: Block | None = None
    expires_at: float | None = None
    note: str = ""

    def in_force(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> Rule:
        """Inverse of encode; ValueError on a value of any other shape (a hand-edited hash
        must not reach a list)."""
        try:
            fields: dict[str, Any] = json.loads(raw)
            pin, block = fields.pop("pin", None), fields.pop("block", None)
            rule = cls(**fields, pin=None if pin is None else Pin(**pin),
                       block=None if block is None else Block(**block))  # fmt: skip
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a rule: {exc}") from None
        if not rule.well_formed():
            raise ValueError("not a rule: a field of the wrong type, or not one pin or block")
        return rule

    def well_formed(self) -> bool:
        """Exactly one of pin and block, with fields of the types the rules read."""

        def text(*values: object) -> bool:
            return all(v is None or isinstance(v, str) for v in values)

        times = (self.created_at, *([] if self.expires_at is None else [self.expires_at]))
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
            return False
        one = (self.pin is None) != (self.block is None)
        if not (one and text(self.rule_id, self.created_by, self.note)):
            return False
        if self.pin is not None:
            p = self.pin
            return (
                isinstance(p.position, int)
                and not isinstance(p.position, bool)
                and text(p.article_id, p.related_to, p.popular_section)
            )
        b = self.block
        assert b is not None
        return text(b.article_id, b.tag, b.section, b.beside_article_id, b.beside_section)


MAX_RULES = 10_000
"""Rules in force at once: every list request scans them (a newsroom has tens)."""
RULE_ID = re.compile(r"(pin|block)-[0-9a-f]{12}")


def new_rule_id(kind: str) -> str:
    """A rule id no other writer picks: no counter to share across replicas or cluster slots."""
    return f"{kind}-{secrets.token_hex(6)}"


def check_room(rules: RuleSet, now: float) -> None:
    """StoreFull when MAX_RULES rules are in force already."""
    if len(rules.in_force(now)) >= MAX_RULES:
        raise StoreFull(f"{MAX_RULES:,} rules are in force already: remove some (ListRules)")


def check_rule_id(rule_id: str) -> str:
    """A rule id as new_rule_id makes them, or InvalidRequest."""
    if not RULE_ID.fullmatch(rule_id):
        raise InvalidRequest(f"rule_id {rule_id[:40]!r} is malformed: pin-... or block-... "
                             "with 12 hex digits, as ListRules shows them")  # fmt: skip
    return rule_id


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


@dataclass(frozen=True)
class ListRules:
    """The rules that apply to one list: ids, tags and sections kept out (tags and sections
    lowercased: they match regardless of case, as sections do everywhere), and the pins,
    by position."""

    blocked_ids: frozenset[str] = frozenset()
    blocked_tags: frozenset[str] = frozenset()
    blocked_sections: frozenset[str] = frozenset()
    pins: tuple[Rule, ...] = ()

    @property
    def needs_records(self) -> bool:
        """Whether folding them needs the candidates' records (their tags and sections)."""
        return bool(self.blocked_tags or self.blocked_sections or self.pins)

    def blocks(self, article: Article) -> bool:
        """Whether a block keeps this article out."""
        return (
            article.id in self.blocked_ids
            or any(t.lower() in self.blocked_tags for t in article.tags)
            or any(s.lower() in self.blocked_sections for s in article.sections)
        )


@dataclass
class RuleSet:
    """Every stored rule, newest first; which of them apply to a list at a moment."""

    rules: list[Rule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rules.sort(key=lambda r: (-r.created_at, r.rule_id))
        self._expiries = sorted(r.expires_at for r in self.rules if r.expires_at is not None)

    @classmethod
    def decode(cls, stored: Mapping[Any, Any]) -> RuleSet:
        """From the Redis hash (rule id -> JSON); a value that does not parse is logged and
        left out, never the reason a list fails."""
        rules = []
        for rule_id, raw in stored.items():
            try:
                rules.append(Rule.decode(raw))
            except ValueError as exc:
                log.warning("rule %r is malformed and ignored: %s", rule_id, exc)
        return cls(rules)

    def stamp(self, now: float) -> int:
        """How many expiry moments have passed: part of an answer's cache key, so a cached
        answer never outlives a rule it folded in."""
        return bisect.bisect_right(self._expiries, now)

    def in_force(self, now: float) -> list[Rule]:
        return [r for r in self.rules if r.in_force(now)]

    def expired(self, now: float) -> list[str]:
        return [r.rule_id for r in self.rules if not r.in_force(now)]

    def for_related(self, article_id: str, sections: Iterable[str], now: float) -> ListRules:
        """The rules of one article's Related list (`sections`: the article's own)."""
        own = {s.lower() for s in sections}
        return self._for_list(
            now,
            lambda b: b.everywhere or b.beside_article_id == article_id
            or _lower(b.beside_section) in own,
            lambda p: p.related_to == article_id,
        )  # fmt: skip

    def for_popular(self, section: str, now: float) -> ListRules:
        """The rules of one section's Popular list ("" = site-wide)."""
        wanted = section.lower()
        return self._for_list(
            now,
            lambda b: b.everywhere or (bool(wanted) and _lower(b.beside_section) == wanted),
            lambda p: p.popular_section is not None and p.popular_section.lower() == wanted,
        )

    def _for_list(self, now: float, block_applies: Any, pin_applies: Any) -> ListRules:
        rules = self.in_force(now)
        blocks = [r.block for r in rules if r.block and block_applies(r.block)]
        pins = [r for r in rules if r.pin and pin_applies(r.pin)]
        pins.sort(key=lambda r: (r.pin.position if r.pin else 0, r.created_at))
        return ListRules(
            frozenset(b.article_id for b in blocks if b.article_id is not None),
            frozenset(b.tag.lower() for b in blocks if b.tag is not None),
            frozenset(b.section.lower() for b in blocks if b.section is not None),
            tuple(pins),
        )

    @property
    def needs_own_sections(self) -> bool:
        """Whether a Related list's rules depend on its article's sections."""
        return any(r.block is not None and r.block.beside_section is not None for r in self.rules)
