"""Live reader events: validated, deduplicated per session (or per caller, for clicks without a
session), counted into the trending counters (recommender/live/counters.py) and appended to the
event stream the nightly job exports: all of a batch in one atomic script call, or none of it
(on Redis Cluster, in single-slot steps: live/cluster_events.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from recommender.config import Settings
from recommender.domain import CLICK, IMPRESSION, is_valid_id
from recommender.live.cluster_events import ClusterBatch, record_on_cluster
from recommender.live.config import VersionConfig
from recommender.live.counters import plan_counters
from recommender.reader import Reader
from recommender.store import codec, keys, scripts
from recommender.store.cluster import is_cluster
from recommender.store.codec import BatchReply, EventRow
from recommender.v1 import recommender_pb2 as pb
from recommender.validation import check_timestamp, valid_timestamp

MAX_FUTURE_SECONDS = 300.0
REJECTED_EVENTS_REPORTED = 100
"""Rejected events a reply lists one by one (its counts cover them all)."""


@dataclass
class EventTally:
    """What happened to a batch of events, or to the batches of a call."""

    accepted: int = 0
    deduplicated: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_events: list[tuple[int, int, str]] = field(default_factory=list)
    """(message, index, reason) of the first REJECTED_EVENTS_REPORTED rejected events."""
    replayed: int = 0

    def add(self, other: EventTally, message: int = 0, singles: bool = False) -> None:
        """Fold in the tally of the batch that is the call's `message`; with `singles`, that
        batch holds single-event messages starting at `message` (StreamEvents)."""
        self.accepted += other.accepted
        self.deduplicated += other.deduplicated
        self.rejected.update(other.rejected)
        self.replayed += other.replayed
        room = REJECTED_EVENTS_REPORTED - len(self.rejected_events)
        for _, index, reason in other.rejected_events[: max(0, room)]:
            self.rejected_events.append(
                (message + index, 0, reason) if singles else (message, index, reason)
            )

    @classmethod
    def of_reply(cls, reply: BatchReply, replayed: bool) -> EventTally:
        """A batch's tally from its (possibly stored) reply."""
        return cls(
            accepted=reply.accepted,
            deduplicated=reply.deduplicated,
            rejected=Counter(reply.rejected),
            rejected_events=[(0, n, reason) for n, reason in reply.rejected_events],
            replayed=int(replayed),
        )

    def response(self) -> pb.RecordEventsResponse:
        """As the API reports it."""
        return pb.RecordEventsResponse(
            accepted=self.accepted,
            deduplicated=self.deduplicated,
            rejected=sum(self.rejected.values()),
            rejected_reasons=dict(self.rejected),
            rejected_events=[
                pb.RejectedEvent(message=m, index=n, reason=r) for m, n, r in self.rejected_events
            ],
            replayed_batches=self.replayed,
        )


_KIND_OF_TYPE = {
    pb.EVENT_TYPE_UNSPECIFIED: CLICK,
    pb.EVENT_TYPE_CLICK: CLICK,
    pb.EVENT_TYPE_IMPRESSION: IMPRESSION,
}
"""Event types the API knows; any other number is rejected as "bad_type"."""

STREAM_DEPTH = 4
"""Batches of one stream in flight at once: while one waits on Redis, the next is validated."""


@dataclass
class Checked:
    """A batch after validation: the events that may count, as rows with their positions in
    the batch, and the rejected ones as (position, reason); the ids still to look up, and the
    live version, its parameters and the known articles' sections it was checked against."""

    version: str
    cfg: VersionConfig
    sections: dict[str, tuple[str, ...]]
    rows: list[EventRow] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    unseen: set[str] = field(default_factory=set)


