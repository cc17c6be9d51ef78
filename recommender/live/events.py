"""Live reader events: validated, deduplicated per session, counted into the trending counters
(recommender/live/counters.py) and appended to the event stream the nightly job exports."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recommender.domain import CLICK, IMPRESSION, is_valid_id
from recommender.live.config import VersionConfig
from recommender.live.counters import counter_increments
from recommender.reader import Reader
from recommender.store import codec, keys, scripts
from recommender.store.codec import EventRow
from recommender.v1 import recommender_pb2 as pb

MAX_FUTURE_SECONDS = 300.0


@dataclass
class EventTally:
    """What happened to a batch of events."""

    accepted: int = 0
    deduplicated: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, other: EventTally) -> None:
        """Fold another batch's tally into this one."""
        self.accepted += other.accepted
        self.deduplicated += other.deduplicated
        self.rejected.update(other.rejected)

    def response(self) -> pb.RecordEventsResponse:
        """As the API reports it."""
        return pb.RecordEventsResponse(
            accepted=self.accepted,
            deduplicated=self.deduplicated,
            rejected=sum(self.rejected.values()),
            rejected_reasons=dict(self.rejected),
        )


_KIND_OF_TYPE = {
    pb.EVENT_TYPE_UNSPECIFIED: CLICK,
    pb.EVENT_TYPE_CLICK: CLICK,
    pb.EVENT_TYPE_IMPRESSION: IMPRESSION,
}
"""Event types the API knows; any other number is rejected as "bad_type"."""

STREAM_DEPTH = 4
"""Batches of one stream in flight at once: while one waits on Redis, the next is validated."""


