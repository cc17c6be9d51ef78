"""A server places an upserted article exactly as training would: the same TF-IDF row from the
JSON text model (no scikit-learn at serve time), and the same blended scores."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.domain import Article
from recommender.live.liverows import DENSE_PARTS, LiveRows
from recommender.textmodel import TextModel
from tests.corpus import make_articles
from tests.helpers import as_articles, shared_file, trained_and_served
from training.related.model import build_related, text_model_json
from training.related.params import RelatedParams
from training.sources.articles import read_articles


@pytest.mark.parametrize("lsa_weight", [0.0, 0.5])
def test_served_scores_equal_training_scores(lsa_weight: float, tmp_path: Path) -> None:
    articles = as_articles(make_articles(per_topic=25))
    params = RelatedParams(lsa_weight=lsa_weight, lsa_dims=20)
    model, index = trained_and_served(articles, params, tmp_path)
    assert (index.lsa is not None) == (lsa_weight > 0)
    for row in (0, 30, 77):
        scored = index.score(index.vectorize(articles[row]), articles[row].id)
        ids, blended = scored.ids, scored.dense()[0]
        trained = model.arrays["indices"][row][:10]
        # int8 dense rows and float16 postings (recommender/live/compact.py): within 2e-3 of
        # training's float32 scores; a wrong blend weight moves them by 1e-2 or more.
        assert np.allclose(blended[trained], model.arrays["scores"][row][:10], atol=2e-3)
        assert blended[row] == 0.0 and ids[row] == articles[row].id


def test_live_rows_grow_by_appending_and_equal_a_fresh_stack(tmp_path: Path) -> None:
    """Upserts append to the stacked live rows (no restack per upsert); edits and takedowns
    restack; either way the rows, and the scores against them, are those of a fresh stack."""
    articles = as_articles(make_articles(per_topic=25))
    _, index = trained_and_served(articles, RelatedParams(lsa_dims=20), tmp_path)
    index._live_rows()  # stacked (empty) before the first upsert, as a serving writer has it
    for n, article in enumerate(articles[:40]):
        vector = index.vectorize(replace(article, id=f"new-{n}"))
        index.score(vector, f"new-{n}")
        index.set_live(f"new-{n}", vector)
        if n == 20:
            index.set_live("new-3", None)  # a takedown, then more appends
        if n == 30:
            index.set_live("new-5", index.live["new-6"])  # an edit
    grown = index._live_rows()
    assert len(grown.buffers["embedding"]) > len(grown.ids)  # spare capacity, amortised growth
    fresh = LiveRows.of(list(index.live.items()), index.width, index.dims)
    assert grown.ids == fresh.ids and "new-3" not in grown.ids
    assert (grown.rows != fresh.rows).nnz == 0
    for name in DENSE_PARTS:
        assert np.array_equal(grown.part(name), fresh.part(name)), name
    probe = index.vectorize(articles[50])
    exact = (grown.rows @ probe.tfidf.T).toarray().ravel()
    assert np.allclose(grown.tfidf_dots(probe.tfidf), exact, atol=1e-6) and exact.max() > 0.05
    blended = index.score(probe, articles[50].id).dense()[0]
    index._stacked = fresh
    again = index.score(index.vectorize(articles[50]), articles[50].id).dense()[0]
    assert np.allclose(blended, again, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("title_weight,ngram_max", [(1, 2), (3, 3)])
def test_text_model_rows_equal_the_trained_rows_on_real_news(
    title_weight: int, ngram_max: int
) -> None:
    articles = read_articles(shared_file("bbc", "articles.jsonl")).articles[:600]
    params = RelatedParams(title_weight=title_weight, ngram_max=ngram_max, lsa_weight=0.0)
    model, _ = build_related(articles, params, progress=False)
    served = TextModel.loads(text_model_json(model.vectorizer, title_weight))
    rows = sp.vstack([served.row(a) for a in articles]).tocsr()
    trained = model.matrix.tocsr()
    assert rows.shape == trained.shape
    assert np.array_equal(rows.indptr, trained.indptr)
    assert np.array_equal(rows.indices, trained.indices)
    assert np.allclose(rows.data, trained.data, rtol=1e-6, atol=1e-7)


def test_text_model_refuses_settings_it_cannot_reproduce() -> None:
    articles = as_articles(make_articles(per_topic=5))
    model, _ = build_related(articles, RelatedParams(lsa_weight=0.0), progress=False)
    good = TextModel.loads(text_model_json(model.vectorizer, 1))
    assert good.width == len(model.vectorizer.vocabulary_)
    model.vectorizer.strip_accents = "unicode"
    with pytest.raises(ValueError, match="not reproducible"):
        TextModel.loads(text_model_json(model.vectorizer, 1))
    with pytest.raises(ValueError, match="not a newsrec TF-IDF model"):
        TextModel.loads(b'{"format": "pickle"}')


def test_an_article_of_words_the_model_never_saw_is_scored_by_meaning(tmp_path: Path) -> None:
    articles = as_articles(make_articles(per_topic=25))
    _, index = trained_and_served(articles, RelatedParams(lsa_dims=20), tmp_path)
    unseen = Article("unseen", "Qqqqqqqq", "Xxxxxxxx " * 20)
    vector = index.vectorize(unseen)
    assert vector.tfidf.nnz == 0
    scored = index.score(vector, "unseen")
    assert np.all(scored.tfidf == 0) and len(scored.positions) == len(articles)
    assert scored.blended.max() > 0  # its embedding still finds neighbours
