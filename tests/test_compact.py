"""A writer's compact vectors (recommender/live/compact.py): the blob read in blocks equals the
blob, int8 rows and pruned postings stay within their stated error, and scoring candidates only
finds the lists a full scan finds."""

from __future__ import annotations

import gc
import io
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import recommender.live.vectors as vectors
from recommender.live.compact import Blob, Int8Rows, settle_heap
from recommender.live.idtable import IdTable
from recommender.live.postings import pruned_postings
from recommender.live.sketch import SketchIndex
from recommender.store.vectors import write_vectors
from tests.helpers import shared_file, trained_and_served
from training.related.params import RelatedParams
from training.sources.articles import read_articles


def _blob(matrix: sp.csr_matrix, extras: dict[str, np.ndarray]) -> Blob:
    out = io.BytesIO()
    ids = [f"a{n}" for n in range(matrix.shape[0])]
    write_vectors(out, ids, matrix, np.zeros(matrix.shape[0], np.float32), extras)
    out.seek(0)
    return Blob(out)


def _tfidf_like(rows: int, terms: int, seed: int = 1) -> sp.csr_matrix:
    """Random sparse rows, L2-normalised like TF-IDF rows; low term ids are common."""
    draw = np.random.default_rng(seed)
    matrix = sp.random(rows, terms, density=0.05, random_state=seed, format="csr",
                       dtype=np.float32)  # fmt: skip
    common = sp.csr_matrix(draw.random((rows, 5)) * (draw.random((rows, 5)) < 0.9))
    matrix = sp.hstack([common, matrix[:, 5:]], format="csr", dtype=np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    return sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-9)) @ matrix, dtype=np.float32)


def test_blob_blocks_read_back_every_member_exactly() -> None:
    dense = np.random.default_rng(2).standard_normal((1000, 7)).astype(np.float32)
    blob = _blob(_tfidf_like(50, 40), {"rows": dense, "terms": np.arange(9, dtype=np.int32)})
    for size in (1, 3, 1000, 5000):
        assert np.array_equal(np.concatenate(list(blob.blocks("extra_rows", size))), dense)
    assert np.array_equal(blob.array("extra_terms"), np.arange(9))
    codes = blob.int8_rows("extra_rows")
    assert codes.shape == (1000, 7) and codes.codes.dtype == np.int8