class EventWriter:
    """Handles RecordEvents, StreamEvents and StreamEventBatches."""

    # Per event: a few attribute reads and dict lookups; everything else is per batch, per
    # article or per counter hash. Known articles' sections are cached for the live version and
    # live-state epoch (an upsert or takedown anywhere moves the epoch and empties the cache).

    def __init__(
        self,
        reader: Reader,
        stream_max_batches: int = 1_000_000,
        sections_entries: int = 200_000,
        batch_ttl: int = Settings.batch_id_ttl_seconds,
    ) -> None:
        self.reader = reader
        self.keys = reader.keys
        self.stream_max_batches = stream_max_batches
        self.sections_entries = sections_entries
        self.batch_ttl = batch_ttl
        self._sections: dict[str, tuple[str, ...]] = {}
        self._sections_stamp: tuple[str, int] | None = None

    async def record_events(
        self,
        events: Sequence[pb.Event],
        caller: str = "",
        batch_id: str = "",
        where: str = "",
    ) -> EventTally:
        """Validate, deduplicate and count one batch, all of it or (on an error) none of it.

        One script call (plus one read for article records this process has not seen yet).
        Rejected events never reach a key. `caller` (codec.caller_identity) stands in for the
        session of clicks without one; with a `batch_id`, a batch recorded before is answered
        from its stored reply and counts nothing again. `where` names the batch in errors.
        """
        if not events:
            return EventTally()
        return await self.record(await self.check(events, where), caller, batch_id)

    async def check(self, events: Sequence[pb.Event], where: str = "") -> Checked:
        """Validate a batch against the live version (InvalidRequest for an event `ts` outside
        protobuf's range, naming it after `where`), before anything is written."""
        version = await self.reader.live_version()
        cfg = await self.reader.config(version)
        await self.reader.ensure_synced()
        sections = self._known_sections(version)
        return self._validate(events, time.time(), Checked(version, cfg, sections), where)

    async def record(self, checked: Checked, caller: str = "", batch_id: str = "") -> EventTally:
        """Count a checked batch: look up the articles this process has not seen, then write."""
        sections = checked.sections
        if checked.unseen:
            ids = sorted(checked.unseen)
            records = await self.reader.articles(checked.version, ids)
            for aid, record in zip(ids, records, strict=True):
                if record is not None:
                    sections[aid] = record.sections
            self._drop_unknown(checked, sections)
        if not checked.rows and not batch_id:
            return EventTally.of_reply(_rejections_only(checked), replayed=False)
        replayed, reply = await self._write(checked, sections, checked.cfg, caller, batch_id)
        return EventTally.of_reply(reply, replayed)

    def stream(self, caller: str = "", depth: int = STREAM_DEPTH) -> EventStream:
        """A stream's consecutive batches, recorded with up to `depth` in flight."""
        return EventStream(self, caller, depth)

    def _known_sections(self, version: str) -> dict[str, tuple[str, ...]]:
        """Sections of the known, not taken-down articles seen lately (valid for this version
        and live-state epoch only)."""
        stamp = (version, self.reader.epoch)
        if self._sections_stamp != stamp or len(self._sections) > self.sections_entries:
            self._sections_stamp, self._sections = stamp, {}
        return self._sections

    def _validate(
        self, events: Sequence[pb.Event], now: float, checked: Checked, where: str
    ) -> Checked:
        """Events that pass every check but the article lookup; and the article ids among them
        this process has yet to look up. Checks (and reasons) in this order: malformed_id,
        bad_session_id, bad_type, too_old, in_future, unknown_article (taken down); an id in
        `checked.sections` is well-formed, known and not taken down. A `ts` outside protobuf's
        range is no event but a broken request: InvalidRequest."""
        oldest, newest = now - checked.cfg.window, now + MAX_FUTURE_SECONDS
        deleted = self.reader.deleted
        known = checked.sections
        kinds = _KIND_OF_TYPE
        rows, positions, rejected = checked.rows, checked.positions, checked.rejected
        for n, event in enumerate(events):
            if event.HasField("ts"):
                stamp = event.ts  # as Timestamp.ToNanoseconds() / 1e9, without its call
                if not valid_timestamp(stamp):
                    check_timestamp(stamp, f"{where}events[{n}].ts")
                ts = (stamp.seconds * 1_000_000_000 + stamp.nanos) / 1e9
            else:
                ts = now
            aid = event.article_id
            session = event.session_id
            if aid not in known and not is_valid_id(aid):
                rejected.append((n, "malformed_id"))
                continue
            if session and not is_valid_id(session):
                rejected.append((n, "bad_session_id"))
                continue
            kind = kinds.get(event.type)
            if kind is None:
                rejected.append((n, "bad_type"))
                continue
            if ts < oldest:
                rejected.append((n, "too_old"))
                continue
            if ts > newest:
                rejected.append((n, "in_future"))
                continue
            if aid not in known:
                if aid in deleted:
                    rejected.append((n, "unknown_article"))
                    continue
                checked.unseen.add(aid)
            rows.append((aid, ts, kind, session))
            positions.append(n)
        return checked

    @staticmethod
    def _drop_unknown(checked: Checked, known: dict[str, tuple[str, ...]]) -> None:
        """Reject the rows whose article the lookup did not find."""
        kept = [i for i, row in enumerate(checked.rows) if row[0] in known]
        if len(kept) == len(checked.rows):
            return
        gone = set(range(len(checked.rows))) - set(kept)
        checked.rejected += [(checked.positions[i], "unknown_article") for i in gone]
        checked.rejected.sort()
        checked.rows = [checked.rows[i] for i in kept]
        checked.positions = [checked.positions[i] for i in kept]

    async def _write(
        self,
        checked: Checked,
        sections: dict[str, tuple[str, ...]],
        cfg: VersionConfig,
        caller: str,
        batch_id: str,
    ) -> tuple[bool, BatchReply]:
        """The batch's one script call: dedup check-and-add, counters, stream entry and reply
        record, atomically (on Redis Cluster, the same writes in single-slot steps:
        live/cluster_events.py). Returns (replayed, reply)."""
        period = max(1, int(cfg.dedup))
        split = split_clicks(checked.rows, caller, period, self.keys)
        order = split.counted + split.waiting  # the stream entry's rows, in this order
        plan = plan_counters(
            [checked.rows[n] for n in order],
            [n >= len(split.counted) for n in range(len(order))],
            sections,
            self.keys,
            cfg.scoring,
        )
        rejections = _rejections_only(checked)
        totals = [b + p for b, p in zip(plan.base, plan.pending, strict=True)]
        rejected = codec.encode_batch_rejections(rejections.rejected, rejections.rejected_events)
        rows = codec.encode_event_batch([checked.rows[n] for n in order])
        if is_cluster(self.reader.client):  # a batch's keys span slots: single-slot steps
            batch = ClusterBatch(
                self.keys.batch(batch_id) if batch_id else "", self.batch_ttl,
                keys.dedup_ttl(period), keys.counter_ttl(cfg.window), self.stream_max_batches,
                len(split.counted), split.duplicates, split.sets, split.sizes, split.members,
                plan, totals, rejected, rows,
            )  # fmt: skip
            return await record_on_cluster(self.reader, self.keys, batch)
        args = [
            self.batch_ttl if batch_id else 0, len(split.sets), keys.dedup_ttl(period),
            keys.counter_ttl(cfg.window), self.stream_max_batches, len(split.counted),
            split.duplicates, rejected, *scripts.pack_slots(plan.slots, totals),
            *scripts.pack_fallbacks(plan.base, plan.waiting),
            scripts.pack_lines(split.members), " ".join(map(str, split.sizes)),
            " ".join(map(str, plan.template_of[len(split.counted) :])),
            scripts.pack_templates(plan.templates), rows, keys.EVENTS_FIELD, keys.SKIPPED_FIELD,
        ]  # fmt: skip
        batch_key = self.keys.batch(batch_id) if batch_id else self.keys.events
        script_keys = [self.keys.events, batch_key, *split.sets, *plan.keys]
        # Out of memory: Redis refuses the script at its first write, so nothing was written
        # (Reader.run raises StoreFull, RESOURCE_EXHAUSTED).
        (result,) = await self.reader.run(
            lambda p: p.eval(scripts.RECORD_BATCH, len(script_keys), *script_keys, *args)
        )
        replayed, raw = result
        return bool(int(replayed)), codec.decode_batch_reply(raw)


