"""Value encodings of the Redis store: the JSON values of versions and live state, and the
event-stream batches. Key names are in store/keys.py, vector blobs in store/vectors.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from recommender.domain import Article


def text(value: Any) -> str:
    """A Redis reply as str (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


Candidate = tuple[str, float, tuple[str, ...]]


def encode_related(candidates: list[Candidate]) -> bytes:
    """Related candidates, best first, each with its sections for the section filter."""
    rows = [[cid, round(score, 6), list(sections)] for cid, score, sections in candidates]
    return json.dumps(rows, separators=(",", ":")).encode()


def decode_related(raw: bytes) -> list[Candidate]:
    """Inverse of encode_related."""
    return [(cid, float(score), tuple(sections)) for cid, score, sections in json.loads(raw)]


def encode_article(article: Article) -> bytes:
    """What a page needs to render one item; the body stays out of Redis."""
    record = {
        "title": article.title,
        "url": article.url,
        "sections": list(article.sections),
        "tags": list(article.tags),
        "published_at": article.published_at,
    }
    return json.dumps(record, separators=(",", ":")).encode()


def decode_article(article_id: str, raw: bytes) -> Article:
    """Inverse of encode_article and encode_document (body left empty)."""
    record = json.loads(raw)
    return Article(
        id=article_id,
        title=record["title"],
        url=record["url"],
        sections=tuple(record["sections"]),
        tags=tuple(record["tags"]),
        published_at=record["published_at"],
    )


def encode_document(article: Article) -> bytes:
    """An upserted article in full: the next training run vectorises its body."""
    record = json.loads(encode_article(article))
    record["body"] = article.body
    return json.dumps(record, separators=(",", ":")).encode()


def decode_document(article_id: str, raw: bytes) -> Article:
    """Inverse of encode_document."""
    record = json.loads(raw)
    display = decode_article(article_id, raw)
    return Article(
        id=display.id,
        title=display.title,
        body=record.get("body", ""),
        sections=display.sections,
        tags=display.tags,
        url=display.url,
        published_at=display.published_at,
    )


@dataclass(frozen=True)
class PopularList:
    """A section's trending scores as of one moment, with each listed article's decayed
    (clicks, impressions, exposure) so serving can decay them forward and add live events."""

    as_of: float
    items: list[tuple[str, float]]
    components: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def encode_popular(popular: PopularList) -> bytes:
    """A Popular list with the moment it describes."""
    items = [
        [aid, round(score, 9), *(round(x, 9) for x in popular.components.get(aid, ()))]
        for aid, score in popular.items
    ]
    return json.dumps({"as_of": popular.as_of, "items": items}, separators=(",", ":")).encode()


def decode_popular(raw: bytes) -> PopularList:
    """Inverse of encode_popular."""
    data = json.loads(raw)
    items = [(str(row[0]), float(row[1])) for row in data["items"]]
    components = {
        str(row[0]): (float(row[2]), float(row[3]), float(row[4]))
        for row in data["items"]
        if len(row) == 5
    }
    return PopularList(as_of=float(data["as_of"]), items=items, components=components)


def encode_meta(meta: dict[str, Any]) -> bytes:
    """The manifest summary a server reports through GetModelInfo."""
    return json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()


def decode_meta(raw: bytes) -> dict[str, Any]:
    """Inverse of encode_meta."""
    result: dict[str, Any] = json.loads(raw)
    return result


EventRow = tuple[str, float, str, str]
"""(article_id, ts, type, session_id) as kept in the event stream."""


def encode_event_batch(rows: list[EventRow]) -> bytes:
    """One stream entry holds a whole batch: one XADD per batch, not per event.

    The bytes are exactly json.dumps(rows, separators=(",", ":")): accepted ids and session ids
    are validated ([A-Za-z0-9._:~-]) and kinds are plain words, so no string needs escaping and
    the rows are formatted directly (several times faster than the JSON encoder).
    """
    times: dict[float, str] = {}  # most events of a batch share a timestamp (the server's now)
    parts = []
    for article_id, ts, kind, session in rows:
        text = times.get(ts)
        if text is None:
            text = times[ts] = json.dumps(ts)
        parts.append(f'["{article_id}",{text},"{kind}","{session}"]')
    return ("[" + ",".join(parts) + "]").encode()


def decode_event_batch(raw: bytes, skipped: bytes | str | None = None) -> list[EventRow]:
    """Inverse of encode_event_batch, without the rows at the `skipped` positions (an entry's
    SKIPPED_FIELD: space-separated, the clicks that did not count)."""
    rows = [(str(a), float(t), str(k), str(s)) for a, t, k, s in json.loads(raw)]
    if skipped:
        drop = {int(n) for n in text(skipped).split()}
        rows = [row for n, row in enumerate(rows) if n not in drop]
    return rows


def caller_identity(peer: str) -> str:
    """Who stands in for the session of a click without one: the caller's gRPC peer address
    without its port ("ipv4:10.0.0.7:51234" -> "@ipv4:10.0.0.7"; "" for no peer). The "@" keeps
    it apart from every session id (ids never hold "@"); whitespace is percent-encoded, since
    dedup members are space-separated."""
    if not peer:
        return ""
    host = peer
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        head, colon, port = address.rpartition(":")
        if colon and port.isdigit():
            host = f"{kind}:{head}"
    return "@" + quote(host, safe="/:[]@.%-_~")


def dedup_member(who: str, article_id: str) -> str:
    """A dedup set's member: who (a session id or a caller_identity) clicked which article."""
    return f"{who} {article_id}"


@dataclass(frozen=True)
class BatchReply:
    """What RecordEvents answered for one batch, as kept under its batch_id."""

    accepted: int
    deduplicated: int
    rejected: dict[str, int]
    rejected_events: list[tuple[int, str]]
    """(position in the batch, reason) of the first rejected events."""


def encode_batch_rejections(rejected: dict[str, int], events: list[tuple[int, str]]) -> str:
    """The part of a batch's reply known before the write script runs ("" when none)."""
    if not rejected:
        return ""
    return json.dumps({"r": rejected, "e": events}, separators=(",", ":"))


def encode_batch_reply(accepted: int, deduplicated: int, rejections: str) -> str:
    """A batch's stored reply: "accepted deduplicated rejections" (the write script builds the
    same string, since it alone knows how many clicks were new)."""
    return f"{accepted} {deduplicated} {rejections}"


def decode_batch_reply(raw: bytes | str) -> BatchReply:
    """Inverse of encode_batch_reply."""
    accepted, deduplicated, rejections = text(raw).split(" ", 2)
    data = json.loads(rejections) if rejections else {"r": {}, "e": []}
    return BatchReply(
        accepted=int(accepted),
        deduplicated=int(deduplicated),
        rejected={str(k): int(v) for k, v in data["r"].items()},
        rejected_events=[(int(n), str(reason)) for n, reason in data["e"]],
    )
