"""Redis key schema and encodings: the only module that knows key names and value formats.

Layout under the namespace `ns`:
  ns:current               the live version (the pointer; flipping it publishes a version)
  ns:versions              sorted set: published versions, scored by publish time
  ns:pending               sorted set: versions being written, scored by start time
  ns:v:<ver>:meta          JSON: the version's manifest summary
  ns:v:<ver>:rel:<id>      JSON: [[id, score, [sections]], ...] related candidates, best first
  ns:v:<ver>:art:<id>      JSON: {"title","url","sections","tags","published_at"}
  ns:v:<ver>:pop:<sec>     JSON: {"as_of": epoch, "items": [[id, score, C, I, E], ...]}, <sec> "*"
                           = site-wide; C, I, E: decayed clicks, impressions, exposure
  ns:v:<ver>:vectorizer    JSON: the fitted TF-IDF vectorizer (live upserts vectorise with it)
  ns:v:<ver>:corpus:<n>    bytes: chunk n of an .npz with the article vectors, ids and K-th scores
Live state, beside the versions and folded in by the next training run:
  ns:rt:epoch              integer bumped by every upsert and takedown (servers resync on change)
  ns:rt:deleted            set: taken-down article ids (kept: a takedown outlives retraining)
  ns:rt:upserted           hash: id -> upsert time, for articles upserted since their last training
  ns:rt:doc:<id>           JSON: an upserted article in full (body included, for the next training)
  ns:rt:rel:<id>           JSON: an upserted article's related list (as ns:v:<ver>:rel:<id>)
  ns:rt:relx:<id>          sorted set: upserted ids that entered <id>'s list, by score
  ns:rt:vec:<ver>:<id>     bytes: an upserted article's vector in <ver>'s vocabulary
  ns:rt:<kind>:<g>:<t>:<sec>  hash: article -> weight of the events of a kind (clicks, views:
                           impressions, exposure: impressions on the short half-life) in the
                           minute (g=m) or hour (g=h) bucket starting at epoch t; TTL past window
  ns:rt:seen:<t>:<shard>   set: "session article" pairs with a counted click in the dedup period
                           starting at epoch t (16 shards by session; TTL two periods)
  ns:rt:events             stream: accepted events, one entry per batch, for `newsrec export-events`
A version's keys never change once written, so they can be cached in-process without
invalidation. No command touches two keys at once, so the schema works on Redis Cluster.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.domain import Article

SITE_WIDE = "*"


def section_key_part(section: str) -> str:
    """Sections are free text: normalise case and percent-encode them before they enter a key."""
    return quote(section.strip().lower(), safe="") if section else SITE_WIDE


class Keys:
    """Builds every Redis key name for one namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.pointer = f"{namespace}:current"
        self.versions = f"{namespace}:versions"
        self.pending = f"{namespace}:pending"
        self.epoch = f"{namespace}:rt:epoch"
        self.deleted = f"{namespace}:rt:deleted"
        self.upserted = f"{namespace}:rt:upserted"
        self.events = f"{namespace}:rt:events"

    def version_prefix(self, version: str) -> str:
        """Every key of one version starts with this (used to delete a version)."""
        return f"{self.namespace}:v:{version}:"

    def meta(self, version: str) -> str:
        """The version's manifest summary."""
        return f"{self.namespace}:v:{version}:meta"

    def related(self, version: str, article_id: str) -> str:
        """One article's related candidates."""
        return f"{self.namespace}:v:{version}:rel:{article_id}"

    def article(self, version: str, article_id: str) -> str:
        """One article's display record."""
        return f"{self.namespace}:v:{version}:art:{article_id}"

    def popular(self, version: str, section: str) -> str:
        """The Popular list of one section ("" = site-wide)."""
        return f"{self.namespace}:v:{version}:pop:{section_key_part(section)}"

    def vectorizer(self, version: str) -> str:
        """The version's fitted vectorizer."""
        return f"{self.namespace}:v:{version}:vectorizer"

    def corpus_chunk(self, version: str, n: int) -> str:
        """Chunk n of the version's corpus vectors."""
        return f"{self.namespace}:v:{version}:corpus:{n}"

    def live_doc(self, article_id: str) -> str:
        """An upserted article in full."""
        return f"{self.namespace}:rt:doc:{article_id}"

    def live_related(self, article_id: str) -> str:
        """An upserted article's own related list."""
        return f"{self.namespace}:rt:rel:{article_id}"

    def live_inserts(self, article_id: str) -> str:
        """Upserted articles that entered this article's related list."""
        return f"{self.namespace}:rt:relx:{article_id}"

    def live_vector(self, version: str, article_id: str) -> str:
        """An upserted article's vector in a version's vocabulary."""
        return f"{self.namespace}:rt:vec:{version}:{article_id}"

    def counter(self, kind: str, grain: str, start: int, section: str) -> str:
        """Event weights of one kind ("clicks" or "views") in one time bucket and section."""
        return f"{self.namespace}:rt:{kind}:{grain}:{start}:{section_key_part(section)}"

    def seen(self, period_start: int, shard: int) -> str:
        """Session/article pairs already counted in one dedup period."""
        return f"{self.namespace}:rt:seen:{period_start}:{shard}"

    def live_prefix(self) -> str:
        """Every live-state key starts with this."""
        return f"{self.namespace}:rt:"