def test_int8_rows_keep_dot_products_within_two_thousandths() -> None:
    draw = np.random.default_rng(3)
    rows = draw.standard_normal((2000, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    query = rows[7] + 0.5 * rows[9]
    query /= np.linalg.norm(query)
    packed = Int8Rows.from_array(rows)
    everyone = np.arange(2000)
    error = np.abs(packed.dots(everyone, query) - rows @ query)
    assert error.max() < 2e-3 and error.mean() < 5e-4
    assert np.abs(packed.take(everyone) - rows).max() <= packed.scales.max() / 2 + 1e-7
    assert np.array_equal(np.argsort(-packed.dots(everyone, query))[:2], [7, 9])


def test_pruned_postings_keep_each_terms_heaviest_weights() -> None:
    matrix = _tfidf_like(3000, 400)
    postings = pruned_postings(_blob(matrix, {}), per_term=200)
    by_term = matrix.T.tocsr()
    for term in range(by_term.shape[0]):
        full = by_term.data[by_term.indptr[term] : by_term.indptr[term + 1]]
        kept = postings.weights[postings.indptr[term] : postings.indptr[term + 1]]
        if len(full) <= 200:
            assert len(kept) == len(full)  # short postings are whole
        else:  # long ones: at least 200 kept, every kept weight above every dropped one
            assert 200 <= len(kept) < len(full), term
            dropped = np.sort(full)[: len(full) - len(kept)]
            assert kept.astype(np.float32).min() >= dropped.max() * (1 - 1e-3)
    assert sum(by_term.indptr[1:] - by_term.indptr[:-1] > 200) == 5  # the common terms
    # Scores are the dot products over the kept postings (float16 weights: 1e-3 relative).
    row = matrix[11]
    kept = sp.csr_matrix(
        (postings.weights.astype(np.float32), postings.indices, postings.indptr),
        shape=(400, 3000),
    )
    expected = np.asarray(kept[row.indices].T @ row.data).ravel()
    scores = postings.scores(row.indices, row.data, extra=3)
    assert len(scores) == 3003 and not scores[3000:].any()  # room for live articles
    assert np.array_equal(np.flatnonzero(scores), np.flatnonzero(expected))
    assert np.allclose(scores[:3000], expected, atol=1e-5)


def test_candidates_find_the_full_scans_lists_on_real_news(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With candidates capped at 200 by words and 200 by meaning (18% of 2,225 BBC articles;
    a million-article writer looks at 0.6%), the top 10 are those of a full scan."""
    articles = read_articles(shared_file("bbc", "articles.jsonl")).articles
    _, index = trained_and_served(articles, RelatedParams(), tmp_path)
    queries = range(0, len(articles), 30)

    def top10() -> list[set[int]]:
        tops = []
        for row in queries:
            blended = index.score(index.vectorize(articles[row]), articles[row].id).dense()[0]
            tops.append(set(np.argsort(-blended)[:10].tolist()))
        return tops

    full = top10()
    monkeypatch.setattr(vectors, "CANDIDATES_BY_WORDS", 200)
    monkeypatch.setattr(vectors, "CANDIDATES_BY_MEANING", 200)
    capped = top10()
    overlap = np.mean([len(a & b) / 10 for a, b in zip(full, capped, strict=True)])
    assert overlap >= 0.95, overlap


def test_pruned_postings_find_the_tfidf_neighbours_of_real_news() -> None:
    """Capped at 200 postings a term (9% of 2,225 BBC articles; a million-article writer keeps
    2,000, 0.2%): 96% of the weights stay and the TF-IDF top 10 are nearly the exact ones."""
    from training.related.model import build_related

    articles = read_articles(shared_file("bbc", "articles.jsonl")).articles
    params = RelatedParams(lsa_weight=0, embedding_weight=0)
    matrix = build_related(articles, params, progress=False)[0].matrix.astype(np.float32)
    postings = pruned_postings(_blob(matrix, {}), per_term=200)
    assert 0.9 < len(postings.weights) / matrix.nnz < 1
    overlaps = []
    for row in range(0, len(articles), 10):
        exact = (matrix @ matrix[row].T).toarray().ravel()
        pruned = postings.scores(matrix[row].indices, matrix[row].data)
        exact[row] = pruned[row] = 0
        top = set(np.argsort(-exact)[:10]) & set(np.argsort(-pruned)[:10])
        overlaps.append(len(top) / 10)
    assert np.mean(overlaps) >= 0.93, np.mean(overlaps)


def test_sketch_index_finds_the_nearest_rows_reading_a_few_lists() -> None:
    """On clustered unit rows (as news embeddings are: stories of a topic lie together), the
    inverted-file sketch, reading about 4 x 300 of 20,000 rows a query, returns nearly every
    row a full exact scan ranks in the top 20."""
    draw = np.random.default_rng(5)
    centres = draw.standard_normal((60, 96)).astype(np.float32)
    rows = centres[draw.integers(0, 60, 20_000)] + 0.6 * draw.standard_normal((20_000, 96))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    index = SketchIndex.of(Int8Rows.from_array(rows))
    assert len(index.centroids) == 141 and sorted(index.order) == list(range(20_000))
    found = []
    for query in rows[::400]:
        picked = index.nearest(query, 300)
        assert len(picked) == 300 == len(set(picked.tolist()))
        exact = np.argsort(-(rows @ query))[:20]
        found.append(len(set(exact.tolist()) & set(picked.tolist())) / 20)
    assert np.mean(found) >= 0.9, np.mean(found)


def test_id_table_finds_every_id_and_no_other() -> None:
    ids = [f"art-{n}" for n in range(5000)] + ["é-ünïcode", "https://news.example/a?b=1"]
    table = IdTable.of(ids)
    assert len(table) == len(ids) and list(table) == ids
    assert table[-1] == ids[-1] and table[10:13] == ids[10:13]
    assert all(table.position(i) == n for n, i in enumerate(ids))
    assert table.position("art-5000") is None and "art-1" in table and "nope" not in table
    as_python = (
        sys.getsizeof(ids) + sys.getsizeof(dict.fromkeys(ids)) + sum(map(sys.getsizeof, ids))
    )
    assert table.nbytes < as_python / 3, (table.nbytes, as_python)  # a list and a dict of them


def test_settle_heap_freezes_what_is_alive_and_collects_what_is_not() -> None:
    """A loaded writer's objects go to the collector's permanent generation (a full collection
    of a million-article writer took ~50 ms); garbage is collected first, not frozen."""
    kept = [[n] for n in range(10_000)]
    cycle: list[object] = []
    cycle.append(cycle)
    reference = weakref.ref(_Node(cycle))  # unreachable once made: only a collection frees it
    settle_heap()
    try:
        assert reference() is None
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()


class _Node:
    def __init__(self, payload: object) -> None:
        self.payload, self.me = payload, self
