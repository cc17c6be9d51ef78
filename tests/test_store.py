"""The key schema is a contract between training, serving and operators: pinned on exact strings."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import redis

from recommender.domain import Article
from recommender.store.codec import (
    EventRow,
    PopularList,
    caller_identity,
    decode_article,
    decode_batch_reply,
    decode_event_batch,
    decode_popular,
    decode_related,
    encode_article,
    encode_batch_rejections,
    encode_batch_reply,
    encode_event_batch,
    encode_popular,
    encode_related,
)
from recommender.store.keys import EVENTS_FIELD, SKIPPED_FIELD, Keys
from recommender.store.scripts import (
    RECORD_BATCH,
    pack_fallbacks,
    pack_lines,
    pack_slots,
    pack_templates,
)


def test_key_names_are_pinned() -> None:
    keys = Keys("news")
    assert keys.pointer == "news:current"
    assert keys.versions == "news:versions"
    assert keys.pending == "news:pending"
    assert keys.lock == "news:lock"
    assert keys.meta("V1") == "news:v:V1:meta"
    assert keys.related("V1", "a-1") == "news:v:V1:rel:a-1"
    assert keys.article("V1", "a-1") == "news:v:V1:art:a-1"
    assert keys.popular("V1", "") == "news:v:V1:pop:*"
    assert keys.popular("V1", "Middle East") == "news:v:V1:pop:middle%20east"
    assert keys.popular("V1", "a:b/*") == "news:v:V1:pop:a%3Ab%2F%2A"
    assert keys.version_prefix("V1") == "news:v:V1:"
    assert keys.seen(1800, 3) == "news:rt:seen:1800:3"
    assert keys.counter("clicks", "m", 60, "") == "news:rt:clicks:m:60:*"
    assert keys.counter("views", "h", 3600, "Europe") == "news:rt:views:h:3600:europe"
    assert keys.live_inserts("a") == "news:rt:relx:a"
    assert keys.live_vector("V1", "a") == "news:rt:vec:V1:a"
    assert keys.epoch == "news:rt:epoch" and keys.deleted == "news:rt:deleted"
    assert keys.vectors_chunk("V1", 0) == "news:v:V1:vectors:0"
    assert keys.batch("b-1") == "news:rt:batch:b-1" and keys.events == "news:rt:events"
    assert (EVENTS_FIELD, SKIPPED_FIELD) == ("e", "x")


def test_encodings_round_trip() -> None:
    article = Article(
        id="a-1",
        title="T",
        body="not stored",
        sections=("europe", "world"),
        tags=("eu",),
        url="https://x/a-1",
        published_at=1.5,
    )
    back = decode_article("a-1", encode_article(article))
    assert back == Article(
        id="a-1",
        title="T",
        sections=("europe", "world"),
        tags=("eu",),
        url="https://x/a-1",
        published_at=1.5,
    )
    assert b"not stored" not in encode_article(article)
    related = [("b", 0.5, ("world",)), ("c", 0.25, ())]
    assert decode_related(encode_related(related)) == related
    popular = PopularList(
        as_of=10.0,
        items=[("a", 2.0), ("b", 1.0)],
        components={"a": (3.0, 40.0, 2.5), "b": (1.0, 9.0, 1.0)},
    )
    assert decode_popular(encode_popular(popular)) == popular
    bare = PopularList(as_of=10.0, items=[("a", 2.0)])
    assert decode_popular(encode_popular(bare)) == bare


def test_event_batches_encode_as_the_json_encoder_would() -> None:
    rows: list[EventRow] = [
        ("a-1", 1_767_225_600.123456, "click", "s:1~x"),
        ("b.2", 1_767_225_600.123456, "impression", ""),
        ("c_3", 1e-7, "click", "z"),
        ("d", 1_767_225_600, "click", "s"),  # an int ts
    ]
    encoded = encode_event_batch(rows)
    assert encoded == json.dumps(rows, separators=(",", ":")).encode()
    assert decode_event_batch(encoded) == [(a, float(t), k, s) for a, t, k, s in rows]
    assert encode_event_batch([]) == b"[]"


def test_event_stream_entries_drop_skipped_rows() -> None:
    rows: list[EventRow] = [
        ("a", 1.0, "click", "s1"),
        ("b", 2.0, "click", "s2"),
        ("c", 3.0, "x", ""),
    ]
    encoded = encode_event_batch(rows)
    assert decode_event_batch(encoded, b"1") == [rows[0], rows[2]]
    assert decode_event_batch(encoded, "0 2") == [rows[1]]
    assert decode_event_batch(encoded, None) == decode_event_batch(encoded, b"") == rows


def test_batch_replies_round_trip() -> None:
    rejections = encode_batch_rejections({"too_old": 2}, [(3, "too_old"), (9, "too_old")])
    reply = decode_batch_reply(encode_batch_reply(7, 1, rejections).encode())
    assert (reply.accepted, reply.deduplicated) == (7, 1)
    assert reply.rejected == {"too_old": 2}
    assert reply.rejected_events == [(3, "too_old"), (9, "too_old")]
    bare = decode_batch_reply(encode_batch_reply(5, 0, encode_batch_rejections({}, [])))
    assert (bare.accepted, bare.rejected, bare.rejected_events) == (5, {}, [])


def test_callers_stand_in_for_sessions_apart_from_any_session_id() -> None:
    assert caller_identity("ipv4:10.0.0.7:51234") == "@ipv4:10.0.0.7"
    assert caller_identity("ipv6:[::1]:50051") == "@ipv6:[::1]"
    assert caller_identity("unix:/tmp/a b.sock") == "@unix:/tmp/a%20b.sock"
    assert caller_identity("") == ""
    assert not any(c.isspace() for c in caller_identity("ipv4:\n1.2.3.4 :1"))


def record_batch(client: redis.Redis, script_keys: list[str], args: list[str | int | bytes]) -> Any:
    """Run the event write script (its reply: [replayed, reply])."""
    return client.eval(RECORD_BATCH, len(script_keys), *script_keys, *args)


def hash_value(client: redis.Redis, key: str, field: str) -> float:
    return float(cast(bytes, client.hget(key, field)))


def only_entry(client: redis.Redis, keys: Keys) -> Any:
    ((_, entry),) = cast(Any, client.xrange(keys.events))
    return entry


def record_batch_args(batch_ttl: int, client_rows: list[EventRow]) -> list[str | int | bytes]:
    """A hand-made batch: one impression counted whatever happens (slot 0, weight 1.0), then
    clicks on "a" by sessions s1, s2 (set 0) and s3 (set 1), each adding 2.0 to slot 1."""
    return [
        batch_ttl, 2, 60, 90, 1000, 1, 0, encode_batch_rejections({"too_old": 1}, [(4, "too_old")]),
        *pack_slots([("a", (0,)), ("a", (1, 2))], [1.0, 6.0]),
        *pack_fallbacks([1.0, 0.0], [0, 3]),
        pack_lines(["s1 a", "s2 a", "s3 a"]), "2 1", "0 0 0", pack_templates([[(1, 2.0)]]),
        encode_event_batch(client_rows), EVENTS_FIELD, SKIPPED_FIELD,
    ]  # fmt: skip


def test_record_batch_script_on_real_redis(client: redis.Redis, keys: Keys) -> None:
    """Repeats are found in their sets and taken back out of their slots; the stream entry
    names them; the reply counts; a stored reply is returned without writing anything."""
    sets = [keys.seen(1800, 0), keys.seen(1800, 1)]
    counters = [keys.counter("views", "m", 60, ""), keys.counter("clicks", "m", 60, ""),
                keys.counter("clicks", "m", 60, "world")]  # fmt: skip
    client.sadd(sets[0], "s2 a")  # s2 clicked "a" in an earlier batch
    rows: list[EventRow] = [("a", 60.0, "impression", "")] + [
        ("a", 60.5, "click", s) for s in ("s1", "s2", "s3")
    ]
    script_keys = [keys.events, keys.batch("b-1"), *sets, *counters]
    args = record_batch_args(600, rows)
    replayed, reply = record_batch(client, script_keys, args)
    assert replayed == 0
    stored = decode_batch_reply(reply)
    assert (stored.accepted, stored.deduplicated, stored.rejected) == (3, 1, {"too_old": 1})
    assert client.smembers(sets[0]) == {b"s1 a", b"s2 a"} and client.smembers(sets[1]) == {b"s3 a"}
    assert 0 < client.ttl(sets[0]) <= 60 and 0 < client.ttl(counters[1]) <= 90
    assert hash_value(client, counters[0], "a") == pytest.approx(1.0)
    for key in counters[1:]:
        assert hash_value(client, key, "a") == pytest.approx(4.0)  # s1 and s3: 2.0 each
    entry = only_entry(client, keys)
    assert entry[b"x"] == b"2"  # the impression's row, then s1, s2 (skipped), s3
    assert decode_event_batch(entry[b"e"], entry[b"x"]) == [rows[0], rows[1], rows[3]]
    assert client.get(keys.batch("b-1")) == reply and 0 < client.ttl(keys.batch("b-1")) <= 600
    before = {k: client.dump(k) for k in [*sets, *counters]}
    again = record_batch(client, script_keys, args)
    assert again == [1, reply] and client.xlen(keys.events) == 1
    assert {k: client.dump(k) for k in [*sets, *counters]} == before


def test_record_batch_script_skips_slots_whose_clicks_all_repeat(
    client: redis.Redis, keys: Keys
) -> None:
    sets = [keys.seen(1800, 0), keys.seen(1800, 1)]
    counters = [keys.counter("views", "m", 60, ""), keys.counter("clicks", "m", 60, ""),
                keys.counter("clicks", "m", 60, "world")]  # fmt: skip
    client.sadd(sets[0], "s1 a", "s2 a")
    client.sadd(sets[1], "s3 a")
    rows: list[EventRow] = [("a", 60.0, "impression", "")] + [
        ("a", 60.5, "click", s) for s in ("s1", "s2", "s3")
    ]
    script_keys = [keys.events, keys.events, *sets, *counters]
    replayed, reply = record_batch(client, script_keys, record_batch_args(0, rows))
    assert (replayed, decode_batch_reply(reply).accepted) == (0, 1)
    assert not client.exists(counters[1], counters[2])  # no field, not even a zero
    assert client.hgetall(counters[0]) == {b"a": b"1"}
    entry = only_entry(client, keys)
    assert decode_event_batch(entry[b"e"], entry[b"x"]) == rows[:1]