# --- encodings -------------------------------------------------------------------------------

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


# --- vectors ---------------------------------------------------------------------------------

CORPUS_CHUNK_BYTES = 32 << 20
"""Corpus blobs are split so no single Redis value grows past a few tens of MB."""


def write_corpus(
    out: BinaryIO,
    ids: list[str],
    matrix: sp.csr_matrix,
    kth: NDArray[np.float32],
    extras: dict[str, NDArray[Any]] | None = None,
) -> None:
    """Article vectors, their ids, each list's K-th score and any extra arrays (the LSA part),
    as one .npz written to `out` (a file at a million articles: the blob is several GB)."""
    arrays: dict[str, Any] = {f"extra_{k}": v for k, v in (extras or {}).items()}
    np.savez(
        out,
        **arrays,
        ids=np.asarray(ids),
        data=matrix.data.astype(np.float32, copy=False),
        indices=matrix.indices.astype(np.int32, copy=False),
        indptr=matrix.indptr.astype(np.int64, copy=False),
        shape=np.asarray(matrix.shape, dtype=np.int64),
        kth=kth.astype(np.float32, copy=False),
    )


def corpus_chunk_count(size: int) -> int:
    """How many Redis values a corpus blob of `size` bytes takes."""
    return -(-size // CORPUS_CHUNK_BYTES)


def read_corpus_chunks(path: Path) -> Iterator[bytes]:
    """The corpus blob in a file, one Redis value at a time."""
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(CORPUS_CHUNK_BYTES), b"")


def encode_corpus(
    ids: list[str],
    matrix: sp.csr_matrix,
    kth: NDArray[np.float32],
    extras: dict[str, NDArray[Any]] | None = None,
) -> list[bytes]:
    """write_corpus's blob in memory, as the chunks Redis stores."""
    buffer = io.BytesIO()
    write_corpus(buffer, ids, matrix, kth, extras)
    blob = buffer.getvalue()
    return [blob[i : i + CORPUS_CHUNK_BYTES] for i in range(0, len(blob), CORPUS_CHUNK_BYTES)]


Corpus = tuple[list[str], sp.csr_matrix, NDArray[np.float32], dict[str, NDArray[Any]]]


def decode_corpus(chunks: Sequence[bytes]) -> Corpus:
    """Inverse of encode_corpus; loads without pickle, so it never runs code."""
    with np.load(io.BytesIO(b"".join(chunks)), allow_pickle=False) as data:
        shape = tuple(int(x) for x in data["shape"])
        matrix = sp.csr_matrix((data["data"], data["indices"], data["indptr"]), shape=shape)
        extras = {k[len("extra_") :]: data[k] for k in data.files if k.startswith("extra_")}
        return [str(i) for i in data["ids"]], matrix, data["kth"], extras


