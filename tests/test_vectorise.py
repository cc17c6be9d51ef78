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
from training.related.lists import (
    CandidateLists,
    Neighbours,
    normalized_title,
    related_lists,
    title_ids,
)
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
    neighbours: Neighbours, groups: np.ndarray, top_k: int, titles: np.ndarray | None = None
) -> list[list[tuple[int, float]]]:
    """The rule, one row at a time: skip the own group (and title), keep the first of each group,
    then of those the first of each title, in order."""
    titles = -1 - np.arange(len(groups)) if titles is None else titles  # all distinct
    result: list[list[tuple[int, float]]] = []
    for row, (idx, sc) in enumerate(zip(neighbours.indices, neighbours.scores, strict=True)):
        chosen = [
            (j, s)
            for j, s in zip(idx.tolist(), sc.tolist(), strict=True)
            if j >= 0 and groups[j] != groups[row] and titles[j] != titles[row]
        ]
        for key in (groups, titles):
            firsts: dict[int, tuple[int, float]] = {}
            for j, s in chosen:
                firsts.setdefault(int(key[j]), (j, s))
            chosen = list(firsts.values())
        result.append(chosen[:top_k])
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
        titles = rng.integers(0, max(1, n // 2), n).astype(np.int64)
        lists = related_lists(found, groups, top_k, int(rng.integers(1, 64)), titles)
        assert [lists[i] for i in range(n)] == reference_lists(found, groups, top_k, titles)


def test_a_list_shows_a_headline_once_and_never_the_articles_own() -> None:
    titles = [
        "Live updates: the storm",  # 0, the query
        "Minister resigns",  # 1
        "LIVE UPDATES:  the   storm!",  # 2: the query's headline, written differently
        "minister resigns.",  # 3: 1's headline
        "",  # 4 and 5: no headline, which repeats nothing
        "",
        "Storm damage mapped",  # 6
        "Minister resigns",  # 7: 1's again, and in 3's duplicate group below
    ]
    ids = title_ids(titles)
    assert ids[0] == ids[2] and ids[1] == ids[3] == ids[7] and ids[4] != ids[5]
    assert normalized_title(" «Minister\tresigns»… ") == "minister resigns"
    indices = np.array([[2, 3, 1, 4, 5, 7, 6, -1], [3, 7, 2, 6, 4, -1, -1, -1]], dtype=np.int32)
    scores = np.linspace(0.9, 0.2, 16, dtype=np.float32).reshape(2, 8)
    groups = np.array([0, 1, 2, 3, 4, 5, 6, 3])
    found = Neighbours(np.vstack([indices, np.full((6, 8), -1, np.int32)]),
                       np.vstack([scores, np.zeros((6, 8), np.float32)]))  # fmt: skip
    lists = related_lists(found, groups, top_k=4, titles=ids)
    # Row 0: 2 has its own headline, 1 repeats 3's, 7 repeats 3's: the next ones fill the list.
    assert [j for j, _ in lists[0]] == [3, 4, 5, 6]
    assert [s for _, s in lists[0]] == pytest.approx(scores[0, [1, 3, 4, 6]].tolist())
    # Row 1 (its own headline is 3's): neither 3 nor 7; 2 and 6 and 4 are kept, in order.
    assert [j for j, _ in lists[1]] == [2, 6, 4]
    # Without titles the rule is the duplicate groups' only.
    assert [j for j, _ in related_lists(found, groups, top_k=4)[0]] == [2, 3, 1, 4]


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
