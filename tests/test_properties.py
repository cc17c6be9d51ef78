"""Property-based tests (hypothesis) of every RPC against a real server on a Redis the test owns:
ids with unicode, NUL, newlines, 10 KB and Redis glob and key characters; limits, exclude lists,
sections, timestamps far past and future, unknown enum values, event batches, article payloads.
Every answer is OK or a documented status code whose message names the field (never UNKNOWN or
INTERNAL), no key is created outside the test's namespace, and the server keeps serving."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.config import Settings
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import write_corpus
from tests.helpers import ServerThread
from tests.live_helpers import retrain
from tests.owned_redis import owned_redis

pytestmark = pytest.mark.slow

KNOWN = [
    f"{topic}-{n:02d}" for topic in ("tech", "sport", "politics", "business") for n in range(10)
]
KEEP = "tech-01"
"""Asked for at the end: the DeleteArticle property takes down no tech article, so its list
holds some."""
NOW = int(time.time())
OK, INVALID, NOT_FOUND = (
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
)
TOO_LARGE = "Received message larger than max"
"""How gRPC refuses a message above the server's receive cap, before newsrec sees it: a batch of
1,000 events whose ids and sessions are 10 KB each is about 40 MB (docs/live-updates.md#limits)."""
EXAMPLES: Counter[str] = Counter()
"""Examples run per RPC, printed by the last test."""

FIELDS = {  # RPC -> (the status codes it may answer, what an INVALID_ARGUMENT message starts with)
    "GetRelated": ({OK, INVALID, NOT_FOUND}, ("article_id", "limit", "exclude_ids", "section")),
    "GetPopular": ({OK, INVALID}, ("section", "limit", "exclude_ids")),
    "GetModelInfo": ({OK}, ()),
    "RecordEvents": ({OK, INVALID}, ("events", "batch_id")),
    "StreamEvents": ({OK, INVALID}, ("stream event",)),
    "StreamEventBatches": ({OK, INVALID}, ("stream message",)),
    "UpsertArticles": ({OK, INVALID}, ("articles",)),
    "DeleteArticle": ({OK, INVALID, NOT_FOUND}, ("article_id",)),
}

text = st.text(st.characters(codec="utf-8"), max_size=40)  # protobuf strings are UTF-8
odd = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "a\nb",
        "\r\n",
        " ",
        "*",
        "a?b",
        "[x]",
        "{tag}",
        "a:b",
        "ns:*",
        "x:*:y",
        "é",
        "🙂",
        "x" * 128,
        "x" * 129,
        "%2A",
        "../x",
    ]
)
long = st.builds(lambda c, n: c * n, st.sampled_from("a*:{é\n"), st.integers(9_000, 10_240))
ids = st.one_of(st.sampled_from(KNOWN), odd, text, long)
limits = st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-1, 102))
seconds = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(NOW - 5 * 86_400, NOW + 600),
                    st.sampled_from([-62_135_596_801, -62_135_596_800, 0, 253_402_300_799,
                                     253_402_300_800]))  # fmt: skip
nanos = st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1), st.sampled_from([-1, 10**9]))
enums = st.one_of(st.sampled_from([0, 1, 2]), st.integers(-(2**31), 2**31 - 1))
urls = st.one_of(text, st.sampled_from([
    "", "https://example.org/a", "HTTP://x.y/z?q=1#f", "javascript:alert(1)", "data:text/html,x",
    "/relative", "//host/x", "ftp://x.y", "https://", "http://[::1",
]))  # fmt: skip


def timestamp(message: Any, field: str, parts: tuple[int, int] | None) -> Any:
    if parts is not None:
        getattr(message, field).seconds, getattr(message, field).nanos = parts
    return message


