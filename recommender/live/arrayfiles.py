"""Where a writer keeps a version's compact arrays (recommender/live/vectors.py): .npy files it
maps read-only, or, with no folder configured, its own memory.

Mapped files live in the page cache: the kernel shares them between the writer processes of one
machine (a second writer maps the first one's files instead of building its own, and its first
upsert skips the blob) and can drop and re-read pages under memory pressure, so a writer's
private memory stays near its interpreter and encoder. A folder is built under a temporary
name and renamed when complete: another process sees a whole version's files or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

log = logging.getLogger("newsrec.live")

MANIFEST = "arrays.json"
"""Written last, inside the folder renamed into place: each array's shape and dtype."""
KEEP_FOLDERS = 3
"""Complete version folders kept per namespace (a rollback's target is usually among them)."""
FORMAT = b"2"
"""The arrays' layout: a folder built by a writer with another layout is never reused."""
STALE_BUILD_SECONDS = 6 * 3600.0
"""An unfinished build folder this old belongs to a killed process: it is removed."""


class ArrayStore:
    """Arrays named as they are built; in memory, or files under a folder when given one."""

    def __init__(self, building: Path | None = None) -> None:
        self.building = building
        self.arrays: dict[str, NDArray[Any]] = {}

    def empty(self, name: str, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        """A new array to fill in place (a writable mapping of its file, with a folder)."""
        if self.building is None or not int(np.prod(shape)):
            array: NDArray[Any] = np.empty(shape, dtype=dtype)
            if self.building is not None:  # an empty file cannot be mapped: it is final now
                np.save(self._path(name), array, allow_pickle=False)
        else:
            array = np.lib.format.open_memmap(self._path(name), "w+", np.dtype(dtype), shape)
        self.arrays[name] = array
        return array

    def put(self, name: str, array: NDArray[Any]) -> NDArray[Any]:
        """Keep a finished array (written to its file, with a folder)."""
        if self.building is not None:
            np.save(self._path(name), np.ascontiguousarray(array), allow_pickle=False)
        self.arrays[name] = array
        return array

    def _path(self, name: str) -> Path:
        assert self.building is not None
        return self.building / f"{name}.npy"


class ArrayFolder:
    """One version's folder of arrays under a writer's `writer_dir`/namespace, named by the
    version and a digest of its manifest and the layout (a version id reused on another Redis,
    or a folder of an older writer, never matches)."""

    def __init__(self, root: Path, namespace: str, version: str, meta: bytes) -> None:
        digest = hashlib.sha256(FORMAT + b"\0" + namespace.encode() + b"\0" + meta).hexdigest()
        digest = digest[:16]
        self.parent = root / _safe(namespace)
        self.final = self.parent / f"{_safe(version)}-{digest}"

    def open(self) -> dict[str, NDArray[Any]] | None:
        """The complete folder's arrays, mapped read-only; None if it is absent, or damaged
        (then it is removed, for the caller to build again)."""
        if not self.final.exists():
            return None
        try:
            manifest = json.loads((self.final / MANIFEST).read_text())
            arrays = {name: _load(self.final / f"{name}.npy") for name in manifest}
            for name, (shape, dtype) in manifest.items():
                if list(arrays[name].shape) != shape or str(arrays[name].dtype) != dtype:
                    raise ValueError(f"{name}.npy does not match the manifest")
        except (OSError, ValueError) as exc:
            log.warning("writer arrays in %s unusable (%s): building them again",
                        self.final, exc)  # fmt: skip
            shutil.rmtree(self.final, ignore_errors=True)
            return None
        return arrays

    def store(self) -> ArrayStore:
        """A store building into a new private folder beside the final one."""
        _private_dir(self.parent)
        building = self.parent / f".build-{self.final.name}-{os.getpid()}-{time.monotonic_ns()}"
        building.mkdir(mode=0o700)
        return ArrayStore(building)

    def finish(self, store: ArrayStore) -> dict[str, NDArray[Any]]:
        """Flush the store's files, move them into place and map them read-only; older
        version folders beyond KEEP_FOLDERS are removed (processes mapping them keep them)."""
        assert store.building is not None
        for array in store.arrays.values():
            if isinstance(array, np.memmap):
                array.flush()
        manifest = {n: [list(a.shape), str(a.dtype)] for n, a in store.arrays.items()}
        (store.building / MANIFEST).write_text(json.dumps(manifest))
        try:
            store.building.rename(self.final)
        except OSError:  # another writer finished the same version first: use its folder
            shutil.rmtree(store.building, ignore_errors=True)
        self._prune()
        arrays = self.open()
        if arrays is None:
            raise OSError(f"writer arrays in {self.final} could not be read back")
        return arrays

    def discard(self, store: ArrayStore) -> None:
        """Remove what is left of an unfinished build (nothing after `finish`)."""
        if store.building is not None and store.building.exists():
            shutil.rmtree(store.building, ignore_errors=True)

    def _prune(self) -> None:
        """Drop the oldest complete folders past KEEP_FOLDERS and builds left by killed runs."""
        now = time.time()
        done: list[tuple[float, Path]] = []
        for path in self.parent.iterdir():
            try:  # another writer may be pruning the same folder
                age = now - path.stat().st_mtime
            except OSError:
                continue
            if path.name.startswith(".build-"):
                if age > STALE_BUILD_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            elif path != self.final:
                done.append((now - age, path))
        for _, path in sorted(done)[: max(0, len(done) - (KEEP_FOLDERS - 1))]:
            shutil.rmtree(path, ignore_errors=True)


def _load(path: Path) -> NDArray[Any]:
    """A file's array mapped read-only, as a plain array over the mapping (np.memmap's
    slicing costs microseconds a call: milliseconds an upsert); read whole when empty."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)
    except ValueError:
        return np.load(path, allow_pickle=False)


def _safe(name: str) -> str:
    """A name usable as one path component."""
    kept = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".")
    return kept or "_"


def _private_dir(path: Path) -> None:
    """Create the folder for this user only; refuse one another user could write to (its
    arrays would be loaded as the version's)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(
            f"writer_dir folder {path} must belong to this user and not be writable by others"
        )
