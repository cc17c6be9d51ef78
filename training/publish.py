"""Versioned model output: write model/<version>/ atomically, publish its keys to Redis, flip the
live pointer last, keep the newest versions for rollback and delete older ones."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis
from tqdm import tqdm

from recommender.domain import Article
from recommender.store import codec
from recommender.store.codec import Candidate, PopularList, text
from recommender.store.keys import Keys
from recommender.store.vectors import read_chunks
from training.related.lists import CandidateLists

PIPELINE_BYTES = 64 << 20
"""A publish round trip (one MSET) carries at most about this many bytes of values."""
STALE_PENDING_SECONDS = 6 * 3600.0
"""A version still pending after this long was left by a killed run and may be deleted."""


def new_version(now: float | None = None) -> str:
    """Sortable, unique: UTC time to the millisecond plus a random suffix."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return (
        moment.strftime("%Y%m%dT%H%M%S")
        + f"{moment.microsecond // 1000:03d}Z-"
        + (secrets.token_hex(3))
    )


@dataclass
class BuiltModel:
    """Everything a training run produced, ready to write and publish."""

    version: str
    articles: list[Article]
    related: Sequence[list[Candidate]]
    popular: dict[str, PopularList]
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    text_model: bytes = b""
    """The fitted TF-IDF vocabulary and idf as JSON (recommender.textmodel.TextModel)."""
    vectors_path: Path | None = None
    """The .npz of TF-IDF rows, ids, K-th related scores and the LSA part
    (store.vectors.write_vectors): what live upserts score against on any replica, and the
    model's vectors on disk. Moved into the model folder as vectors.npz, and published to Redis
    from there in chunks."""


def write_model_dir(model: BuiltModel, model_dir: Path) -> Path:
    """Write model_dir/<version>/ through a hidden temporary folder and one rename, so a folder
    with a version name is always complete; a failure removes the temporary folder."""
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / model.version
    partial = model_dir / f".partial-{model.version}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        _write_files(model, partial)
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if model.vectors_path is not None:
        model.vectors_path = final / "vectors.npz"
    return final


def _write_files(model: BuiltModel, folder: Path) -> None:
    """Every file of a model folder."""
    (folder / "vectorizer.json").write_bytes(model.text_model)
    if model.vectors_path is not None:
        shutil.move(str(model.vectors_path), folder / "vectors.npz")
    # Uncompressed: at a million articles zlib costs tens of seconds for a few hundred MB saved.
    np.savez(folder / "neighbours.npz", **model.arrays)  # type: ignore[arg-type]
    popular = {
        section: {"as_of": p.as_of, "items": p.items} for section, p in model.popular.items()
    }
    (folder / "popular.json").write_text(json.dumps(popular))
    (folder / "manifest.json").write_text(json.dumps(model.meta, indent=2, sort_keys=True))


def prune_model_dirs(model_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` version folders (names sort by time)."""
    versions = sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    removed = versions[:-keep] if keep > 0 else versions
    for path in removed:
        shutil.rmtree(path)
    return removed


def _records(model: BuiltModel, keys: Keys) -> Iterator[tuple[str, bytes]]:
    """Every versioned key of the model with its encoded value."""
    version = model.version
    related = (
        model.related.encoded()
        if isinstance(model.related, CandidateLists)
        else map(codec.encode_related, model.related)
    )
    for article, value in zip(model.articles, related, strict=True):
        yield keys.article(version, article.id), codec.encode_article(article)
        yield keys.related(version, article.id), value
    for section, popular in model.popular.items():
        yield keys.popular(version, section), codec.encode_popular(popular)
    if model.text_model:
        yield keys.vectorizer(version), model.text_model
    if model.vectors_path is not None:
        for n, chunk in enumerate(read_chunks(model.vectors_path)):
            yield keys.vectors_chunk(version, n), chunk


def publish(
    client: redis.Redis,
    keys: Keys,
    model: BuiltModel,
    batch_size: int = 1000,
    progress: bool = False,
) -> None:
    """Write the version's keys, then make it live with one SET of the pointer.

    Until that SET, readers keep resolving the old version; a run killed before it leaves the
    old version live and its partial keys marked pending, to be deleted by a later prune.
    """
    version = model.version
    if client.exists(keys.meta(version)):
        raise ValueError(f"version {version} is already published")
    client.zadd(keys.pending, {version: time.time()})
    chunks = model.meta.get("vector_chunks", 0)
    total = 2 * len(model.articles) + len(model.popular) + 1 + chunks
    bar = tqdm(total=total, desc="publish", unit="key", disable=not progress)
    # One MSET per batch: a quarter of the client time of as many pipelined SETs.
    batch: dict[str, bytes] = {}
    batch_bytes = 0
    for key, value in _records(model, keys):
        batch[key] = value
        batch_bytes += len(value)
        # Bounded by bytes too: a batch of 32 MB corpus chunks would hold GBs in the client.
        if len(batch) == batch_size or batch_bytes >= PIPELINE_BYTES:
            client.mset(batch)
            bar.update(len(batch))
            batch, batch_bytes = {}, 0
    if batch:
        client.mset(batch)
    bar.update(max(0, total - bar.n))
    bar.close()
    client.set(keys.meta(version), codec.encode_meta(model.meta))
    client.zadd(keys.versions, {version: time.time()})
    client.zrem(keys.pending, version)
    client.set(keys.pointer, version)  # the flip: from here on readers see the new version


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


def rollback(client: redis.Redis, keys: Keys, to: str | None = None) -> str:
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
    client.set(keys.pointer, to)
    return to


def delete_version(client: redis.Redis, keys: Keys, version: str, batch: int = 1000) -> int:
    """Remove every key of a version with SCAN + UNLINK (never KEYS); returns keys removed."""
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


def prune(client: redis.Redis, keys: Keys, keep: int, now: float | None = None) -> list[str]:
    """Keep the newest `keep` published versions (always the live one); delete the rest, and
    pending versions abandoned by killed runs."""
    now = time.time() if now is None else now
    live = live_version(client, keys)
    versions = published_versions(client, keys)
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != live]
    stale = client.zrangebyscore(keys.pending, "-inf", now - STALE_PENDING_SECONDS)
    doomed += [text(v) for v in stale]
    for version in doomed:
        delete_version(client, keys, version)
    return doomed