class EventWriter:
    """Handles RecordEvents, StreamEvents and StreamEventBatches."""

    # Per event: a few attribute reads and dict lookups; everything else is per batch, per
    # article or per counter hash. Known articles' sections are cached for the live version and
    # live-state epoch (an upsert or takedown anywhere moves the epoch and empties the cache).

    def __init__(
        self, reader: Reader, stream_max_batches: int = 1_000_000, sections_entries: int = 200_000
    ) -> None:
        self.reader = reader
        self.keys = reader.keys
        self.stream_max_batches = stream_max_batches
        self.sections_entries = sections_entries
        self._sections: dict[str, tuple[str, ...]] = {}
        self._sections_stamp: tuple[str, int] | None = None

    async def record_events(
        self, events: Sequence[pb.Event], now: float | None = None
    ) -> EventTally:
        """Validate, deduplicate and count one batch; accepted events go to the stream too.

        Two Redis round trips (dedup, then counters and stream) plus one for article records
        this process has not seen yet. Rejected events never reach a key.
        """
        now = time.time() if now is None else now
        version = await self.reader.live_version()
        cfg = await self.reader.config(version)
        await self.reader.ensure_synced()
        sections = self._known_sections(version)
        tally = EventTally()
        valid, unseen = self._validate(events, now, cfg, sections, tally.rejected)
        if unseen:
            ids = sorted(unseen)
            for aid, record in zip(ids, await self.reader.articles(version, ids), strict=True):
                if record is not None:
                    sections[aid] = record.sections
            known = [v for v in valid if v[0] in sections]
            tally.rejected["unknown_article"] += len(valid) - len(known)
            valid = known
        counted = await self._dedup_clicks(valid, cfg.dedup)
        tally.deduplicated = len(valid) - len(counted)
        tally.accepted = len(counted)
        if counted:
            await self._write_counts(counted, sections, cfg)
        tally.rejected = +tally.rejected  # drop zero counts
        return tally

    def stream(self, depth: int = STREAM_DEPTH) -> EventStream:
        """A stream's consecutive batches, recorded with up to `depth` in flight."""
        return EventStream(self, depth)

    def _known_sections(self, version: str) -> dict[str, tuple[str, ...]]:
        """Sections of the known, not taken-down articles seen lately (valid for this version
        and live-state epoch only)."""
        stamp = (version, self.reader.epoch)
        if self._sections_stamp != stamp or len(self._sections) > self.sections_entries:
            self._sections_stamp, self._sections = stamp, {}
        return self._sections

    def _validate(
        self,
        events: Sequence[pb.Event],
        now: float,
        cfg: VersionConfig,
        known: dict[str, tuple[str, ...]],
        rejected: Counter[str],
    ) -> tuple[list[EventRow], set[str]]:
        """Events that pass every check but the article lookup, as rows; and the article ids
        among them this process has yet to look up. Checks (and reasons) in this order:
        malformed_id, bad_session_id, bad_type, too_old, in_future, unknown_article (taken
        down); an id in `known` is well-formed, known and not taken down."""
        oldest, newest = now - cfg.window, now + MAX_FUTURE_SECONDS
        deleted = self.reader.deleted
        kinds = _KIND_OF_TYPE
        valid: list[EventRow] = []
        unseen: set[str] = set()
        for event in events:
            aid = event.article_id
            session = event.session_id
            if aid not in known and not is_valid_id(aid):
                rejected["malformed_id"] += 1
                continue
            if session and not is_valid_id(session):
                rejected["bad_session_id"] += 1
                continue
            kind = kinds.get(event.type)
            if kind is None:
                rejected["bad_type"] += 1
                continue
            if event.HasField("ts"):
                stamp = event.ts  # as Timestamp.ToNanoseconds() / 1e9, without its call
                ts = (stamp.seconds * 1_000_000_000 + stamp.nanos) / 1e9
                if ts < oldest:
                    rejected["too_old"] += 1
                    continue
                if ts > newest:
                    rejected["in_future"] += 1
                    continue
            else:
                ts = now
            if aid not in known:
                if aid in deleted:
                    rejected["unknown_article"] += 1
                    continue
                unseen.add(aid)
            valid.append((aid, ts, kind, session))
        return valid, unseen

    async def _dedup_clicks(self, events: list[EventRow], dedup: float) -> list[EventRow]:
        """Keep impressions, session-less clicks, and a session's first click on an article in
        each dedup period (a reader reloading a page is one reader). One script call per dedup
        set, its members packed in one argument."""
        period = max(1, int(dedup))
        groups: dict[tuple[int, int], dict[str, int]] = {}  # (period, shard) -> pair -> event
        checked = 0
        for n, (aid, ts, kind, session) in enumerate(events):
            if kind == CLICK and session:
                checked += 1
                group_key = (int(ts) // period * period, keys.dedup_shard(session))
                group = groups.get(group_key)
                if group is None:
                    group = groups[group_key] = {}
                group.setdefault(f"{session} {aid}", n)
        if not checked:
            return events
        order = list(groups.items())
        replies = await self.reader.run(
            lambda p: [
                p.eval(
                    scripts.ADD_NEW_MEMBERS,
                    1,
                    self.keys.seen(start, shard),
                    keys.dedup_ttl(period),
                    scripts.pack_members(members),
                )
                for (start, shard), members in order
            ]
        )
        fresh: set[int] = set()
        for (_, members), added in zip(order, replies, strict=True):
            flags = added.decode() if isinstance(added, bytes) else str(added)
            fresh.update(n for n, flag in zip(members.values(), flags, strict=True) if flag == "1")
        if len(fresh) == checked:
            return events
        return [e for n, e in enumerate(events) if e[2] != CLICK or not e[3] or n in fresh]

    async def _write_counts(
        self, events: list[EventRow], sections: dict[str, tuple[str, ...]], cfg: VersionConfig
    ) -> None:
        """One pipeline: one script call per counter hash, and one stream entry for the batch."""
        per_key = counter_increments(events, sections, self.keys, cfg.scoring)
        ttl = keys.counter_ttl(cfg.window)
        entry = {keys.EVENTS_FIELD: codec.encode_event_batch(events)}

        def build(pipe: Any) -> None:
            for key, pieces in per_key.items():
                pipe.eval(scripts.INCREMENT_FIELDS, 1, key, ttl, scripts.pack_increments(pieces))
            pipe.xadd(self.keys.events, entry, maxlen=self.stream_max_batches, approximate=True)

        await self.reader.run(build)


class EventStream:
    """The batches of one client stream: each is recorded as RecordEvents records a call, with
    up to `depth` in flight, so one batch's Redis round trips overlap the next one's reading and
    validation. Use as `async with writer.stream() as s: await s.submit(batch)`; on leaving the
    block every batch has been written (also when the block raises) and `tally` sums them."""

    def __init__(self, writer: EventWriter, depth: int = STREAM_DEPTH) -> None:
        self.writer = writer
        self.depth = max(1, depth)
        self.tally = EventTally()
        self._in_flight: deque[asyncio.Task[EventTally]] = deque()

    async def submit(self, events: Sequence[pb.Event]) -> None:
        """Start recording a batch; waits only when `depth` batches are already in flight."""
        self._in_flight.append(asyncio.ensure_future(self.writer.record_events(events)))
        queue = self._in_flight
        while queue and (len(queue) >= self.depth or queue[0].done()):
            self.tally.add(await queue.popleft())

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, kind: object, error: object, trace: object) -> None:
        pending, self._in_flight = list(self._in_flight), deque()
        results = await asyncio.gather(*pending, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for result in results:
            if isinstance(result, EventTally):
                self.tally.add(result)
        if failures and error is None:
            raise failures[0]
