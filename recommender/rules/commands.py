"""`newsrec rules pin|block|list|remove`: the rule RPCs from the command line, straight on
Redis (no server needed), with the same checks and the same stored form."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from recommender.config import add_settings_flags, settings_from_args
from recommender.connect import keys_for, sync_client
from recommender.errors import InvalidRequest, NewsrecError
from recommender.rules import store
from recommender.rules.model import Rule, RuleSet, check_room, check_rule_id
from recommender.rules.requests import block_rule, pin_rule
from recommender.store.codec import text
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.validation import MAX_LIMIT

_SPAN = re.compile(r"\+(\d+(?:\.\d+)?)([mhd])")
_UNIT = {"m": 60, "h": 3600, "d": 86400}


def add_rules(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec rules`."""
    add_settings_flags(parser)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    pin = sub.add_parser("pin", help="place an article at a position of one list")
    pin.add_argument("article_id")
    pin.add_argument("--position", type=int, required=True, help="1-based")
    where = pin.add_mutually_exclusive_group(required=True)
    where.add_argument("--related-to", help="in this article's Related list")
    where.add_argument("--popular-section", help="in this section's Popular list")
    where.add_argument("--site-wide", action="store_true", help="in the site-wide Popular list")
    block = sub.add_parser("block", help="keep articles out of lists")
    what = block.add_mutually_exclusive_group(required=True)
    what.add_argument("--article", help="this article")
    what.add_argument("--tag", help="every article with this tag")
    what.add_argument("--section", help="every article in this section")
    beside = block.add_mutually_exclusive_group()
    beside.add_argument("--beside-article", help="only in this article's Related list")
    beside.add_argument("--beside-section", help="only beside this section's articles")
    for command in (pin, block):
        command.add_argument("--expires", help="ISO time (2026-12-24T18:00Z) or +30m, +2h, +7d")
        command.add_argument("--note", default="", help="why (shown by `newsrec rules list`)")
    sub.add_parser("list", help="every rule in force, newest first")
    remove = sub.add_parser("remove", help="delete a rule")
    remove.add_argument("rule_id")


def run_rules(args: argparse.Namespace) -> int:
    """Do the action; a bad argument is one line on stderr and exit 2."""
    settings = settings_from_args(args)
    client, keys = sync_client(settings), keys_for(settings)
    now = time.time()
    try:
        if args.action == "list":
            for rule in _stored(client, keys).in_force(now):
                print(describe(rule))
            return 0
        if args.action == "remove":
            return _remove(client, keys, check_rule_id(args.rule_id))
        if args.action == "pin" and not 1 <= args.position <= MAX_LIMIT:
            raise InvalidRequest(f"--position must be between 1 and {MAX_LIMIT}")
        rule = _rule(args, now)
        stored = _stored(client, keys)
        check_room(stored, now)
        if rule.pin is not None:
            for field, aid in (("article_id", rule.pin.article_id),
                               ("related_to", rule.pin.related_to)):  # fmt: skip
                if aid is not None:
                    _check_known(client, keys, aid, field)
    except NewsrecError as exc:
        print(f"newsrec rules {args.action}: {exc}", file=sys.stderr)
        return 2
    pipe = client.pipeline(transaction=False)
    store.queue_add(pipe, keys, rule, stored.expired(now))
    pipe.execute()
    print(f"added {describe(rule)}")
    return 0


def _rule(args: argparse.Namespace, now: float) -> Rule:
    who = f"cli:{getpass.getuser()}"
    common: dict[str, Any] = {"note": args.note}
    if args.expires:
        common["expires_at"] = datetime.fromtimestamp(_when(args.expires, now), UTC)
    if args.action == "pin":
        where = ({"related_to": args.related_to} if args.related_to is not None else
                 {"popular_section": "" if args.site_wide else args.popular_section})  # fmt: skip
        request = pb.PinArticleRequest(article_id=args.article_id, position=args.position,
                                       **where, **common)  # fmt: skip
        return pin_rule(request, who, now)
    target = {"article_id": args.article, "tag": args.tag, "section": args.section}
    beside = {"beside_article_id": args.beside_article, "beside_section": args.beside_section}
    fields = {k: v for k, v in {**target, **beside}.items() if v is not None}
    return block_rule(pb.BlockArticleRequest(**fields, **common), who, now)


def _when(value: str, now: float) -> float:
    """Epoch seconds of an ISO time (UTC unless it says) or of now + a span."""
    span = _SPAN.fullmatch(value.strip())
    if span:
        return now + float(span.group(1)) * _UNIT[span.group(2)]
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise NewsrecError(f"--expires {value!r} is neither an ISO time nor +N(m|h|d)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _stored(client: Any, keys: Keys) -> RuleSet:
    pipe = client.pipeline(transaction=False)
    store.queue_read(pipe, keys)
    return RuleSet.decode(pipe.execute()[0])


def _remove(client: Any, keys: Keys, rule_id: str) -> int:
    pipe = client.pipeline(transaction=False)
    store.queue_remove(pipe, keys, [rule_id])
    removed, _ = pipe.execute()
    if not removed:
        print(f"newsrec rules remove: no rule {rule_id!r} (see `newsrec rules list`)",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"removed {rule_id}")
    return 0


def _check_known(client: Any, keys: Keys, article_id: str, field: str) -> None:
    """As PinArticle: the article is in the live version or upserted, and not taken down."""
    pointer = client.get(keys.pointer)
    version = text(pointer) if pointer is not None else ""
    known = client.exists(keys.live_doc(article_id)) or (
        version and client.exists(keys.article(version, article_id))
    )
    if not known or client.sismember(keys.deleted, article_id):
        raise NewsrecError(f"{field} {article_id!r} is not served (unknown or taken down)")


def describe(rule: Rule) -> str:
    """One line for people: id, what, where, until when, who, why."""
    if rule.pin is not None:
        pin = rule.pin
        where = (f"Related of {pin.related_to}" if pin.related_to is not None else
                 f"Popular {pin.popular_section or '(site-wide)'}")  # fmt: skip
        what = f"pin {pin.article_id} at {pin.position} in {where}"
    else:
        block = rule.block
        assert block is not None
        targets = (("article", block.article_id), ("tag", block.tag), ("section", block.section))
        target = next(f"{kind} {value}" for kind, value in targets if value is not None)
        beside = (f" beside article {block.beside_article_id}" if block.beside_article_id else
                  f" beside section {block.beside_section}" if block.beside_section else
                  " everywhere")  # fmt: skip
        what = f"block {target}{beside}"
    until = "" if rule.expires_at is None else f" until {_iso(rule.expires_at)}"
    note = f" ({rule.note})" if rule.note else ""
    made = f"by {rule.created_by or '-'} at {_iso(rule.created_at)}"
    return f"{rule.rule_id}  {what}{until}  {made}{note}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%MZ")
