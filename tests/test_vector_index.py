"""A server places an upserted article exactly as training would: the same TF-IDF row from the
JSON text model (no scikit-learn at serve time), and the same blended scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

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
        ids, blended, _ = index.score(index.vectorize(articles[row]), articles[row].id)
        trained = model.arrays["indices"][row][:10]
        assert np.allclose(blended[trained], model.arrays["scores"][row][:10], atol=1e-4)
        assert blended[row] == 0.0 and ids[row] == articles[row].id


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
