"""An event batch on Redis Cluster: the same writes as the one RECORD_BATCH script makes on a
single Redis, in steps that each touch one slot, since a batch's dedup sets, counter hashes,
stream and reply record hash to different slots (and must: one slot would hold every event).

1. With a batch_id, GET its reply record: a batch recorded before is answered from it.
2. Per dedup set, one DEDUP_SET script (check and add atomically), all in one pipeline.
3. The counters (HINCRBYFLOAT, each hash's EXPIRE), the stream entry and the reply record, in
   one pipeline. redis-py's cluster pipeline sends each node its commands; it is not atomic.

The counts, stream entry and reply equal the script's to the bit: the same float arithmetic,
and numbers the script computed go to HINCRBYFLOAT formatted as Redis formats a Lua number
(%.17g). Unlike the script, a failure between steps can leave part of a batch written: its
reply record is written last, so a retry with the batch_id writes it again (its clicks whose
pairs step 2 had added then count as deduplicated)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recommender.live.counters import CounterPlan
from recommender.reader import Reader
from recommender.store import codec, keys, scripts
from recommender.store.codec import BatchReply


@dataclass(frozen=True)
class ClusterBatch:
    """A checked batch's writes, as EventWriter._write prepared them."""

    batch_key: str
    """Its reply record ("" without a batch_id)."""
    batch_ttl: int
    dedup_ttl: int
    counter_ttl: int
    stream_cap: int
    counted: int
    """Rows that count whatever happens (first in the stream entry)."""
    duplicates: int
    """Clicks repeating an earlier one of the batch."""
    sets: Sequence[str]
    sizes: Sequence[int]
    members: Sequence[str]
    plan: CounterPlan
    totals: Sequence[float]
    rejections: str
    rows: bytes
    """The stream entry's rows (codec.encode_event_batch)."""


async def record_on_cluster(
    reader: Reader, names: keys.Keys, batch: ClusterBatch
) -> tuple[bool, BatchReply]:
    """Write a batch in single-slot steps; returns (replayed, reply) as the script would."""
    if batch.batch_key:
        (stored,) = await reader.run(lambda p: p.get(batch.batch_key))
        if stored is not None:
            return True, codec.decode_batch_reply(stored)
    repeats = await _deduplicate(reader, batch)
    accepted = batch.counted + len(batch.members) - len(repeats)
    reply = codec.encode_batch_reply(accepted, batch.duplicates + len(repeats), batch.rejections)
    increments = counter_increments(batch.plan, batch.totals, repeats, batch.counted)

    def build(pipe: Any) -> None:
        touched: dict[str, None] = {}
        for key, article, amount in increments:
            pipe.hincrbyfloat(key, article, amount)
            touched[key] = None
        for key in touched:
            pipe.expire(key, batch.counter_ttl)
        if accepted > 0:
            entry: dict[str, bytes | str] = {keys.EVENTS_FIELD: batch.rows}
            if repeats:
                entry[keys.SKIPPED_FIELD] = " ".join(str(batch.counted + c) for c in repeats)
            pipe.xadd(names.events, entry, maxlen=batch.stream_cap, approximate=True)
        if batch.batch_key:
            pipe.set(batch.batch_key, reply, ex=batch.batch_ttl)

    await reader.run(build)
    return False, codec.decode_batch_reply(reply)


async def _deduplicate(reader: Reader, batch: ClusterBatch) -> list[int]:
    """Positions (in `members`) of the pending clicks whose pair a dedup set already held."""
    if not batch.sets:
        return []
    groups, first = [], 0
    for size in batch.sizes:
        groups.append(batch.members[first : first + size])
        first += size

    def build(pipe: Any) -> None:
        for key, group in zip(batch.sets, groups, strict=True):
            pipe.eval(scripts.DEDUP_SET, 1, key, batch.dedup_ttl, scripts.pack_lines(group))

    flags = [int(f) for fresh in await reader.run(build) for f in fresh]
    return [c for c, new in enumerate(flags) if not new]


def counter_increments(
    plan: CounterPlan, totals: Sequence[float], repeats: Sequence[int], counted: int
) -> list[tuple[str, str, str]]:
    """(hash, article, amount) per counter cell, as RECORD_BATCH computes them: a slot's total
    as Python formatted it, or for a slot with repeats its total less their template weights
    (its base weight once none of its pending events counted), as Lua formats a number."""
    amounts: list[str | float] = [repr(t) for t in totals]
    if repeats:
        removed: dict[int, float] = {}
        waiting = list(plan.waiting)
        template_of = plan.template_of[counted:]
        for c in repeats:
            for slot, weight in plan.templates[template_of[c]]:
                removed[slot] = removed.get(slot, 0) + weight
                waiting[slot] -= 1
        for slot, minus in removed.items():
            amounts[slot] = totals[slot] - minus if waiting[slot] > 0 else plan.base[slot]
    increments = []
    for (article, where), amount in zip(plan.slots, amounts, strict=True):
        if isinstance(amount, float):
            if not amount > 0:
                continue
            amount = f"{amount:.17g}"
        increments += [(plan.keys[k], article, amount) for k in where]
    return increments
