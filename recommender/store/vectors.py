"""Vector blobs of the Redis store: a version's article vectors (an .npz split into values of a
few tens of MB) and an upserted article's vector. Loaded without pickle, so never runs code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

CHUNK_BYTES = 32 << 20
"""Vector blobs are split so no single Redis value grows past a few tens of MB."""


def write_vectors(
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


def chunk_count(size: int) -> int:
    """How many Redis values a vectors blob of `size` bytes takes."""
    return -(-size // CHUNK_BYTES)


def read_chunks(path: Path) -> Iterator[bytes]:
    """The vectors blob in a file, one Redis value at a time."""
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(CHUNK_BYTES), b"")


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
