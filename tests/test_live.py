"""Live freshness over a real server and Redis: events, upserts, takedowns, replicas, restarts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import pytest
import redis

from recommender.config import Settings
from recommender.connect import async_client
from recommender.reader import Reader
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.helpers import ServerThread, eventually
from tests.live_helpers import TECH_TEXT, clicks, popular_ids, retrain, upsert
from training.export import export_events

pytest_plugins = ["tests.live_fixtures"]  # the fixtures live, live_settings, trained


def test_burst_climbs_popular_within_seconds(live: ServerThread) -> None:
    assert "sport-07" not in popular_ids(live)
    reply = live.stub.RecordEvents(pb.RecordEventsRequest(events=clicks("sport-07", 20)))
    assert (reply.accepted, reply.deduplicated, reply.rejected) == (20, 0, 0)
    assert eventually(lambda: popular_ids(live)[0] == "sport-07")
    assert popular_ids(live, section="sport")[0] == "sport-07"
    assert "sport-07" not in popular_ids(live, section="tech", limit=100)


def test_one_session_counts_once(live: ServerThread) -> None:
    same = [pb.Event(article_id="business-07", session_id="reader-1") for _ in range(5)]
    reply = live.stub.RecordEvents(pb.RecordEventsRequest(events=same))
    assert (reply.accepted, reply.deduplicated) == (1, 4)
    again = live.stub.RecordEvents(pb.RecordEventsRequest(events=same[:1]))
    assert (again.accepted, again.deduplicated) == (0, 1)  # the 30-minute period holds
    top = live.stub.GetPopular(pb.GetPopularRequest(section="business", limit=1)).items[0]
    assert top.article_id == "business-07" and top.score == pytest.approx(1.0, abs=0.01)
    views = live.stub.RecordEvents(
        pb.RecordEventsRequest(
            events=[
                pb.Event(
                    article_id="business-07", session_id="reader-1", type=pb.EVENT_TYPE_IMPRESSION
                )
            ]
            * 3
        )
    )
    assert views.accepted == 3  # impressions are not deduplicated


def test_bad_events_are_rejected_and_counted(
    live: ServerThread, client: redis.Redis, keys: Keys
) -> None:
    old = pb.Event(article_id="tech-01")
    old.ts.FromSeconds(int(time.time()) - 10 * 24 * 3600)
    future = pb.Event(article_id="tech-01")
    future.ts.FromSeconds(int(time.time()) + 3600)
    events = [
        pb.Event(article_id="bad id"),
        pb.Event(article_id="nope-1"),
        old,
        future,
        pb.Event(article_id="tech-01", session_id="bad session"),
        pb.Event(article_id="tech-01", type=7),  # type: ignore[arg-type]
        pb.Event(article_id="tech-01"),
    ]
    before = set(client.scan_iter(match=f"{keys.namespace}:*", count=1000))
    reply = live.stub.RecordEvents(pb.RecordEventsRequest(events=events))
    assert reply.accepted == 1 and reply.rejected == 6
    assert dict(reply.rejected_reasons) == {
        "malformed_id": 1,
        "unknown_article": 1,
        "too_old": 1,
        "in_future": 1,
        "bad_session_id": 1,
        "bad_type": 1,
    }
    created = {k.decode() for k in set(client.scan_iter(match=f"{keys.namespace}:*")) - before}
    assert not any("nope-1" in k or "bad id" in k for k in created)  # garbage makes no keys
    with pytest.raises(grpc.RpcError) as info:
        live.stub.RecordEvents(pb.RecordEventsRequest(events=[pb.Event(article_id="a")] * 1001))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stream_events_and_export_for_training(
    live: ServerThread, client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    events = [pb.Event(article_id=f"politics-0{i % 5}", session_id=f"r{i}") for i in range(2500)]
    events += [pb.Event(article_id="nope")]
    reply = live.stub.StreamEvents(iter(events))
    assert (reply.accepted, reply.rejected) == (2500, 1)
    assert eventually(lambda: popular_ids(live, "politics")[0].startswith("politics-0"))
    out = tmp_path / "exported.jsonl"
    assert export_events(client, keys, out) == 2500
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["type"] for r in rows} == {"click"} and rows[0]["session_id"].startswith("r")
    assert rows == sorted(rows, key=lambda r: r["ts"])


def batches(events: list[pb.Event], size: int) -> list[pb.RecordEventsRequest]:
    return [
        pb.RecordEventsRequest(events=events[i : i + size]) for i in range(0, len(events), size)
    ]


def mixed_events(session: str) -> list[pb.Event]:
    """Every outcome: counted clicks and impressions, repeats of a session, and each reason."""
    old = pb.Event(article_id="tech-01")
    old.ts.FromSeconds(int(time.time()) - 10 * 24 * 3600)
    future = pb.Event(article_id="tech-01")
    future.ts.FromSeconds(int(time.time()) + 3600)
    recent = pb.Event(article_id="tech-02", session_id=f"{session}-t")
    recent.ts.FromSeconds(int(time.time()) - 120)
    events = [*clicks("sport-05", 12, session), recent, old, future]
    events += [pb.Event(article_id="sport-06", session_id=f"{session}-same")] * 4
    events += [pb.Event(article_id="sport-06", type=pb.EVENT_TYPE_IMPRESSION)] * 3
    events += [
        pb.Event(article_id="bad id"),
        pb.Event(article_id=""),
        pb.Event(article_id="x" * 129),
        pb.Event(article_id="nope-1", session_id=f"{session}-n"),
        pb.Event(article_id="tech-01", session_id="bad session"),
        pb.Event(article_id="tech-01", session_id="séance"),
        pb.Event(article_id="tech-01", type=7),  # type: ignore[arg-type]
        pb.Event(article_id="tech-01", type=-1),  # type: ignore[arg-type]
    ]
    return events


def outcome(reply: pb.RecordEventsResponse) -> tuple[int, int, int, dict[str, int]]:
    return reply.accepted, reply.deduplicated, reply.rejected, dict(reply.rejected_reasons)


def test_stream_event_batches_count_like_record_events(
    live: ServerThread, client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    expected = (17, 3, 10, {"malformed_id": 3, "unknown_article": 1, "too_old": 1,
                            "in_future": 1, "bad_session_id": 2, "bad_type": 2})  # fmt: skip
    unary = live.stub.RecordEvents(pb.RecordEventsRequest(events=mixed_events("u")))
    assert outcome(unary) == expected
    before = set(client.scan_iter(match=f"{keys.namespace}:*", count=1000))
    for size in (1, 7, 1000):  # a session's repeats fall in one message or across several
        streamed = live.stub.StreamEventBatches(iter(batches(mixed_events(f"b{size}"), size)))
        assert outcome(streamed) == expected
    created = {k.decode() for k in set(client.scan_iter(match=f"{keys.namespace}:*")) - before}
    assert not any("nope-1" in k or "bad id" in k or "xxxx" in k for k in created)
    assert export_events(client, keys, tmp_path / "out.jsonl") == 4 * 17
    assert eventually(lambda: popular_ids(live)[0] == "sport-05")
    assert popular_ids(live, section="sport")[0] == "sport-05"
    assert "sport-05" not in popular_ids(live, section="tech", limit=100)


def test_stream_event_batches_dedup_across_messages_in_flight(live: ServerThread) -> None:
    same = pb.Event(article_id="business-03", session_id="reader-9")
    requests = [
        pb.RecordEventsRequest(events=[same, *clicks("business-04", 50, f"m{n}-")])
        for n in range(12)
    ]
    reply = live.stub.StreamEventBatches(iter(requests))
    assert (reply.accepted, reply.deduplicated, reply.rejected) == (1 + 12 * 50, 11, 0)
    again = live.stub.StreamEventBatches(iter([*requests[:2], pb.RecordEventsRequest()]))
    assert (again.accepted, again.deduplicated) == (0, 102)  # the 30-minute period holds
    top = live.stub.GetPopular(pb.GetPopularRequest(section="business", limit=2)).items
    assert [i.article_id for i in top] == ["business-04", "business-03"]
    assert top[1].score == pytest.approx(1.0, abs=0.01)


def test_oversized_batch_message_is_invalid_argument(
    live: ServerThread, client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    requests = [
        pb.RecordEventsRequest(events=clicks("culture-x", 1) + clicks("tech-03", 5)),
        pb.RecordEventsRequest(events=clicks("tech-04", 1001)),
        pb.RecordEventsRequest(events=clicks("tech-05", 5)),
    ]
    with pytest.raises(grpc.RpcError) as info:
        live.stub.StreamEventBatches(iter(requests))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = str(info.value.details())
    assert "events has 1001 entries; at most 1000" in details and "stream message 1" in details
    assert export_events(client, keys, tmp_path / "out.jsonl") == 5  # the first message counted
    assert live.stub.StreamEventBatches(iter(requests[:1])).deduplicated == 5  # still serving
    with pytest.raises(grpc.RpcError) as unary:
        live.stub.RecordEvents(requests[1])
    assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events has 1001 entries" in str(unary.value.details())


def test_upsert_is_served_at_once_and_enters_old_lists(live: ServerThread) -> None:
    result = upsert(live, "tech-new", TECH_TEXT, ["tech"])
    assert result.created and result.related_count > 0 and result.inserted_into > 0
    own = live.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-new", limit=5))
    assert [i.article_id[:5] for i in own.items] == ["tech-"] * 5
    hosts = [f"tech-{n:02d}" for n in range(10)]
    lists = [live.stub.GetRelated(pb.GetRelatedRequest(article_id=h, limit=10)) for h in hosts]
    assert sum("tech-new" in [i.article_id for i in r.items] for r in lists) >= 1
    item = next(i for r in lists for i in r.items if i.article_id == "tech-new")
    assert item.url == "https://example.org/tech-new" and list(item.sections) == ["tech"]
    edit = upsert(live, "tech-new", TECH_TEXT + " edited", ["tech", "news"])
    assert not edit.created


def test_bad_upserts_are_invalid_argument(live: ServerThread) -> None:
    for articles, field in [
        ([], "articles"),
        ([pb.ArticleInput(article_id="bad id", title="t")], "articles[0].article_id"),
        ([pb.ArticleInput(article_id="ok")], "articles[0] needs a title or a body"),
        ([pb.ArticleInput(article_id="a", title="t")] * 2, "repeats"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            live.stub.UpsertArticles(pb.UpsertArticlesRequest(articles=articles))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in str(info.value.details())


def test_two_replicas_share_upserts(live: ServerThread, live_settings: Settings) -> None:
    other = ServerThread(live_settings)
    try:
        upsert(live, "tech-a", "smartphone chip software battery " * 6, ["tech"])
        seen = other.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-a", limit=3))
        assert len(seen.items) == 3
        upsert(other, "tech-b", "smartphone chip software laptop " * 6, ["tech"])
        mine = other.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-b", limit=3))
        assert mine.items[0].article_id == "tech-a"  # the other replica's upsert is a candidate
        back = live.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-a", limit=5))
        assert "tech-b" in [i.article_id for i in back.items]  # and it entered tech-a's list
        # A writer applies its own upserts to its live sets without reloading them; another
        # replica's upsert in between still reaches it.
        upsert(live, "tech-c", "laptop keyboard tablet screen laptop " * 6, ["tech"])
        third = live.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-c", limit=3))
        assert third.items[0].article_id == "tech-b"
    finally:
        other.stop()


def test_takedown_disappears_everywhere_and_lists_refill(
    live: ServerThread, client: redis.Redis, keys: Keys
) -> None:
    assert popular_ids(live)[0] == "tech-01"
    before = live.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-02", limit=10))
    assert "tech-01" in [i.article_id for i in before.items]
    assert live.stub.DeleteArticle(pb.DeleteArticleRequest(article_id="tech-01")).existed
    assert "tech-01" not in popular_ids(live, limit=100)
    assert "tech-01" not in popular_ids(live, "tech", limit=100)
    after = live.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-02", limit=10))
    ids = [i.article_id for i in after.items]
    assert "tech-01" not in ids and len(ids) == 10
    with pytest.raises(grpc.RpcError) as info:
        live.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "article_id 'tech-01' was taken down"
    reply = live.stub.RecordEvents(pb.RecordEventsRequest(events=clicks("tech-01", 2)))
    assert reply.rejected_reasons["unknown_article"] == 2
    again = live.stub.DeleteArticle(pb.DeleteArticleRequest(article_id="tech-01"))
    assert not again.existed  # taken down already: nothing changes
    for unknown in ("never-1", "x" * 128):
        with pytest.raises(grpc.RpcError) as missing:
            live.stub.DeleteArticle(pb.DeleteArticleRequest(article_id=unknown))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert unknown[:20] in str(missing.value.details())
    assert client.smembers(keys.deleted) == {b"tech-01"}  # unknown ids are not recorded


def test_restart_keeps_live_state(live: ServerThread, live_settings: Settings) -> None:
    upsert(live, "tech-kept", TECH_TEXT, ["tech"])
    live.stub.DeleteArticle(pb.DeleteArticleRequest(article_id="sport-01"))
    live.stub.RecordEvents(
        pb.RecordEventsRequest(events=clicks("culture-x", 1) + clicks("sport-09", 30))
    )
    live.stop()
    restarted = ServerThread(live_settings)
    try:
        assert restarted.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-kept")).items
        assert popular_ids(restarted)[0] == "sport-09"
        assert "sport-01" not in popular_ids(restarted, "sport", limit=100)
    finally:
        restarted.stop()
        live.stop = lambda: None  # type: ignore[method-assign]


def test_retrain_keeps_upserts_and_drops_takedowns(
    tmp_path: Path, live: ServerThread, live_settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    upsert(live, "tech-late", TECH_TEXT, ["tech"])
    live.stub.DeleteArticle(pb.DeleteArticleRequest(article_id="sport-03"))
    articles = tmp_path / "articles.jsonl"  # the same export, older than the upsert
    result = retrain(articles, None, live_settings, client)
    assert result.meta["live_upserts_folded"] == 1 and result.meta["taken_down_dropped"] == 1
    assert result.meta["articles"] == 40  # 40 exported + 1 upserted - 1 taken down
    assert client.hlen(keys.upserted) == 0  # folded: no longer live state
    time.sleep(0.05)
    reply = live.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-late", limit=3))
    assert reply.model_version == result.version and len(reply.items) == 3
    with pytest.raises(grpc.RpcError) as info:
        live.stub.GetRelated(pb.GetRelatedRequest(article_id="sport-03"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    info_reply = live.stub.GetModelInfo(pb.GetModelInfoRequest())
    assert info_reply.article_count == 40


def test_a_reader_whose_live_sets_lag_a_retrain_still_finds_a_folded_upsert(
    tmp_path: Path, live: ServerThread, live_settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    """Between a retrain that folds an upsert into the new version and the next refresh of a
    replica's live sets, the replica still holds the id as upserted: its record, gone from live
    state, is found in the new version (a list it was inserted into never drops it)."""
    upsert(live, "tech-late", TECH_TEXT, ["tech"])

    async def lagging_reader_lookup() -> list[str]:
        reader = Reader(async_client(live_settings), keys)  # no sync loop: refreshed by hand
        await reader.refresh_live()
        assert "tech-late" in reader.upserted
        version = retrain(tmp_path / "articles.jsonl", None, live_settings, client).version
        assert client.hlen(keys.upserted) == 0  # folded: gone from live state
        assert "tech-late" in reader.upserted  # ... but not yet seen by this reader
        records = await reader.articles(version, ["tech-late", "tech-01"])
        await reader.client.aclose()
        return [r.title if r is not None else "" for r in records]

    titles = asyncio.run(lagging_reader_lookup())
    assert titles[0] == TECH_TEXT[:40] and titles[1]
