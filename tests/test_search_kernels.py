"""The compiled inner loops of the pruned search against plain scipy/numpy references: pair dot
products (grouped or not), index candidates (query pruning, top-m selection with ties, self and
zero scores left out), and the same answers from two threads at once (per-thread scratch)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from tests.helpers import random_rows
from training.search.index import build_index, keep_top_per_row
from training.search.kernels import index_candidates, pair_dots


def test_pair_dots_match_scipy_in_any_order() -> None:
    x = random_rows(300, 400, 0.05, seed=11)
    rng = np.random.default_rng(12)
    left = rng.integers(0, 300, 5_000)  # not grouped: each change of left row re-scatters
    right = rng.integers(0, 300, 5_000)
    expected = np.asarray(x[left].multiply(x[right]).sum(axis=1)).ravel()
    np.testing.assert_allclose(pair_dots(x, left, right), expected, rtol=1e-5, atol=1e-7)
    grouped = np.sort(left)
    expected = np.asarray(x[grouped].multiply(x[right]).sum(axis=1)).ravel()
    np.testing.assert_allclose(pair_dots(x, grouped, right), expected, rtol=1e-5, atol=1e-7)
    assert pair_dots(x, left[:0], right[:0]).shape == (0,)


def reference_candidates(
    x: sp.csr_matrix, index: sp.csr_matrix, query_terms: int, want: int
) -> list[NDArray[np.float32]]:
    """Per row, the sorted approximate scores of its `want` best other rows (numpy/scipy)."""
    approx = (keep_top_per_row(x, query_terms) @ index).toarray()
    np.fill_diagonal(approx, 0.0)
    return [np.sort(row[row != 0])[::-1][:want] for row in approx]


def test_index_candidates_are_the_best_approximate_scores() -> None:
    x = random_rows(400, 300, 0.06, seed=13)
    x.sort_indices()
    index = build_index(x, doc_terms=8, postings=20)
    approx = (keep_top_per_row(x, 5) @ index).toarray()
    found = index_candidates(x, index, query_terms=5, want=12, start=0, stop=400)
    assert found.shape == (400, 12)
    expected = reference_candidates(x, index, 5, 12)
    for row, (cand, best) in enumerate(zip(found, expected, strict=True)):
        real = cand[cand >= 0]
        assert len(real) == len(best) and len(set(real.tolist())) == len(real)
        assert row not in real
        # Scores, not ids: rows tied at the cut may be either.
        np.testing.assert_allclose(np.sort(approx[row, real])[::-1], best, rtol=1e-5)
        assert (cand[len(real) :] == -1).all()


def test_index_candidates_ties_and_a_block_of_rows() -> None:
    # Eight identical rows: every other one ties; a block of rows 3..6 only.
    x = sp.csr_matrix(np.ones((8, 4), dtype=np.float32) / 2)
    index = build_index(x, doc_terms=4, postings=8)
    found = index_candidates(x, index, query_terms=2, want=3, start=3, stop=6)
    assert found.shape == (3, 3)
    for offset, cand in enumerate(found):
        assert len(set(cand.tolist())) == 3 and 3 + offset not in cand and (cand >= 0).all()
    assert index_candidates(x, index, query_terms=2, want=0, start=0, stop=8).shape == (8, 0)
    lonely = sp.csr_matrix(np.eye(3, dtype=np.float32))  # no row shares a term: no candidates
    assert (index_candidates(lonely, build_index(lonely, 3, 3), 3, 2, 0, 3) == -1).all()


def test_two_threads_get_the_same_answers() -> None:
    x = random_rows(2_000, 500, 0.04, seed=14)
    x.sort_indices()
    index = build_index(x, doc_terms=10, postings=50)
    alone = index_candidates(x, index, 10, 20, 0, 2_000)
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda s: index_candidates(x, index, 10, 20, s, s + 500),
                              range(0, 2_000, 500)))  # fmt: skip
    np.testing.assert_array_equal(np.vstack(parts), alone)
