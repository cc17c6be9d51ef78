"""Bad UpsertArticles input over a real server: INVALID_ARGUMENT naming the field (and its size),
never INTERNAL or gRPC's own RESOURCE_EXHAUSTED for a request newsrec can read; nothing is
written. The size limits agree with each other."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
import redis

from recommender.config import Settings
from recommender.errors import InvalidRequest
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.validation import Limits, check_upsert
from tests.helpers import ServerThread
from tests.live_helpers import snapshot
from training.pipeline import TrainResult

pytest_plugins = ["tests.live_fixtures"]  # live, live_settings, trained


def article(n: int = 0, **fields: object) -> pb.ArticleInput:
    values: dict[str, object] = {"article_id": f"new-{n}", "title": "A title",
                                 "url": f"https://example.org/{n}", **fields}  # fmt: skip
    return pb.ArticleInput(**values)  # type: ignore[arg-type]


def published(seconds: int, nanos: int, n: int = 1) -> pb.ArticleInput:
    item = article(n)
    item.published_at.seconds, item.published_at.nanos = seconds, nanos
    return item


CASES = [
    (published(1_700_000_000, -3332), "articles[0].published_at is not a valid Timestamp"),
    (published(1_700_000_000, 10**9), "articles[0].published_at is not a valid Timestamp"),
    (published(-62_135_596_801, 0), "articles[0].published_at is not a valid Timestamp"),
    (published(253_402_300_800, 0), "articles[0].published_at is not a valid Timestamp"),
    (article(url="javascript:alert(1)"), "articles[0].url must be an absolute http"),
    (article(url="data:text/html,<b>x</b>"), "articles[0].url must be an absolute http"),
    (article(url="/relative/path"), "articles[0].url must be an absolute http"),
    (article(url="//example.org/x"), "articles[0].url must be an absolute http"),
    (article(url="https://"), "articles[0].url must be an absolute http"),
    (article(url="https://exa mple.org/"), "articles[0].url must be an absolute http"),
    (article(url="http://[::1"), "articles[0].url must be an absolute http"),
    (article(url="https://e.org/" + "a" * 2040),
     "articles[0].url has 2,054 characters; at most 2,048"),
    (article(title="t" * 1001), "articles[0].title has 1,001 characters; at most 1,000"),
    (article(body="b" * 250_000), "articles[0].body has 250,000 characters; at most 200,000"),
    (article(sections=["s" * 65]), "articles[0].sections[0] has 65 characters; at most 64"),
    (article(tags=["ok", "t" * 70]), "articles[0].tags[1] has 70 characters; at most 64"),
    (article(sections=[f"s{i}" for i in range(21)]),
     "articles[0].sections has 21 entries; at most 20"),
    (article(tags=["bad\ntag"]), "articles[0].tags[0] must be printable"),
]  # fmt: skip


def test_bad_articles_name_the_field(live: ServerThread, client: redis.Redis, keys: Keys) -> None:
    state = snapshot(client, keys.namespace)
    for bad, message in CASES:
        request = pb.UpsertArticlesRequest(articles=[article(0), bad])
        with pytest.raises(grpc.RpcError) as info:
            live.stub.UpsertArticles(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
        expected = message.replace("articles[0]", "articles[1]")
        assert str(info.value.details()).startswith(expected), info.value.details()
    assert snapshot(client, keys.namespace) == state  # the good article of each call waited too
    fine = [
        article(2, url="HTTPS://Example.org/a?b=c#d"),
        published(253_402_300_799, 999_999_999, 4),
        published(-62_135_596_800, 0, 5),
        article(3, url=""),
    ]
    reply = live.stub.UpsertArticles(pb.UpsertArticlesRequest(articles=fine))
    assert [r.article_id for r in reply.results] == ["new-2", "new-4", "new-5", "new-3"]
    # The extreme dates are served back within the Timestamp range (Popular lists them now).
    events = [pb.Event(article_id=f"new-{n}", session_id=f"r{i}") for n in (4, 5) for i in range(9)]
    live.stub.RecordEvents(pb.RecordEventsRequest(events=events))
    items = {i.article_id: i for i in live.stub.GetPopular(pb.GetPopularRequest(limit=100)).items}
    assert items["new-4"].published_at.ToJsonString() == "9999-12-31T23:59:59.999999999Z"
    assert items["new-5"].published_at.ToJsonString() == "0001-01-01T00:00:00Z"


def test_requests_too_large_are_invalid_argument_not_resource_exhausted(
    live: ServerThread, live_settings: Settings
) -> None:
    """100 articles of 200,000 characters are each valid but 20 MB together: newsrec reads the
    request (the receive limit covers it) and names the limit."""
    body = "word " * 40_000
    many = [article(n, body=body) for n in range(100)]
    with pytest.raises(grpc.RpcError) as info:
        live.stub.UpsertArticles(pb.UpsertArticlesRequest(articles=many))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = str(info.value.details())
    assert details.startswith("articles: the request has 20,00") and "at most 16,777,216" in details
    assert live_settings.grpc_max_receive_bytes >= live_settings.upsert_max_bytes
    with pytest.raises(grpc.RpcError) as count:
        live.stub.UpsertArticles(
            pb.UpsertArticlesRequest(articles=[article(n) for n in range(101)])
        )
    assert count.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "articles must hold 1 to 100 entries, got 101" in str(count.value.details())


@pytest.mark.slow
def test_the_largest_valid_upsert_is_received(live: ServerThread) -> None:
    """Just under the byte limit (16 MB of 4-byte characters, far over gRPC's default 4 MB):
    answered, not RESOURCE_EXHAUSTED."""
    body = "\U0001f600" * 200_000  # 800,000 bytes
    many = [article(n, body=body) for n in range(20)]
    assert pb.UpsertArticlesRequest(articles=many).ByteSize() > 15_000_000
    reply = live.stub.UpsertArticles(pb.UpsertArticlesRequest(articles=many), timeout=120)
    assert len(reply.results) == 20


def test_limits_come_from_settings() -> None:
    limits = Limits.from_settings(replace(Settings(), max_title_chars=10, upsert_max_articles=2))
    request = pb.UpsertArticlesRequest(articles=[article(0, title="t" * 11)])
    with pytest.raises(InvalidRequest, match=r"articles\[0\].title has 11 characters; at most 10"):
        check_upsert(request, limits)
    with pytest.raises(InvalidRequest, match="articles must hold 1 to 2 entries, got 3"):
        check_upsert(pb.UpsertArticlesRequest(articles=[article(n) for n in range(3)]), limits)
    assert check_upsert(pb.UpsertArticlesRequest(articles=[article(0)]), limits)[0].id == "new-0"


def test_limit_settings_reach_a_running_server(
    live_settings: Settings, trained: TrainResult, client: redis.Redis, keys: Keys
) -> None:
    server = ServerThread(replace(live_settings, max_title_chars=10, batch_id_ttl_seconds=60))
    try:
        events = pb.RecordEventsRequest(events=[pb.Event(article_id="tech-01")], batch_id="b-1")
        server.stub.RecordEvents(events)
        assert 0 < client.ttl(keys.batch("b-1")) <= 60
        with pytest.raises(grpc.RpcError) as info:
            server.stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article(title="t" * 11)]))
        assert "title has 11 characters; at most 10" in str(info.value.details())
    finally:
        server.stop()
