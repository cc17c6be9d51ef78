"""The scaled vectorising pass equals the plain scikit-learn computation it replaces, and the
array-backed related lists equal the per-row rule they encode."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from recommender.domain import Article
from recommender.store import codec
from recommender.textmodel import document_text
from tests.corpus import make_articles
from tests.helpers import as_articles
from training.memory import tree_rss_mb
from training.related.duplicates import duplicate_counts
from training.related.lists import CandidateLists, Neighbours, related_lists
from training.related.params import RelatedParams, make_vectorizer
from training.related.vectorise import vectorise


def corpus() -> list[Article]:
    return as_articles(make_articles(per_topic=30))


def same_sparse(a: object, b: object) -> bool:
    diff = abs(a - b)  # type: ignore[operator]
    return bool(diff.max() < 1e-6) if diff.nnz else True


def test_small_corpus_is_one_scikit_learn_fit() -> None:
    articles, params = corpus(), RelatedParams()
    got = vectorise(articles, make_vectorizer(params, len(articles)), 1)
    texts = [document_text(a, 1) for a in articles]
    reference = make_vectorizer(params, len(articles))
    assert same_sparse(got.tfidf, reference.fit_transform(texts))
    assert got.vectorizer.vocabulary_ == reference.vocabulary_
    assert same_sparse(got.counts, duplicate_counts(texts))
    assert getattr(got.vectorizer, "stop_words_", None) is None  # pruned terms are not kept


@pytest.mark.slow
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_large_corpus_fits_on_a_sample_and_transforms_in_chunks(n_jobs: int) -> None:
    articles, params = corpus(), RelatedParams(title_weight=2)
    bodies = [a.body for a in articles]
    got = vectorise(
        articles, make_vectorizer(params, len(articles)), 2, release_text=True,
        n_jobs=n_jobs, fit_rows=50, chunk_rows=7,
    )  # fmt: skip
    originals = [
        Article(a.id, a.title, body, a.sections, a.tags)
        for a, body in zip(articles, bodies, strict=True)
    ]
    sample = np.unique(np.linspace(0, len(articles) - 1, 50).astype(np.int64))
    reference = make_vectorizer(params, len(articles))
    reference.fit([document_text(originals[i], 2) for i in sample])
    assert got.vectorizer.vocabulary_ == reference.vocabulary_
    assert np.allclose(got.vectorizer.idf_, reference.idf_)
    assert got.tfidf.shape[0] == len(articles)
    assert same_sparse(got.tfidf, reference.transform([document_text(a, 2) for a in originals]))
    assert same_sparse(got.counts, duplicate_counts([document_text(a, 1) for a in originals]))
    assert all(a.body == "" for a in articles)  # released, everything else kept
    assert [a.title for a in articles] == [a.title for a in originals]


def reference_lists(
    neighbours: Neighbours, groups: np.ndarray, top_k: int
) -> list[list[tuple[int, float]]]:
    """The rule, one row at a time: skip the own group and repeated groups, keep order."""
    result: list[list[tuple[int, float]]] = []
    for row, (idx, sc) in enumerate(zip(neighbours.indices, neighbours.scores, strict=True)):
        seen, chosen = {int(groups[row])}, list[tuple[int, float]]()
        for j, s in zip(idx.tolist(), sc.tolist(), strict=True):
            if j < 0 or len(chosen) == top_k:
                break
            if int(groups[j]) not in seen:
                seen.add(int(groups[j]))
                chosen.append((j, s))
        result.append(chosen)
    return result


def test_array_lists_follow_the_per_row_rule() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n, width, top_k = (
            int(rng.integers(2, 200)),
            int(rng.integers(1, 15)),
            int(rng.integers(1, 12)),
        )
        groups = rng.integers(0, max(1, n // 3), n).astype(np.int64)
        indices = rng.integers(0, n, (n, width)).astype(np.int32)
        for row, cut in enumerate(rng.integers(0, width + 1, n)):
            indices[row, cut:] = -1
        scores = np.sort(rng.random((n, width)).astype(np.float32), axis=1)[:, ::-1].copy()
        found = Neighbours(indices, scores)
        lists = related_lists(found, groups, top_k, block=int(rng.integers(1, 64)))
        assert [lists[i] for i in range(n)] == reference_lists(found, groups, top_k)


def test_candidate_lists_name_items_and_kth_scores() -> None:
    articles = [Article(f"a{i}", "t", sections=(f"s{i}",)) for i in range(3)]
    found = Neighbours(
        np.array([[1, 2], [0, -1], [-1, -1]], dtype=np.int32),
        np.array([[0.9, 0.5], [0.8, 0.0], [0.0, 0.0]], dtype=np.float32),
    )
    lists = CandidateLists(articles, related_lists(found, np.arange(3), top_k=2))
    assert lists[0] == [("a1", pytest.approx(0.9), ("s1",)), ("a2", pytest.approx(0.5), ("s2",))]
    assert lists[2] == []
    assert lists.kth_scores(2).tolist() == [pytest.approx(0.5), 0.0, 0.0]


def test_candidate_lists_encode_as_the_store_does() -> None:
    rng = np.random.default_rng(3)
    sections = [(), ("world",), ("uk", "politics"), ('quo"te', "ünï")]
    articles = [Article(f"id-{i}\u00e9", "t", sections=sections[i % 4]) for i in range(40)]
    indices = rng.integers(-1, 40, (40, 7)).astype(np.int32)
    indices[indices == np.arange(40)[:, None]] = -1
    scores = rng.random((40, 7)).astype(np.float32)
    lists = CandidateLists(
        articles, related_lists(Neighbours(indices, scores), np.arange(40), top_k=5)
    )
    assert list(lists.encoded()) == [codec.encode_related(lists[i]) for i in range(40)]


def test_tree_rss_counts_this_and_child_processes() -> None:
    before = tree_rss_mb()
    block = np.ones(200 << 17)  # 200 MB of float64, touched
    mine = tree_rss_mb()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, numpy; b = numpy.ones(200 << 17); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while tree_rss_mb() < mine + 180 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tree_rss_mb() >= mine + 180  # the child's 200 MB counted
    finally:
        child.communicate(b"")
    assert mine >= before + 180 and block.sum() > 0
