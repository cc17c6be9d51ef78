"""The key schema is a contract between training, serving and operators: pinned on exact strings."""

from __future__ import annotations

from recommender.domain import Article
from recommender.store import (
    Keys,
    PopularList,
    decode_article,
    decode_popular,
    decode_related,
    encode_article,
    encode_popular,
    encode_related,
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
    assert keys.corpus_chunk("V1", 0) == "news:v:V1:corpus:0"


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
