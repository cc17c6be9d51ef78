"""Redis key names and lifetimes: the only place either is written down.

Layout under the namespace `ns`:
  ns:current               the live version (the pointer; flipping it publishes a version)
  ns:versions              sorted set: published versions, scored by publish time
  ns:pending               sorted set: versions being trained or written, scored by start time
                           (under the lock, any other entry is a killed run's leftover)
  ns:lock                  string: the training lock (redis-py Lock) of `newsrec train`, `publish`
                           and `rollback`: a JSON holder (host, pid, command, start), with a lease
                           (TTL) the holder renews
  ns:v:<ver>:meta          JSON: the version's manifest summary
  ns:v:<ver>:rel:<id>      JSON: [[id, score, [sections]], ...] related candidates, best first
  ns:v:<ver>:art:<id>      JSON: {"title","url","sections","tags","published_at"}
  ns:v:<ver>:pop:<sec>     JSON: {"as_of": epoch, "items": [[id, score, C, I, E], ...]}, <sec> "*"
                           = site-wide; C, I, E: decayed clicks, impressions, exposure
  ns:v:<ver>:popw:<w>:<sec>  JSON: window w's list (recommender/windows.py), as pop:<sec>; an
                           item's C, I, E slots hold its click totals, one per half-life of w
  ns:v:<ver>:why:<id>      JSON: {"shares", "terms": [[term, weight]...], "parts": [[tfidf, lsa,
                           embedding, recency] per rel:<id> entry]}, with related.explain only
  ns:v:<ver>:vectorizer    JSON: the fitted TF-IDF vocabulary and idf (live upserts use it)
  ns:v:<ver>:vectors:<n>   bytes: chunk n of an .npz with the article vectors, ids and K-th scores
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
                           starting at epoch t ("@caller article" for a click without a session:
                           codec.caller_identity); DEDUP_SHARDS shards by session; TTL two periods
  ns:rt:events             stream: one entry per batch whose events counted (field EVENTS_FIELD,
                           and SKIPPED_FIELD for its rows that did not), for `newsrec export-events`
  ns:rules                 hash: editorial rule id -> JSON (recommender/rules/): pins and blocks,
                           outside versions and live state so retraining and rollback keep them
  ns:rt:batch:<batch_id>   string: a RecordEvents batch's reply (codec.encode_batch_reply), so a
                           retry with the same batch_id counts nothing again; TTL a setting (24 h)
A version's keys never change once written, so they can be cached in-process without
invalidation. Reads and version writes touch one key a command (a publish's MSET is split by
slot on a cluster); an event batch is one script over its dedup sets, counter hashes, the stream
and its reply record on one Redis, and single-slot steps on a cluster (live/cluster_events.py).
On Redis Cluster (Keys(ns, cluster=True)) the pointer, versions, pending and lock keys are named
{ns}:current, {ns}:versions, {ns}:pending and {ns}:lock: one hash slot for the flip's transaction.
Nothing else is hash-tagged, so a version's keys spread over every primary.
Encodings are in store/codec.py (JSON values) and store/vectors.py (vector blobs).
"""

from __future__ import annotations

import zlib
from urllib.parse import quote

SITE_WIDE = "*"
LIVE_KEY_TTL = 7 * 24 * 3600
"""Upserted vectors and list insertions outlive any nightly cycle, then expire on their own."""
COUNTER_TTL_MARGIN = 2 * 3600
"""Counter hashes live this long past the trending window (see counter_ttl)."""
DEDUP_SHARDS = 16
"""Dedup sets per period, so no single key (or cluster slot) takes every session."""
EVENTS_FIELD = "e"
"""The field of an event-stream entry holding the batch, encoded by codec.encode_event_batch."""
SKIPPED_FIELD = "x"
"""The field, when present, listing the positions (space-separated) of the entry's rows that
did not count (clicks whose pair the dedup set already held): `newsrec export-events` skips
them."""


def counter_ttl(window_seconds: float) -> int:
    """Lifetime of a counter hash: its events matter for one trending window."""
    return int(window_seconds + COUNTER_TTL_MARGIN)


def dedup_ttl(period_seconds: int) -> int:
    """Lifetime of a dedup set: its period and the next (events arrive a little late)."""
    return 2 * period_seconds


def dedup_shard(session_id: str) -> int:
    """Which dedup set of a period holds this session (stable across processes)."""
    return zlib.crc32(session_id.encode()) % DEDUP_SHARDS


def section_key_part(section: str) -> str:
    """Sections are free text: normalise case and percent-encode them before they enter a key."""
    return quote(section.strip().lower(), safe="") if section else SITE_WIDE


class Keys:
    """Builds every Redis key name for one namespace. On Redis Cluster (`cluster`), the four
    control keys carry the hash tag {ns} so they share one slot: the pointer flip checks the lock
    and moves the version from pending to published in one transaction. They are small (a
    version name, a few dozen set members); every other key is hashed on its whole name."""

    def __init__(self, namespace: str, cluster: bool = False) -> None:
        self.namespace = namespace
        control = "{" + namespace + "}" if cluster else namespace
        self.pointer = f"{control}:current"
        self.versions = f"{control}:versions"
        self.pending = f"{control}:pending"
        self.lock = f"{control}:lock"
        self.epoch = f"{namespace}:rt:epoch"
        self.deleted = f"{namespace}:rt:deleted"
        self.upserted = f"{namespace}:rt:upserted"
        self.events = f"{namespace}:rt:events"
        self.rules = f"{namespace}:rules"
        self.batch_prefix = f"{namespace}:rt:batch:"

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

    def popular_window(self, version: str, window: str, section: str) -> str:
        """A named Popular window's list of one section ("" = site-wide)."""
        return f"{self.namespace}:v:{version}:popw:{window}:{section_key_part(section)}"

    def explanation(self, version: str, article_id: str) -> str:
        """Why an article's list holds what it holds (only with related.explain)."""
        return f"{self.namespace}:v:{version}:why:{article_id}"

    def vectorizer(self, version: str) -> str:
        """The version's fitted vectorizer."""
        return f"{self.namespace}:v:{version}:vectorizer"

    def vectors_chunk(self, version: str, n: int) -> str:
        """Chunk n of the version's article vectors."""
        return f"{self.namespace}:v:{version}:vectors:{n}"

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

    def batch(self, batch_id: str) -> str:
        """The stored reply of the event batch with this (validated) batch_id."""
        return self.batch_prefix + batch_id

    def live_prefix(self) -> str:
        """Every live-state key starts with this."""
        return f"{self.namespace}:rt:"
