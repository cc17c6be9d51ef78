"""Pure model pieces on data with an obvious answer: neighbours, duplicates, decay, trending."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.domain import Article
from recommender.scoring import decay_weights
from recommender.textmodel import TextModel
from tests.helpers import fit_tfidf
from training.related.duplicates import duplicate_groups, duplicate_pairs
from training.related.lists import related_lists
from training.related.model import neighbours, text_model_json
from training.related.params import RelatedParams
from training.sources.events import EventLog
from training.trending.model import TrendingParams, article_scores, popular_lists


def test_blocked_top_k_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    dense = rng.random((300, 40)) * (rng.random((300, 40)) < 0.2)
    matrix = sp.csr_matrix(
        dense / np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-9), dtype=np.float32
    )
    got = neighbours(matrix, k=7)
    full = (matrix @ matrix.T).toarray()
    np.fill_diagonal(full, -1)
    for row in range(300):
        expected = np.sort(full[row])[::-1][:7]
        expected = expected[expected > 0]
        assert np.allclose(got.scores[row][: len(expected)], expected, atol=1e-5)
        assert row not in got.indices[row]


def test_duplicates_grouped_and_shown_once() -> None:
    # 0,1,2 are one story republished; 3 is related to all; 4 unrelated
    rows = np.array([[1, 0, 0.1], [1, 0, 0.1], [1, 0, 0.11], [0.6, 0.8, 0], [0, 0, 1]])
    matrix = sp.csr_matrix(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)
    groups = duplicate_groups(5, duplicate_pairs(matrix, 0.9))
    assert groups[0] == groups[1] == groups[2] != groups[3]
    shown = np.array([True, False, False, True, True])  # the earliest of 0, 1, 2 is 0
    found = neighbours(matrix, k=4, allowed=shown)
    lists = related_lists(found, groups, top_k=3)
    assert [j for j, _ in lists[0]] == [3, 4]  # not its own republications
    assert [j for j, _ in lists[2]] == [3, 4]
    assert [j for j, _ in lists[3]][:1] == [0]  # the story once, as its earliest member


def test_text_model_round_trips_as_json() -> None:
    articles = [
        Article(id=f"a{i}", title=f"title {w}", body=f"{w} body words {w}")
        for i, w in enumerate(["alpha", "beta", "gamma", "delta"] * 3)
    ]
    vectorizer, _ = fit_tfidf(articles, RelatedParams(min_df=1, title_weight=3))
    model = TextModel.loads(text_model_json(vectorizer, title_weight=3))
    assert model.title_weight == 3
    probe = Article(id="x", title="title alpha", body="alpha body words")
    expected = vectorizer.transform(["\n".join(["title alpha"] * 3 + ["alpha body words"])])
    assert np.allclose(model.row(probe).toarray(), expected.toarray(), atol=1e-7)


def test_decay_halves_each_half_life() -> None:
    assert decay_weights([0, 3600, 7200, -5], 3600).tolist() == [1.0, 0.5, 0.25, 0.0]


def events(rows: list[tuple[str, float, str]]) -> EventLog:
    rows = sorted(rows, key=lambda r: r[1])
    return EventLog(
        article_ids=[r[0] for r in rows],
        ts=np.array([r[1] for r in rows]),
        is_click=np.ones(len(rows), dtype=bool),
        sessions=[r[2] for r in rows],
        bad_rows=[],
        unknown_ids=0,
        unknown_id_examples=[],
        path="x",
        format="jsonl",
    )


def test_trending_decay_dedup_window_and_as_of() -> None:
    log = events(
        [
            ("a", 0.0, "s1"),
            ("a", 60.0, "s1"),
            ("a", 1900.0, "s1"),  # 2 reads
            ("b", 3600.0, ""),
            ("c", 7200.0, "s9"),
            ("old", -1e6, "s2"),
        ]
    )
    params = TrendingParams(half_life_hours=1.0, window_hours=72)
    scores = article_scores(log, as_of=3600.0, params=params)
    assert scores["a"] == pytest.approx(0.5 + 2 ** (-1700 / 3600))
    assert scores["b"] == 1.0
    assert "c" not in scores  # after as_of: replay never sees the future
    assert "old" not in scores  # outside the window
    arts = [
        Article(id="a", title="A", sections=("World", "europe")),
        Article(id="b", title="B", sections=("world",)),
        Article(id="c", title="C", sections=("world",)),
    ]
    lists = popular_lists(arts, scores, 3600.0, params)
    assert [i for i, _ in lists[""].items] == ["a", "b"]  # 1.22 > 1.0
    assert [i for i, _ in lists["europe"].items] == ["a"]
    assert [i for i, _ in lists["world"].items] == ["a", "b"]