stamps = st.none() | st.tuples(seconds, nanos)
events = st.builds(
    lambda a, kind, session, ts: timestamp(pb.Event(article_id=a, type=kind, session_id=session),
                                           "ts", ts),
    ids, enums, st.one_of(st.just(""), ids), stamps,
)  # fmt: skip
batches = st.one_of(
    st.lists(events, max_size=12),
    st.builds(lambda e, n: [e] * n, events, st.integers(995, 1002)),
)
batch_ids = st.one_of(st.just(""), ids)
labels = st.lists(st.one_of(text, odd), max_size=22)
bodies = st.one_of(text, st.builds(lambda n: "word " * n, st.integers(0, 41_000)))
articles = st.builds(
    lambda a, title, body, sections, tags, url, ts: timestamp(
        pb.ArticleInput(article_id=a, title=title, body=body, sections=sections, tags=tags,
                        url=url), "published_at", ts),
    st.one_of(ids, st.sampled_from([f"new-{n}" for n in range(5)])),
    st.one_of(text, st.just("t" * 1001)), bodies, labels, labels, urls, stamps,
)  # fmt: skip


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerThread, redis.Redis, str]]:
    """A trained model on a Redis of the test's own, and a server on it."""
    folder = tmp_path_factory.mktemp("properties")
    with owned_redis() as url:
        own = replace(Settings(), redis_url=url, namespace="prop", port=0,
                      model_dir=folder / "models", data_dir=folder / "data",
                      pointer_cache_seconds=0.0, live_cache_seconds=0.0)  # fmt: skip
        client = redis.Redis.from_url(url)
        retrain(*write_corpus(Path(folder)), own, client)
        server = ServerThread(own)
        try:
            yield server, client, own.namespace
        finally:
            server.stop()
            client.close()


def answer(rpc: str, call: Callable[[], object]) -> object:
    """Make the call; a failure must be one of the RPC's documented codes, naming the field."""
    EXAMPLES[rpc] += 1
    codes, fields = FIELDS[rpc]
    try:
        return call()
    except grpc.RpcError as error:
        code, details = error.code(), str(error.details())
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and TOO_LARGE in details:
            return None  # gRPC's own receive cap (grpc_max_receive_bytes), documented
        assert code in codes, f"{rpc} answered {code}: {details}"
        if code == INVALID:
            assert details.startswith(fields), f"{rpc}: {details!r} names no field"
        if code == NOT_FOUND:
            assert details.startswith("article_id "), f"{rpc}: {details!r}"
        return None


PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.large_base_example])  # fmt: skip


@PROPERTY
@given(ids, limits, st.lists(ids, max_size=205), st.one_of(text, odd, long))
def test_get_related(
    world: Any, article_id: str, limit: int, exclude: list[str], section: str
) -> None:
    stub = world[0].stub
    request = pb.GetRelatedRequest(article_id=article_id, limit=limit, exclude_ids=exclude,
                                   section=section)  # fmt: skip
    reply = answer("GetRelated", lambda: stub.GetRelated(request, timeout=30))
    if isinstance(reply, pb.GetRelatedResponse):
        assert article_id not in {i.article_id for i in reply.items} | set()
        assert not {i.article_id for i in reply.items} & set(exclude)


@PROPERTY
@given(st.one_of(text, odd, long), limits, st.lists(ids, max_size=205))
def test_get_popular(world: Any, section: str, limit: int, exclude: list[str]) -> None:
    stub = world[0].stub
    request = pb.GetPopularRequest(section=section, limit=limit, exclude_ids=exclude)
    reply = answer("GetPopular", lambda: stub.GetPopular(request, timeout=30))
    if isinstance(reply, pb.GetPopularResponse):
        assert len(reply.items) <= (limit or 10)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


unknown_fields = st.lists(st.tuples(st.integers(1, 2**29 - 1), st.integers(0, 2**64 - 1)),
                          max_size=5)  # fmt: skip