def encode_vector(row: sp.csr_matrix, dense: NDArray[np.float32] | None = None) -> bytes:
    """One article's vector: a sparse TF-IDF row (count, int32 indices, float32 values) and an
    optional dense float32 tail (its LSA parts)."""
    indices = row.indices.astype("<i4")
    head = len(indices).to_bytes(4, "little") + indices.tobytes() + row.data.astype("<f4").tobytes()
    return head + (b"" if dense is None else dense.astype("<f4").tobytes())


def decode_vector(raw: bytes, width: int) -> tuple[sp.csr_matrix, NDArray[np.float32] | None]:
    """Inverse of encode_vector: the 1 x width row and the dense tail (None when absent)."""
    n = int.from_bytes(raw[:4], "little")
    indices = np.frombuffer(raw, dtype="<i4", count=n, offset=4)
    data = np.frombuffer(raw, dtype="<f4", count=n, offset=4 + 4 * n)
    row = sp.csr_matrix((data, indices, np.array([0, n])), shape=(1, width))
    tail = np.frombuffer(raw, dtype="<f4", offset=4 + 8 * n)
    return row, (tail.copy() if len(tail) else None)


# --- live events ------------------------------------------------------------------------------

DEDUP_SHARDS = 16
"""Dedup sets per period, so no single key (or cluster slot) takes every session."""

# Each script touches exactly one key, so it runs on Redis Cluster too. Their many members or
# fields travel packed in one argument: a script call with 2,000 separate arguments costs the
# client more to encode than Redis spends running it. Ids are validated ([A-Za-z0-9._:~-]), so
# neither newlines nor spaces can occur inside one.
ADD_NEW_MEMBERS = """
local members, n = {}, 0
for member in string.gmatch(ARGV[2], '[^\\n]+') do
  n = n + 1
  members[n] = member
end
local added = {}
for first = 1, n, 1000 do
  local last = math.min(first + 999, n)
  local present = redis.call('SMISMEMBER', KEYS[1], unpack(members, first, last))
  redis.call('SADD', KEYS[1], unpack(members, first, last))
  for i = 1, #present do added[first + i - 1] = 1 - present[i] end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return table.concat(added)
"""
"""Add the distinct newline-separated members of ARGV[2] to the set (SMISMEMBER, then one
SADD per 1,000: Redis 6.2+); reply: one character per member, "1" for the ones that were new,
"0" for the rest; then refresh the TTL (ARGV[1]). Atomic, as every script is."""

INCREMENT_FIELDS = """
for field, amount in string.gmatch(ARGV[2], '(%S+) (%S+)') do
  redis.call('HINCRBYFLOAT', KEYS[1], field, amount)
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
"""HINCRBYFLOAT the "field amount" pairs of ARGV[2] (space-separated) in one hash, then refresh
its TTL (ARGV[1])."""


def pack_members(members: Iterable[str]) -> str:
    """ADD_NEW_MEMBERS' ARGV[2] (members must be distinct)."""
    return "\n".join(members)


def pack_increments(pieces: Iterable[str]) -> str:
    """INCREMENT_FIELDS' ARGV[2] from "field amount" pieces (see increment_piece)."""
    return " ".join(pieces)


def increment_piece(field: str, amount: float) -> str:
    """One field and the amount to add to it, as INCREMENT_FIELDS reads them."""
    return f"{field} {amount!r}"


def dedup_shard(session_id: str) -> int:
    """Which dedup set of a period holds this session (stable across processes)."""
    return zlib.crc32(session_id.encode()) % DEDUP_SHARDS


EventRow = tuple[str, float, str, str]
"""(article_id, ts, type, session_id) as kept in the event stream."""


def encode_event_batch(rows: list[EventRow]) -> bytes:
    """One stream entry holds a whole accepted batch: one XADD per call, not per event.

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


def decode_event_batch(raw: bytes) -> list[EventRow]:
    """Inverse of encode_event_batch."""
    return [(str(a), float(t), str(k), str(s)) for a, t, k, s in json.loads(raw)]
