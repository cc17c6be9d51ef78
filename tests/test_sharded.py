"""The sharded pruned search (training/search/sharded.py): one shard is the pruned search itself;
several keep the output contract, score exactly, respect the candidate mask and find at least
what the unsharded search finds. (On a dask cluster: tests/test_dask.py.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.typing import NDArray

from tests.test_neighbours import check_contract, recall_at, training_vectors
from training.demo.generate import DemoSpec, generate
from training.related.params import RelatedParams
from training.search.neighbours import search
from training.search.pruned import PrunedParams, pruned_search
from training.search.rows import SearchRows
from training.search.sharded import sharded_search

Vectors = tuple[sp.csr_matrix, NDArray[np.float32]]


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Vectors:
    """A 2,000-article generated corpus as training rows (TF-IDF and LSA parts, scaled)."""
    folder = tmp_path_factory.mktemp("sharded")
    generate(folder, DemoSpec(articles=2000, clicks_per_article=0))
    sparse, dense = training_vectors(folder / "articles.jsonl")[0]
    assert dense is not None
    return sparse, dense


@pytest.fixture(scope="module")
def allowed() -> NDArray[np.bool_]:
    mask = np.ones(2000, dtype=bool)
    mask[::7] = False
    return mask


def test_one_shard_is_the_pruned_search(vectors: Vectors, allowed: NDArray[np.bool_]) -> None:
    sparse, dense = vectors
    data = SearchRows.of(sparse, dense, None, allowed)
    params = PrunedParams(block=128)
    expected = pruned_search(data, 20, params, n_jobs=2)
    found = sharded_search(data, 20, params, n_jobs=2)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_allclose(found[1], expected[1], rtol=0, atol=1e-6)


def test_three_shards_find_what_one_index_finds(
    vectors: Vectors, allowed: NDArray[np.bool_]
) -> None:
    sparse, dense = vectors
    exact, _ = search(sparse, 20, dense, None, method="exact", allowed=allowed)
    whole, _ = search(sparse, 20, dense, None, method="pruned", allowed=allowed, block=128)
    indices, scores = search(sparse, 20, dense, None, method="pruned", allowed=allowed,
                             block=128, shards=3)  # fmt: skip
    check_contract(indices, scores, 20)
    assert allowed[indices[indices >= 0]].all(), "a masked row was listed"
    assert recall_at(indices, exact) >= recall_at(whole, exact) - 0.01 >= 0.8
    # Every score is the exact similarity of the pair, whichever shard scored it.
    rows, cols = np.nonzero(indices >= 0)
    pick = np.random.default_rng(0).choice(len(rows), 500, replace=False)
    left, right = rows[pick], indices[rows[pick], cols[pick]]
    truth = np.asarray(sparse[left].multiply(sparse[right]).sum(axis=1)).ravel()
    truth += np.einsum("ij,ij->i", dense[left], dense[right])
    np.testing.assert_allclose(scores[rows[pick], cols[pick]], truth, rtol=1e-5, atol=1e-6)


def test_more_shards_than_rows_and_tiny_inputs() -> None:
    x = sp.csr_matrix(np.eye(3, dtype=np.float32) + 0.5)
    x = sp.csr_matrix(x / np.linalg.norm(x.toarray(), axis=1, keepdims=True))
    indices, scores = search(x, 2, method="pruned", shards=8)
    check_contract(indices, scores, 2)
    assert (indices >= 0).all()


def test_shard_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="search_shards >= 1"):
        replace(RelatedParams(), search_shards=0)
    with pytest.raises(ValueError, match="knobs out of range"):
        PrunedParams(shards=0)
