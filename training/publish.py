"""Versions in Redis: publish a model folder's keys and flip the live pointer last (under the
training lock), roll back, list, delete a killed run's leftovers at once, and keep the newest
versions for rollback. Imports no training stack: `newsrec publish` runs on a serving image."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from tqdm import tqdm

from recommender.store import codec
from recommender.store.cluster import get_many, set_many
from recommender.store.codec import text
from recommender.store.keys import Keys
from recommender.store.vectors import read_chunks
from training.lock import RunLock, flip_pointer
from training.modeldir import RECORDS, remove_version_files

PIPELINE_BYTES = 64 << 20
"""A publish round trip (one MSET) carries at most about this many bytes of values."""


@dataclass(frozen=True)
class PublishOptions:
    """How to write a version: keys per MSET, a progress bar, the lock the flip must hold."""

    batch_size: int = 1000
    progress: bool = False
    lock: RunLock | None = None


def new_version(now: float | None = None) -> str:
    """Sortable, unique: UTC time to the millisecond plus a random suffix."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return (
        moment.strftime("%Y%m%dT%H%M%S")
        + f"{moment.microsecond // 1000:03d}Z-"
        + (secrets.token_hex(3))
    )


def folder_records(folder: Path, keys: Keys, version: str) -> Iterator[tuple[str, bytes]]:
    """Every versioned key of a model folder with its value, as first published."""
    builders: dict[bytes, Callable[[str, Any], str]] = {
        b"art": keys.article, b"rel": keys.related, b"pop": keys.popular,
        b"popw": lambda v, name: keys.popular_window(v, name[0], name[1]),
        b"why": keys.explanation,
    }  # fmt: skip
    with (folder / RECORDS).open("rb") as handle:
        for line in handle:
            kind, name, value = line.rstrip(b"\n").split(b"\t", 2)
            yield builders[kind](version, json.loads(name)), value
    vectorizer = (folder / "vectorizer.json").read_bytes()
    if vectorizer:
        yield keys.vectorizer(version), vectorizer
    if (folder / "vectors.npz").is_file():
        for n, chunk in enumerate(read_chunks(folder / "vectors.npz")):
            yield keys.vectors_chunk(version, n), chunk


def mark_pending(client: redis.Redis, keys: Keys, version: str) -> None:
    """Record a version as being trained or written (under the lock: its leftovers if killed)."""
    client.zadd(keys.pending, {version: time.time()})


def publish_folder(
    client: redis.Redis,
    keys: Keys,
    folder: Path,
    meta: dict[str, Any],
    options: PublishOptions = PublishOptions(),
) -> str:
    """Write a model folder's keys, then make it live with one SET of the pointer.

    Until that SET, readers keep resolving the old version; a run killed before it leaves the
    old version live and its partial keys marked pending, for the next run to delete.
    """
    version = str(meta["version"])
    if client.exists(keys.meta(version)):
        raise ValueError(f"version {version} is already published")
    mark_pending(client, keys, version)
    total = int(meta.get("records", 0)) + 1 + int(meta.get("vector_chunks", 0))
    bar = tqdm(total=total, desc="publish", unit="key", disable=not options.progress)
    # One MSET per batch: a quarter of the client time of as many pipelined SETs (on a
    # cluster, one MSET per slot, pipelined per node: the version's keys spread over them all).
    batch: dict[str, bytes] = {}
    batch_bytes = 0
    for key, value in folder_records(folder, keys, version):
        batch[key] = value
        batch_bytes += len(value)
        # Bounded by bytes too: a batch of 32 MB corpus chunks would hold GBs in the client.
        if len(batch) == options.batch_size or batch_bytes >= PIPELINE_BYTES:
            set_many(client, batch)
            bar.update(len(batch))
            batch, batch_bytes = {}, 0
    if batch:
        set_many(client, batch)
    bar.update(max(0, total - bar.n))
    bar.close()
    client.set(keys.meta(version), codec.encode_meta(meta))
    flip_pointer(client, keys, version, options.lock, new=True)  # now readers see it
    return version


