"""Encode each article once: a store of sentence-embedding vectors keyed by content hash.

The store is a folder per model (<store>/<model slug>/) of shards, each a pair of .npy files
(16-byte content hashes, float32 rows), written through a temporary name and one rename so a
killed run never leaves half a shard. A nightly run encodes only articles whose text (or the
model) changed and reuses the rest; a new model name is a new folder, so changing the model
re-encodes everything. Shards are merged once there are more than MAX_SHARDS. Loaded without
pickle.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from recommender.domain import Article
from recommender.encoder import article_text, content_hash, load_encoder, model_slug

STORE_ENV = "NEWSREC_EMBEDDING_STORE"
DEFAULT_STORE = Path(".newsrec/embeddings")
MAX_SHARDS = 16
ENCODE_CHUNK = 512
"""Articles per encode call, so the progress bar moves."""
FLUSH_ARTICLES = 16_384
"""New vectors are stored every this many articles: a killed cold run keeps what it finished."""


def default_store() -> Path:
    """The store the settings name ($NEWSREC_EMBEDDING_STORE, else .newsrec/embeddings)."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


@dataclass(frozen=True)
class EncodeStats:
    """What an encode stage did, for the summary and the manifest."""

    reused: int
    encoded: int
    seconds: float


class EmbeddingStore:
    """Vectors of one model, keyed by content hash."""

    def __init__(self, root: Path, model: str) -> None:
        self.folder = root / model_slug(model)
        self.model = model

    def _shards(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name[: -len(".hashes.npy")] for p in self.folder.glob("*.hashes.npy"))

    def load(self) -> dict[bytes, NDArray[np.float32]]:
        """Every stored vector by hash (later shards win)."""
        found: dict[bytes, NDArray[np.float32]] = {}
        for shard in self._shards():
            try:
                hashes = np.load(self.folder / f"{shard}.hashes.npy", allow_pickle=False)
                rows = np.load(self.folder / f"{shard}.vectors.npy", allow_pickle=False)
            except FileNotFoundError:
                continue  # merged away by another job sharing the store: its copy is newer
            if len(hashes) != len(rows):
                continue  # not ours or damaged: its articles are simply encoded again
            found.update(zip((h.tobytes() for h in hashes), rows, strict=True))
        return found

    def add(self, hashes: Sequence[bytes], rows: NDArray[np.float32]) -> None:
        """Store new vectors as one shard; merge shards when there are too many."""
        if not len(hashes):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        self._write(name, _hash_array(hashes), rows.astype(np.float32, copy=False))
        shards = self._shards()
        if len(shards) > MAX_SHARDS:
            merged = self.load()
            self._write(
                name + "-merged",
                _hash_array(list(merged)),
                np.stack(list(merged.values())),
            )
            for shard in shards:
                for suffix in (".hashes.npy", ".vectors.npy"):
                    (self.folder / f"{shard}{suffix}").unlink(missing_ok=True)

    def _write(self, name: str, hashes: NDArray[np.uint8], rows: NDArray[np.float32]) -> None:
        # vectors first, hashes last: a shard counts once its hashes file exists
        for suffix, array in ((".vectors.npy", rows), (".hashes.npy", hashes)):
            partial = self.folder / f".{name}{suffix}"
            with partial.open("wb") as out:
                np.save(out, array, allow_pickle=False)
            os.replace(partial, self.folder / f"{name}{suffix}")


def _hash_array(hashes: Sequence[bytes]) -> NDArray[np.uint8]:
    """Hashes as an (n, 16) uint8 array ("S16" would strip trailing NUL bytes)."""
    return np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), 16)


def embed_articles(
    articles: Sequence[Article],
    model: str,
    store_root: Path | None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[NDArray[np.float32], EncodeStats]:
    """Every article's vector, from the store where its text was encoded before, else encoded
    now (and stored). Rows are L2-normalised float32, in the order of `articles`."""
    started = time.perf_counter()
    store = EmbeddingStore(store_root, model) if store_root is not None else None
    known = store.load() if store is not None else {}
    hashes = [content_hash(a, model) for a in articles]
    missing = [n for n, h in enumerate(hashes) if h not in known]
    if log is not None:
        log(f"embeddings: {len(articles) - len(missing):,} reused, {len(missing):,} to encode")
    fresh = _encode(articles, [(n, hashes[n]) for n in missing], model, store, progress)
    dims = fresh.shape[1] if len(missing) else (len(next(iter(known.values()))) if known else 0)
    rows = np.zeros((len(articles), dims), dtype=np.float32)
    fresh_at = dict(zip(missing, range(len(missing)), strict=True))
    for n, digest in enumerate(hashes):
        rows[n] = fresh[fresh_at[n]] if n in fresh_at else known[digest]
    stats = EncodeStats(len(articles) - len(missing), len(missing), time.perf_counter() - started)
    return rows, stats


def _encode(
    articles: Sequence[Article],
    which: list[tuple[int, bytes]],
    model: str,
    store: EmbeddingStore | None,
    progress: bool,
) -> NDArray[np.float32]:
    """Encode the articles at `which` (position, hash) in chunks, with a progress bar and ETA,
    storing every FLUSH_ARTICLES so a killed cold run keeps most of its work."""
    if not which:
        return np.zeros((0, 0), dtype=np.float32)
    encoder = load_encoder(model)
    parts: list[NDArray[np.float32]] = []
    unsaved: list[NDArray[np.float32]] = []  # encoded since the last flush, kept apart so a
    # flush copies only them (concatenating every part at each flush is quadratic at 1M)
    with tqdm(total=len(which), desc="encode", unit="article", disable=not progress) as bar:
        for start in range(0, len(which), ENCODE_CHUNK):
            chunk = which[start : start + ENCODE_CHUNK]
            rows = encoder.encode([article_text(articles[n]) for n, _ in chunk])
            parts.append(rows)
            unsaved.append(rows)
            bar.update(len(chunk))
            done = start + len(chunk)
            count = sum(len(u) for u in unsaved)
            if store is not None and (count >= FLUSH_ARTICLES or done == len(which)):
                store.add([h for _, h in which[done - count : done]], np.concatenate(unsaved))
                unsaved = []
    return np.concatenate(parts)
