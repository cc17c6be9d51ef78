"""Editorial rules end to end through gRPC: pins and blocks made through one replica show on
another within the live-state interval, survive retraining and rollback, expire on time, and
are refused with a clear message when malformed; `newsrec rules` does the same from a shell."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from recommender.config import Settings
from recommender.domain import Article
from recommender.rules.fold import fold
from recommender.rules.model import ListRules, Pin, Rule
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from tests.helpers import ServerThread, eventually, newsrec
from tests.test_roles import replica
from tests.test_security import bearer, code_of, train_into

Stub = pb_grpc.RecommenderStub


def related(stub: Stub, article_id: str = "tech-01", **options: object) -> list[str]:
    request = pb.GetRelatedRequest(article_id=article_id, **options)  # type: ignore[arg-type]
    return [i.article_id for i in stub.GetRelated(request).items]


def popular(stub: Stub, section: str = "", limit: int = 10) -> list[str]:
    request = pb.GetPopularRequest(section=section, limit=limit)
    return [i.article_id for i in stub.GetPopular(request).items]


def after(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int((time.time() + seconds) * 1e9))
    return ts


def seen(check: object) -> bool:
    """The other replica shows it within a second (its sync interval is 100 ms)."""
    return eventually(check, 1.0)  # type: ignore[arg-type]


@pytest.mark.slow
def test_pins_and_blocks_reach_another_replica_and_outlive_retraining(
    tmp_path: Path, settings: Settings, client: redis.Redis
) -> None:
    train_into(client, settings, tmp_path)
    with (
        replica(settings, "all", tmp_path / "a.err") as (a, _),
        replica(settings, "all", tmp_path / "b.err") as (b, _),
    ):
        before = related(b)
        assert "sport-04" not in before and len(before) == 10
        # A pin: shown at its position though the model never lists it; the rest move down.
        a.PinArticle(pb.PinArticleRequest(article_id="sport-04", position=2,
                                          related_to="tech-01", note="editor's pick"))  # fmt: skip
        assert seen(lambda: related(b) == [before[0], "sport-04", *before[1:9]])
        assert "sport-04" not in related(b, exclude_ids=["sport-04"])  # the caller's excludes
        assert "sport-04" not in related(b, section="tech")  # outside the section asked for
        a.PinArticle(pb.PinArticleRequest(article_id="business-07", position=1, popular_section=""))
        a.PinArticle(pb.PinArticleRequest(article_id="sport-08", position=1,
                                          popular_section="Sport"))  # fmt: skip
        assert seen(lambda: popular(b)[0] == "business-07" and popular(b, "sport")[0] == "sport-08")
        assert popular(b, "tech")[0] != "business-07"  # a site-wide pin stays site-wide

        # Blocks: one article everywhere; one beside one article only.
        gone = before[0]
        a.BlockArticle(pb.BlockArticleRequest(article_id=gone))
        assert seen(lambda: gone not in related(b) and gone not in popular(b, limit=100))
        beside = before[1]
        hosts = [f"tech-{n:02d}" for n in range(2, 10)]
        host = next(h for h in hosts if h != beside and beside in related(b, h))
        a.BlockArticle(pb.BlockArticleRequest(article_id=beside, beside_article_id="tech-01"))
        assert seen(lambda: beside not in related(b))
        assert beside in related(b, host)
        # A tag beside a section: no "football" story beside tech ones, the pin included (a
        # block wins); the sport Popular list keeps its pin.
        tag_rule = a.BlockArticle(pb.BlockArticleRequest(tag="FOOTBALL", beside_section="tech"))
        assert seen(lambda: "sport-04" not in related(b))
        assert popular(b, "sport")[0] == "sport-08"
        a.BlockArticle(pb.BlockArticleRequest(section="news"))
        topics = ("sport", "tech", "politics", "business")
        news = {f"{t}-{n:02d}" for t in topics for n in (0, 3, 6, 9)}  # tests/corpus.py
        assert seen(lambda: not news & {*popular(b, limit=100), *related(b, "politics-01")})

        listed = b.ListRules(pb.ListRulesRequest()).rules
        assert len(listed) == 7 and all(r.created_by.startswith("peer:") for r in listed)
        assert listed[0].block.section == "news"  # newest first
        pinned = [r.pin for r in listed if r.WhichOneof("rule") == "pin"]
        assert {(p.article_id, p.position, p.WhichOneof("list")) for p in pinned} == {
            ("sport-04", 2, "related_to"), ("business-07", 1, "popular_section"),
            ("sport-08", 1, "popular_section")}  # fmt: skip
        b.RemoveRule(pb.RemoveRuleRequest(rule_id=tag_rule.rule_id))
        assert seen(lambda: related(b)[1] == "sport-04")

        # Retraining and rolling back keep every rule.
        train_into(client, settings, tmp_path)
        assert seen(lambda: related(b)[1] == "sport-04" and popular(b)[0] == "business-07")
        assert newsrec(settings, "rollback").returncode == 0
        assert seen(lambda: related(b)[1] == "sport-04" and gone not in related(b))


def test_pins_stack_by_position_and_expire_on_time(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    train_into(client, settings, tmp_path)
    stub = server.stub
    before = related(stub, limit=5)
    for article, position in (("sport-04", 3), ("sport-05", 1), ("sport-06", 50)):
        pin = pb.PinArticleRequest(article_id=article, position=position, related_to="tech-01")
        pin.expires_at.CopyFrom(after(1.5))
        stub.PinArticle(pin)
    assert related(stub, limit=5) == ["sport-05", before[0], "sport-04", *before[1:3]]
    assert related(stub, limit=100)[-1] == "sport-06"  # past the end: last
    # The answer cache must not outlive the rules it folded in.
    assert eventually(lambda: related(stub, limit=5) == before, 5)
    assert not stub.ListRules(pb.ListRulesRequest()).rules


def test_malformed_rules_are_refused_naming_the_field(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    train_into(client, settings, tmp_path)
    stub = server.stub
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    cases = [
        (pb.PinArticleRequest(article_id="sport-03", position=0, related_to="tech-01"),
         invalid, "position must be between 1 and 100"),
        (pb.PinArticleRequest(article_id="sport-03", position=1), invalid, "set related_to"),
        (pb.PinArticleRequest(article_id="sport-03", position=1, related_to="sport-03"),
         invalid, "its own list"),
        (pb.PinArticleRequest(article_id="no-such", position=1, related_to="tech-01"),
         grpc.StatusCode.NOT_FOUND, "article_id 'no-such' is neither in model"),
        (pb.PinArticleRequest(article_id="sport-03", position=1, related_to="bad id!"),
         invalid, "related_to 'bad id!' is malformed"),
        (pb.PinArticleRequest(article_id="sport-03", position=1, popular_section="",
                              expires_at=after(-60)), invalid, "expires_at"),
        (pb.BlockArticleRequest(), invalid, "set what to block"),
        (pb.BlockArticleRequest(tag="x" * 65), invalid, "tag has 65 characters"),
        (pb.BlockArticleRequest(tag="x", beside_section=" "), invalid, "beside_section is empty"),
        (pb.BlockArticleRequest(tag="x", note="n" * 501), invalid, "note has 501 characters"),
    ]  # fmt: skip
    for request, code, message in cases:
        call = stub.PinArticle if isinstance(request, pb.PinArticleRequest) else stub.BlockArticle
        got, details = code_of(lambda: call(request))  # noqa: B023
        assert (got, message in details) == (code, True), details
    stub.DeleteArticle(pb.DeleteArticleRequest(article_id="sport-03"))
    got, details = code_of(lambda: stub.PinArticle(
        pb.PinArticleRequest(article_id="sport-03", position=1, related_to="tech-01")))  # fmt: skip
    assert got == grpc.StatusCode.NOT_FOUND and "taken down" in details
    got, details = code_of(lambda: stub.RemoveRule(pb.RemoveRuleRequest(rule_id="pin-nope")))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "rule_id 'pin-nope' is malformed" in details
    unknown = pb.RemoveRuleRequest(rule_id="pin-00000000abcd")
    got, details = code_of(lambda: stub.RemoveRule(unknown))
    assert got == grpc.StatusCode.NOT_FOUND and "pin-00000000abcd" in details
    assert not stub.ListRules(pb.ListRulesRequest()).rules


def test_rule_calls_need_a_write_token_and_record_its_name(
    tmp_path: Path, settings: Settings, client: redis.Redis
) -> None:
    train_into(client, settings, tmp_path)
    server = ServerThread(replace(settings, write_token="editors=s3cret"))
    try:
        pin = pb.PinArticleRequest(article_id="sport-03", position=1, related_to="tech-01")
        code, message = code_of(lambda: server.stub.PinArticle(pin))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "write token" in message
        code, _ = code_of(lambda: server.stub.ListRules(pb.ListRulesRequest()))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        server.stub.PinArticle(pin, metadata=bearer("s3cret"))
        (rule,) = server.stub.ListRules(pb.ListRulesRequest(), metadata=bearer("s3cret")).rules
        assert rule.created_by == "token:editors" and rule.pin.related_to == "tech-01"
        assert related(server.stub)[0] == "sport-03"  # reads stay open
    finally:
        server.stop()


def test_the_rules_command_pins_lists_and_removes(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    train_into(client, settings, tmp_path)
    done = newsrec(settings, "rules", "pin", "sport-03", "--position", "1", "--related-to",
                   "tech-01", "--expires", "+2h", "--note", "launch day")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rule_id = done.stdout.split()[1]
    assert eventually(lambda: related(server.stub)[0] == "sport-03", 2)
    listed = newsrec(settings, "rules", "list").stdout
    assert "pin sport-03 at 1 in Related of tech-01 until" in listed and "(launch day)" in listed
    assert f"{rule_id}  " in listed and "by cli:" in listed
    blocked = newsrec(settings, "rules", "block", "--tag", "smartphone", "--beside-section", "tech")
    assert blocked.returncode == 0, blocked.stderr
    no_tech = lambda: not any(x.startswith("tech-") for x in related(server.stub))  # noqa: E731
    assert eventually(lambda: no_tech() and related(server.stub)[0] == "sport-03", 2)
    bad = newsrec(settings, "rules", "pin", "sport-03", "--position", "1", "--site-wide",
                  "--expires", "tomorrow")  # fmt: skip
    assert bad.returncode == 2 and "--expires 'tomorrow' is neither an ISO time" in bad.stderr
    unknown = newsrec(settings, "rules", "pin", "gone-1", "--position", "1", "--site-wide")
    assert unknown.returncode == 2 and "article_id 'gone-1' is not served" in unknown.stderr
    assert newsrec(settings, "rules", "remove", rule_id).returncode == 0
    assert eventually(lambda: no_tech() and "sport-03" not in related(server.stub), 2)
    missing = newsrec(settings, "rules", "remove", rule_id)
    assert missing.returncode == 1 and "no rule" in missing.stderr


def test_a_pin_past_the_limit_leaves_the_article_where_the_model_ranks_it() -> None:
    ranked = [(f"a{n}", 1.0 - n / 10) for n in range(10)]
    records = {aid: Article(aid, aid) for aid, _ in ranked}

    async def fetch(ids: list[str]) -> list[Article | None]:
        return [records.get(i) for i in ids]

    pin = Rule("pin-000000000001", 0.0, "", pin=Pin("a1", 8, related_to="q"))
    rules = ListRules(pins=(pin,))
    short = asyncio.run(fold(ranked, set(), 5, rules, fetch))
    assert [p.article.id for p in short] == ["a0", "a1", "a2", "a3", "a4"]
    long = asyncio.run(fold(ranked, set(), 10, rules, fetch))
    assert [p.article.id for p in long][7] == "a1" and long[7].pin == pin
    blocked = ListRules(blocked_ids=frozenset({"a1"}), pins=(pin,))
    assert "a1" not in [p.article.id for p in asyncio.run(fold(ranked, set(), 10, blocked, fetch))]


def test_malformed_stored_rules_are_ignored_not_fatal(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    train_into(client, settings, tmp_path)
    before = related(server.stub)
    server.stub.PinArticle(pb.PinArticleRequest(article_id="sport-04", position=1,
                                                related_to="tech-01"))  # fmt: skip
    keys = Keys(settings.namespace)
    stored: Any = client.hgetall(keys.rules)
    good: bytes = next(iter(stored.values()))
    neither = b'{"rule_id":"x","created_at":1,"created_by":"","pin":null,"block":null}'
    broken = {
        "null": b"null", "number": b"7", "text": b'"pin"', "json": b"{not json",
        "position": good.replace(b'"position":1', b'"position":"x"'), "neither": neither,
    }  # fmt: skip
    for name, value in broken.items():
        client.hset(keys.rules, name, value)
    client.incr(keys.epoch)
    assert eventually(lambda: related(server.stub)[0] == "sport-04", 2)
    assert related(server.stub)[1:] == before[:9]
    assert len(server.stub.ListRules(pb.ListRulesRequest()).rules) == 1


def test_an_unknown_section_answers_empty_and_is_counted_and_logged_once(
    tmp_path: Path,
    settings: Settings,
    client: redis.Redis,
    server: ServerThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from recommender.metrics import REGISTRY

    train_into(client, settings, tmp_path)
    counted = REGISTRY.get_sample_value("newsrec_unknown_sections_total") or 0.0
    caplog.set_level(logging.INFO, logger="newsrec.server")
    for _ in range(2):
        assert popular(server.stub, "spotr") == []
        assert related(server.stub, section="Spotr") == []
    assert popular(server.stub, "Sport")  # a known one, in another case, is not counted
    assert REGISTRY.get_sample_value("newsrec_unknown_sections_total") == counted + 4
    lines = [r.getMessage() for r in caplog.records if "is not in model" in r.getMessage()]
    assert len(lines) == 1 and "section 'spotr'" in lines[0]
