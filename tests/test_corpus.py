"""A server places an upserted article exactly as training would have: same blended scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommender.corpus import Corpus
from recommender.domain import Article
from recommender.store import decode_corpus, encode_corpus
from recommender.textmodel import vectorizer_to_json
from tests.corpus import make_articles
from training.pipeline import build_related
from training.related import RelatedParams


def as_articles(rows: list[dict[str, object]]) -> list[Article]:
    return [
        Article(
            id=str(r["id"]),
            title=str(r["title"]),
            body=str(r["body"]),
            sections=tuple(r["section"]),  # type: ignore[arg-type]
            tags=tuple(r["tags"]),  # type: ignore[arg-type]
        )
        for r in rows
    ]


@pytest.mark.parametrize("lsa_weight", [0.0, 0.5])
def test_served_scores_equal_training_scores(lsa_weight: float) -> None:
    articles = as_articles(make_articles(per_topic=25))
    params = RelatedParams(lsa_weight=lsa_weight, lsa_dims=20)
    model, _ = build_related(articles, params, progress=False)
    kth = np.zeros(len(articles), dtype=np.float32)
    blob = encode_corpus([a.id for a in articles], model.matrix, kth, model.serving_arrays())
    vectorizer = json.dumps(vectorizer_to_json(model.vectorizer, params.title_weight)).encode()
    corpus = Corpus.build("v1", vectorizer, *decode_corpus(blob))
    assert (corpus.lsa is not None) == (lsa_weight > 0)
    for row in (0, 30, 77):
        ids, blended, _ = corpus.score(corpus.vectorize(articles[row]), articles[row].id)
        trained = model.arrays["indices"][row][:10]
        assert np.allclose(blended[trained], model.arrays["scores"][row][:10], atol=1e-4)
        assert blended[row] == 0.0 and ids[row] == articles[row].id
