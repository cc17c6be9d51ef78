"""The key schema is a contract between training, serving and operators: pinned on exact strings."""

from __future__ import annotations

import json

import pytest
import redis

from recommender.domain import Article
from recommender.store.codec import (
    EventRow,
    PopularList,
    decode_article,
    decode_event_batch,
    decode_popular,
    decode_related,
    encode_article,
    encode_event_batch,
    encode_popular,
    encode_related,
)
from recommender.store.keys import Keys
from recommender.store.scripts import (
    ADD_NEW_MEMBERS,
    INCREMENT_FIELDS,
    increment_piece,
    pack_increments,
    pack_members,
)


def test_key_names_are_pinned() -> None:
    keys = Keys("news")
    assert keys.pointer == "news:current"
    assert keys.versions == "news:versions"
    assert keys.pending == "news:pending"
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


def test_event_scripts_on_real_redis(client: redis.Redis, keys: Keys) -> None:
    seen = keys.seen(1800, 3)
    members = [f"s{n} a{n % 7}" for n in range(2500)]  # more than one SMISMEMBER chunk
    client.sadd(seen, *members[::10])
    flags = client.eval(ADD_NEW_MEMBERS, 1, seen, 60, pack_members(members))
    assert flags.decode() == "".join("0" if n % 10 == 0 else "1" for n in range(2500))
    assert client.scard(seen) == 2500 and 0 < client.ttl(seen) <= 60
    assert client.eval(ADD_NEW_MEMBERS, 1, seen, 60, pack_members(members[:3])) == b"000"
    counter = keys.counter("clicks", "m", 60, "")
    pieces = [increment_piece("a-1", 1.5), increment_piece("b", 2.0), increment_piece("a-1", 1e-5)]
    client.eval(INCREMENT_FIELDS, 1, counter, 90, pack_increments(pieces))
    assert {k: float(v) for k, v in client.hgetall(counter).items()} == {
        b"a-1": pytest.approx(1.50001),
        b"b": 2.0,
    }
    assert 0 < client.ttl(counter) <= 90