@settings(PROPERTY, max_examples=40)
@given(unknown_fields)
def test_get_model_info(world: Any, fields: list[tuple[int, int]]) -> None:
    """GetModelInfoRequest has no fields; a newer client's fields (unknown here) are ignored."""
    raw = b"".join(varint(number << 3) + varint(value) for number, value in fields)
    method = world[0].channel.unary_unary(
        "/recommender.v1.Recommender/GetModelInfo",
        request_serializer=lambda r: r,
        response_deserializer=pb.GetModelInfoResponse.FromString,
    )
    reply = answer("GetModelInfo", lambda: method(raw, timeout=30))
    assert isinstance(reply, pb.GetModelInfoResponse) and reply.article_count == 40


@PROPERTY
@given(batches, batch_ids)
def test_record_events(world: Any, batch: list[pb.Event], batch_id: str) -> None:
    stub = world[0].stub
    request = pb.RecordEventsRequest(events=batch, batch_id=batch_id)
    reply = answer("RecordEvents", lambda: stub.RecordEvents(request, timeout=30))
    if isinstance(reply, pb.RecordEventsResponse):
        if not reply.replayed_batches:  # else the reply of the batch_id's first batch
            assert reply.accepted + reply.deduplicated + reply.rejected == len(batch)
        assert len(reply.rejected_events) == min(reply.rejected, 100)


@settings(PROPERTY, max_examples=80)
@given(st.lists(events, max_size=30))
def test_stream_events(world: Any, stream: list[pb.Event]) -> None:
    stub = world[0].stub
    reply = answer("StreamEvents", lambda: stub.StreamEvents(iter(stream), timeout=30))
    if isinstance(reply, pb.RecordEventsResponse):
        assert reply.accepted + reply.deduplicated + reply.rejected == len(stream)


@settings(PROPERTY, max_examples=80)
@given(st.lists(st.tuples(batches, batch_ids), max_size=4))
def test_stream_event_batches(world: Any, messages: list[tuple[list[pb.Event], str]]) -> None:
    stub = world[0].stub
    requests = [pb.RecordEventsRequest(events=e, batch_id=b) for e, b in messages]
    answer("StreamEventBatches", lambda: stub.StreamEventBatches(iter(requests), timeout=30))


@settings(PROPERTY, max_examples=60)
@given(st.one_of(st.lists(articles, max_size=3), st.builds(lambda a: [a] * 101, articles)))
def test_upsert_articles(world: Any, items: list[pb.ArticleInput]) -> None:
    stub = world[0].stub
    request = pb.UpsertArticlesRequest(articles=items)
    reply = answer("UpsertArticles", lambda: stub.UpsertArticles(request, timeout=60))
    if isinstance(reply, pb.UpsertArticlesResponse):
        assert [r.article_id for r in reply.results] == [a.article_id for a in items]


@PROPERTY
@given(ids.filter(lambda i: not i.startswith("tech-")))
def test_delete_article(world: Any, article_id: str) -> None:
    stub = world[0].stub
    request = pb.DeleteArticleRequest(article_id=article_id)
    answer("DeleteArticle", lambda: stub.DeleteArticle(request, timeout=30))


def test_keys_stay_in_the_namespace_and_the_server_serves(
    world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """After every property above (pytest runs a module's tests in order)."""
    server, client, namespace = world
    stray = []
    for raw in client.scan_iter(count=1000):
        key = raw.decode("utf-8", errors="replace")
        inside = key.startswith(f"{namespace}:") and key.isascii() and key.isprintable()
        if not inside or " " in key or any(c in key for c in "?[]{}") or "*" in key[:-1]:
            stray.append(key)
    assert not stray, stray[:10]
    deleted = {m.decode() for m in client.smembers(f"{namespace}:rt:deleted")}
    assert deleted <= set(KNOWN) | {f"new-{n}" for n in range(5)}  # only articles that existed
    related = server.stub.GetRelated(pb.GetRelatedRequest(article_id=KEEP), timeout=30).items
    assert related and not {i.article_id for i in related} & deleted
    assert server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30).article_count == 40
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    with capsys.disabled():
        print("\nhypothesis examples per RPC:", dict(sorted(EXAMPLES.items())), flush=True)
    assert set(EXAMPLES) == set(FIELDS), "run the whole module to check every RPC"
