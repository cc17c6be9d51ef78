"""The pruned index of the pruned search: each article's heaviest terms, each term's heaviest
articles (impact-ordered postings), built a bounded chunk at a time."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from training.search.blocks import PAD_BUDGET


def keep_top_per_row(matrix: sp.csr_matrix, m: int) -> sp.csr_matrix:
    """The matrix with only each row's m largest entries (rows stay in storage order)."""
    lens = np.diff(matrix.indptr)
    long_rows = np.flatnonzero(lens > m)
    if len(long_rows) == 0:
        return matrix
    # Rows sorted by length, then padded a chunk at a time to (rows x longest) for argpartition:
    # similar lengths keep the padding small whether rows are articles or long posting lists.
    long_rows = long_rows[np.argsort(lens[long_rows], kind="stable")]
    keep = np.ones(matrix.nnz, dtype=bool)
    start = 0
    while start < len(long_rows):
        widths = lens[long_rows[start:]]
        cells = np.arange(1, len(widths) + 1) * widths
        stop = start + max(1, int(np.searchsorted(cells, PAD_BUDGET, side="right")))
        rows = long_rows[start:stop]
        row_lens = lens[rows]
        first = matrix.indptr[rows]
        local = np.repeat(np.arange(len(rows)), row_lens)
        pos = np.arange(int(row_lens.sum())) - np.repeat(np.cumsum(row_lens) - row_lens, row_lens)
        source = np.repeat(first, row_lens) + pos
        padded = np.full((len(rows), int(row_lens.max())), -np.inf, dtype=np.float32)
        padded[local, pos] = matrix.data[source]
        best = np.argpartition(-padded, m - 1, axis=1)[:, :m]
        keep[source] = False
        keep[(first[:, None] + best).ravel()] = True
        start = stop
    kept = np.minimum(lens, m)
    indptr = np.concatenate([[0], np.cumsum(kept)]).astype(matrix.indptr.dtype)
    return sp.csr_matrix(
        (matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape, copy=False
    )


def build_index(
    x: sp.csr_matrix, doc_terms: int, postings: int, allowed: NDArray[np.bool_] | None = None
) -> sp.csr_matrix:
    """Term x article postings: each article's heaviest terms, each term's heaviest articles."""
    docs = keep_top_per_row(x, doc_terms)
    if allowed is not None:
        docs = sp.csr_matrix(sp.diags(allowed.astype(np.float32)) @ docs)
        docs.eliminate_zeros()
    return keep_top_per_row(docs.T.tocsr(), postings)
