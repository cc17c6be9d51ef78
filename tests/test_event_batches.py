"""Event batches over a real server and Redis: a batch_id makes a retry count nothing twice,
rejected events come back with their positions, clicks without a session count once per caller,
and an invalid event timestamp is INVALID_ARGUMENT naming it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from tests.helpers import ServerThread
from tests.live_helpers import at_hour, clicks, counted, snapshot
from training.export import export_events
from training.pipeline import TrainResult

pytest_plugins = ["tests.live_fixtures"]  # live, live_settings, trained


def mixed(session: str) -> list[pb.Event]:
    """Clicks that count, a repeat, impressions, and rejects at known positions."""
    return [
        at_hour(pb.Event(article_id="sport-05", session_id=f"{session}-1")),  # 0
        at_hour(pb.Event(article_id="sport-05", session_id=f"{session}-2")),  # 1
        pb.Event(article_id="bad id"),  # 2 malformed_id
        at_hour(pb.Event(article_id="sport-05", session_id=f"{session}-1")),  # 3 repeat
        at_hour(pb.Event(article_id="sport-06", type=pb.EVENT_TYPE_IMPRESSION)),  # 4
        pb.Event(article_id="nope-1", session_id=f"{session}-3"),  # 5 unknown_article
        pb.Event(article_id="tech-01", type=9),  # type: ignore[arg-type]  # 6 bad_type
    ]


def rejected(reply: pb.RecordEventsResponse) -> list[tuple[int, int, str]]:
    return [(r.message, r.index, r.reason) for r in reply.rejected_events]


def test_batch_id_retry_counts_nothing_again(
    live: ServerThread, client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    request = pb.RecordEventsRequest(events=mixed("r"), batch_id="batch-0001")
    first = live.stub.RecordEvents(request)
    assert (first.accepted, first.deduplicated, first.rejected) == (3, 1, 3)
    assert first.replayed_batches == 0
    assert counted(client, keys, "sport-05") == pytest.approx(2.0)
    assert counted(client, keys, "sport-06", "views") == pytest.approx(1.0)
    state = snapshot(client, keys.namespace)
    for _ in range(2):  # the answer was lost: the producer retries, twice
        again = live.stub.RecordEvents(request)
        assert again.replayed_batches == 1
        assert (again.accepted, again.deduplicated, again.rejected) == (3, 1, 3)
        assert rejected(again) == rejected(first)
    assert snapshot(client, keys.namespace) == state  # not a counter, set or stream entry more
    assert export_events(client, keys, tmp_path / "out.jsonl") == 3
    assert 0 < client.ttl(keys.batch("batch-0001")) <= 24 * 3600
    other = live.stub.RecordEvents(pb.RecordEventsRequest(events=mixed("s"), batch_id="batch-2"))
    assert (other.accepted, other.replayed_batches) == (3, 0)  # another batch_id is another batch
    assert counted(client, keys, "sport-06", "views") == pytest.approx(2.0)


def test_malformed_batch_id_is_invalid_argument(
    live: ServerThread, client: redis.Redis, keys: Keys
) -> None:
    state = snapshot(client, keys.namespace)
    for bad in ("has space", "x" * 129, "a*b", "é"):
        with pytest.raises(grpc.RpcError) as info:
            live.stub.RecordEvents(
                pb.RecordEventsRequest(events=clicks("tech-01", 2), batch_id=bad)
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert str(info.value.details()).startswith("batch_id ")
    batches = [pb.RecordEventsRequest(events=clicks("tech-01", 1), batch_id="bad id")]
    with pytest.raises(grpc.RpcError) as streamed:
        live.stub.StreamEventBatches(iter(batches))
    assert streamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stream message 0" in str(streamed.value.details()) and "batch_id" in str(
        streamed.value.details()
    )
    assert snapshot(client, keys.namespace) == state


def test_stream_retry_replays_the_recorded_messages(
    live: ServerThread, client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    messages = [
        pb.RecordEventsRequest(
            events=[at_hour(e) for e in clicks("business-03", 40, f"m{n}-")], batch_id=f"b-{n}"
        )
        for n in range(3)
    ]
    first = live.stub.StreamEventBatches(iter(messages[:2]))
    assert (first.accepted, first.replayed_batches) == (80, 0)
    # The producer lost the answer, and sends the whole stream again with one more message.
    retry = live.stub.StreamEventBatches(iter(messages))
    assert (retry.accepted, retry.deduplicated, retry.replayed_batches) == (120, 0, 2)
    assert export_events(client, keys, tmp_path / "out.jsonl") == 120
    assert counted(client, keys, "business-03") == pytest.approx(120.0)


def test_rejected_events_name_their_message_and_position(live: ServerThread) -> None:
    unary = live.stub.RecordEvents(pb.RecordEventsRequest(events=mixed("u")))
    assert rejected(unary) == [(0, 2, "malformed_id"), (0, 5, "unknown_article"),
                               (0, 6, "bad_type")]  # fmt: skip
    batches = [pb.RecordEventsRequest(events=mixed(f"b{n}")) for n in range(2)]
    streamed = live.stub.StreamEventBatches(iter(batches))
    assert rejected(streamed) == [(m, n, r) for m in (0, 1) for _, n, r in rejected(unary)]
    singles = live.stub.StreamEvents(iter(mixed("s") * 2))
    assert rejected(singles) == [(m + s, 0, r) for s in (0, 7) for _, m, r in rejected(unary)]
    many = live.stub.RecordEvents(pb.RecordEventsRequest(events=[pb.Event(article_id="?")] * 150))
    assert many.rejected == 150 and len(many.rejected_events) == 100
    assert [r.index for r in many.rejected_events] == list(range(100))


def test_clicks_without_a_session_count_once_per_caller(
    live: ServerThread, client: redis.Redis, keys: Keys
) -> None:
    flood = [at_hour(pb.Event(article_id="sport-08")) for _ in range(1000)]
    replies = [live.stub.RecordEvents(pb.RecordEventsRequest(events=flood)) for _ in range(2)]
    assert [(r.accepted, r.deduplicated) for r in replies] == [(1, 999), (0, 1000)]
    streamed = live.stub.StreamEvents(iter(flood))
    assert (streamed.accepted, streamed.deduplicated) == (0, 1000)
    assert counted(client, keys, "sport-08") == pytest.approx(1.0)
    with_session = live.stub.RecordEvents(pb.RecordEventsRequest(events=clicks("sport-08", 3)))
    assert with_session.accepted == 3  # readers with a session count as before
    impressions = [at_hour(pb.Event(article_id="sport-08", type=pb.EVENT_TYPE_IMPRESSION))] * 5
    assert live.stub.RecordEvents(pb.RecordEventsRequest(events=impressions)).accepted == 5


@pytest.fixture
def dual_stack(live_settings: Settings, trained: TrainResult) -> Iterator[ServerThread]:
    server = ServerThread(replace(live_settings, host="[::]"))
    yield server
    server.stop()


def test_another_caller_is_another_reader(
    dual_stack: ServerThread, client: redis.Redis, keys: Keys
) -> None:
    flood = pb.RecordEventsRequest(events=[at_hour(pb.Event(article_id="sport-08"))] * 10)
    assert dual_stack.stub.RecordEvents(flood).accepted == 1  # from 127.0.0.1
    with grpc.insecure_channel(f"[::1]:{dual_stack.port}") as channel:
        assert pb_grpc.RecommenderStub(channel).RecordEvents(flood).accepted == 1  # from ::1
    assert counted(client, keys, "sport-08") == pytest.approx(2.0)


def test_invalid_event_timestamps_are_invalid_argument(
    live: ServerThread, client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    state = snapshot(client, keys.namespace)
    for seconds, nanos in [(1_700_000_000, -3332), (1_700_000_000, 10**9), (-62_135_596_801, 0),
                           (253_402_300_800, 0)]:  # fmt: skip
        for article_id in ("tech-01", "bad id"):  # a broken ts goes before any other check
            bad = pb.Event(article_id=article_id)
            bad.ts.seconds, bad.ts.nanos = seconds, nanos
            with pytest.raises(grpc.RpcError) as info:
                live.stub.RecordEvents(pb.RecordEventsRequest(events=[*clicks("tech-02", 2), bad]))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert str(info.value.details()).startswith("events[2].ts is not a valid Timestamp")
    assert snapshot(client, keys.namespace) == state  # the call counted nothing
    bad.ts.nanos = -1
    messages = [
        pb.RecordEventsRequest(events=clicks("tech-03", 4, "a")),
        pb.RecordEventsRequest(events=[*clicks("tech-03", 2, "b"), bad]),
        pb.RecordEventsRequest(events=clicks("tech-03", 5, "c")),  # never started
    ]
    with pytest.raises(grpc.RpcError) as streamed:
        live.stub.StreamEventBatches(iter(messages))
    assert streamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stream message 1" in str(streamed.value.details())
    assert "events[2].ts" in str(streamed.value.details())
    with pytest.raises(grpc.RpcError) as singles:
        live.stub.StreamEvents(iter([*clicks("tech-04", 3, "c"), bad]))
    assert singles.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stream event 3" in str(singles.value.details())
    assert export_events(client, keys, tmp_path / "out.jsonl") == 4 + 3  # the ones before it