def live_version(client: redis.Redis, keys: Keys) -> str | None:
    """The version readers resolve now."""
    raw = client.get(keys.pointer)
    return text(raw) if raw is not None else None


def published_versions(client: redis.Redis, keys: Keys) -> list[str]:
    """Published versions, oldest first."""
    return [text(v) for v in client.zrange(keys.versions, 0, -1)]


def pending_versions(client: redis.Redis, keys: Keys) -> list[str]:
    """Versions being written (or abandoned by a killed run), oldest first."""
    return [text(v) for v in client.zrange(keys.pending, 0, -1)]


def rollback(
    client: redis.Redis, keys: Keys, to: str | None = None, lock: RunLock | None = None
) -> str:
    """Point readers at `to`, or at the version published before the live one."""
    versions = published_versions(client, keys)
    live = live_version(client, keys)
    if to is None:
        older = [v for v in versions if live is None or v < live]
        if not older:
            raise ValueError(
                f"no published version older than the live one ({live}) to roll "
                f"back to; kept versions: {versions or 'none'}"
            )
        to = older[-1]
    elif to not in versions:
        raise ValueError(f"version {to!r} is not published; kept versions: {versions or 'none'}")
    flip_pointer(client, keys, to, lock)
    return to


def delete_version(client: redis.Redis, keys: Keys, version: str, batch: int = 1000) -> int:
    """Remove every key of a version with SCAN + UNLINK (never KEYS); returns keys removed. On
    a cluster, redis-py SCANs every primary and splits each UNLINK by slot."""
    removed = 0
    chunk: list[bytes] = []
    for key in client.scan_iter(match=keys.version_prefix(version) + "*", count=batch):
        chunk.append(key)
        if len(chunk) >= batch:
            removed += int(client.unlink(*chunk))
            chunk = []
    if chunk:
        removed += int(client.unlink(*chunk))
    client.zrem(keys.versions, version)
    client.zrem(keys.pending, version)
    return removed


def prune(client: redis.Redis, keys: Keys, keep: int) -> list[str]:
    """Keep the newest `keep` published versions (always the live one); delete the rest."""
    live = live_version(client, keys)
    versions = published_versions(client, keys)
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != live]
    for version in doomed:
        delete_version(client, keys, version)
    return doomed


def remove_leftovers(
    client: redis.Redis, keys: Keys, model_dir: Path | None, keep_folder: str = ""
) -> list[str]:
    """Delete every pending version's keys, and its folders under model_dir (but keep_folder's):
    with the lock held, no other run is writing one, so each is a killed run's leftover."""
    kept = kept_versions(client, keys)
    doomed = [v for v in pending_versions(client, keys) if v not in kept]
    for version in doomed:
        delete_version(client, keys, version)
        if model_dir is not None and version != keep_folder:
            remove_version_files(model_dir, version)
    return doomed


def kept_versions(client: redis.Redis, keys: Keys) -> set[str]:
    """Versions Redis still publishes (the kept ones and the live one): their folders stay."""
    live = live_version(client, keys)
    return set(published_versions(client, keys)) | ({live} if live else set())


def version_meta(client: redis.Redis, keys: Keys, versions: list[str]) -> list[dict[str, Any]]:
    """Each version's manifest summary as published ({} where none is)."""
    raws = get_many(client, [keys.meta(v) for v in versions])
    return [codec.decode_meta(bytes(raw)) if raw else {} for raw in raws]


def live_articles(client: redis.Redis, keys: Keys) -> int | None:
    """How many articles the live version has (None: nothing is live), for the shrink gate."""
    live = live_version(client, keys)
    meta = version_meta(client, keys, [live])[0] if live else {}
    return int(meta["articles"]) if "articles" in meta else None
