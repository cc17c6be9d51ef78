"""`newsrec export-events`: the live event stream written out as the click log training reads,
so the nightly job learns from the same events without a separate pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import redis

from recommender.store.codec import EventRow, decode_event_batch, text
from recommender.store.keys import EVENTS_FIELD, SKIPPED_FIELD, Keys


def stream_events(client: redis.Redis, keys: Keys, batch: int = 500) -> Iterator[EventRow]:
    """Every counted event still in the capped stream, oldest first (XRANGE pages, never one
    huge read)."""
    start = "-"
    while True:
        entries = client.xrange(keys.events, min=start, max="+", count=batch)
        if not entries:
            return
        for _, fields in entries:
            raw = (fields or {}).get(EVENTS_FIELD.encode())
            if raw is not None:
                skipped = (fields or {}).get(SKIPPED_FIELD.encode())
                yield from decode_event_batch(bytes(raw), skipped)  # type: ignore[arg-type]
        start = "(" + text(entries[-1][0])


def rfc3339(epoch: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds."""
    return (
        datetime.fromtimestamp(epoch, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def export_events(
    client: redis.Redis,
    keys: Keys,
    out: Path,
    since: float | None = None,
    until: float | None = None,
) -> int:
    """Write events with since <= ts < until as JSONL (article_id, ts, type, session_id), sorted
    by ts; written to a temporary name and renamed, so a reader never sees half a file."""
    rows = [
        r
        for r in stream_events(client, keys)
        if (since is None or r[1] >= since) and (until is None or r[1] < until)
    ]
    rows.sort(key=lambda r: r[1])
    partial = out.with_name(out.name + ".partial")
    with partial.open("w") as handle:
        for article_id, ts, kind, session in rows:
            record = {"article_id": article_id, "ts": rfc3339(ts), "type": kind}
            if session:
                record["session_id"] = session
            handle.write(json.dumps(record) + "\n")
    partial.replace(out)
    return len(rows)