@dataclass
class ClickSplit:
    """A batch's rows by how they count: now (impressions; clicks with neither a session nor a
    caller), or once Redis says their (session, article) pair is new in its dedup set."""

    counted: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    """Rows of the pending clicks, grouped by dedup set (in `sets` order)."""
    members: list[str] = field(default_factory=list)
    """Their dedup members, in the same order."""
    sets: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    """Pending clicks per set."""
    duplicates: int = 0
    """Clicks that repeat an earlier click of the batch (same set and member)."""


def split_clicks(
    rows: Sequence[EventRow], caller: str, period: int, names: keys.Keys
) -> ClickSplit:
    """Sort a batch's rows into ClickSplit: a click's dedup set is its period's shard of the
    session (or, without one, of the caller)."""
    split = ClickSplit()
    groups: dict[tuple[int, int], dict[str, int]] = {}  # (period, shard) -> member -> row
    for n, (aid, ts, kind, session) in enumerate(rows):
        who = session or caller
        if kind != CLICK or not who:
            split.counted.append(n)
            continue
        group_key = (int(ts) // period * period, keys.dedup_shard(who))
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = {}
        member = codec.dedup_member(who, aid)
        if member in group:
            split.duplicates += 1
        else:
            group[member] = n
    for (start, shard), group in groups.items():
        split.sets.append(names.seen(start, shard))
        split.sizes.append(len(group))
        split.members += group
        split.waiting += group.values()
    return split


def _rejections_only(checked: Checked) -> BatchReply:
    """The reply of a batch as far as validation knows it: nothing counted yet."""
    return BatchReply(
        accepted=0,
        deduplicated=0,
        rejected=dict(Counter(reason for _, reason in checked.rejected)),
        rejected_events=checked.rejected[:REJECTED_EVENTS_REPORTED],
    )


class EventStream:
    """The batches of one client stream: each is recorded as RecordEvents records a call, with
    up to `depth` in flight, so one batch's Redis round trip overlaps the next one's reading and
    validation. Use as `async with writer.stream() as s: await s.submit(batch, n)`; on leaving
    the block every batch has been written (also when the block raises) and `tally` sums them."""

    def __init__(self, writer: EventWriter, caller: str = "", depth: int = STREAM_DEPTH) -> None:
        self.writer = writer
        self.caller = caller
        self.depth = max(1, depth)
        self.tally = EventTally()
        self._in_flight: deque[tuple[asyncio.Task[EventTally], int, bool]] = deque()

    async def submit(
        self,
        events: Sequence[pb.Event],
        message: int,
        batch_id: str = "",
        singles: bool = False,
        where: str = "",
    ) -> None:
        """Check the call's message `message` (with `singles`, the single-event messages from
        `message` on; `where` names it in errors) and start recording it; waits only when
        `depth` batches are already in flight. A bad message raises here, before any message
        after it is started."""
        checked = await self.writer.check(events, where)
        task = asyncio.ensure_future(self.writer.record(checked, self.caller, batch_id))
        self._in_flight.append((task, message, singles))
        queue = self._in_flight
        while queue and (len(queue) >= self.depth or queue[0][0].done()):
            done, first, many = queue.popleft()
            self.tally.add(await done, first, many)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, kind: object, error: object, trace: object) -> None:
        pending, self._in_flight = list(self._in_flight), deque()
        results = await asyncio.gather(*(t for t, _, _ in pending), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for result, (_, first, many) in zip(results, pending, strict=True):
            if isinstance(result, EventTally):
                self.tally.add(result, first, many)
        if failures and error is None:
            raise failures[0]
