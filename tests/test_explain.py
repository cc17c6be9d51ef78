"""explain=true: each Related item says what its score is made of (as the training job
recorded it), which terms the two articles share, and which pin or upsert placed it; each
Popular item the click totals behind its score. Without explain nothing is added."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import grpc
import pytest
import redis

from recommender.config import Settings
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import write_corpus
from tests.helpers import ServerThread, newsrec
from tests.test_security import code_of, train_into


def train_explained(settings: Settings, tmp_path: Path, half_life_days: float = 0.0) -> None:
    articles, clicks = write_corpus(tmp_path)
    params = tmp_path / "explain.toml"
    params.write_text(f"[related]\nexplain = true\nrecency_half_life_days = {half_life_days}\n")
    done = newsrec(settings, "train", "--articles", str(articles), "--clicks", str(clicks),
                   "--params", str(params), "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr


def related(server: ServerThread, explain: bool = True) -> list[pb.Item]:
    request = pb.GetRelatedRequest(article_id="tech-01", explain=explain)
    return list(server.stub.GetRelated(request).items)


@pytest.mark.parametrize("half_life_days", [0.0, 2.0])
def test_related_items_explain_their_training_scores(
    tmp_path: Path, settings: Settings, server: ServerThread, half_life_days: float
) -> None:
    train_explained(settings, tmp_path, half_life_days)
    items = related(server)
    assert len(items) == 10
    for item in items:
        why = item.explanation
        assert why.source == "model"
        blend = why.tfidf_share * why.tfidf + why.lsa_share * why.lsa
        blend += why.embedding_share * why.embedding
        # The listed score is the training job's own; a wrong share moves this by 1e-2 or more.
        assert why.recency * blend == pytest.approx(item.score, abs=2e-5)
        assert why.tfidf_share + why.lsa_share + why.embedding_share == pytest.approx(1.0)
        assert (why.recency < 1.0) == (half_life_days > 0)  # the corpus's articles are hours apart
    terms = items[0].explanation.shared_terms
    assert terms and all(a.weight >= b.weight > 0 for a, b in itertools.pairwise(terms))
    assert not any(i.HasField("explanation") for i in related(server, explain=False))


def test_pinned_and_upserted_items_say_what_placed_them(
    tmp_path: Path, settings: Settings, server: ServerThread
) -> None:
    train_explained(settings, tmp_path)
    rule = server.stub.PinArticle(
        pb.PinArticleRequest(article_id="sport-03", position=1, related_to="tech-01")
    ).rule_id
    article = pb.ArticleInput(article_id="tech-new", title="Smartphone chip battery software",
                              body="smartphone chip battery software android laptop processor app "
                              * 10)  # fmt: skip
    server.stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]))
    by_id = {i.article_id: i.explanation for i in related(server)}
    assert by_id["sport-03"].source == "pin" and by_id["sport-03"].pinned_by == rule
    assert by_id["tech-new"].source == "live" and by_id["tech-new"].shared_terms == []
    assert sum(w.source == "model" for w in by_id.values()) == 8


def test_explain_needs_a_model_trained_with_explanations(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    train_into(client, settings, tmp_path)
    code, message = code_of(lambda: related(server))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "related.explain = true" in message
    assert related(server, explain=False)


def test_popular_items_explain_their_click_totals(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    train_into(client, settings, tmp_path)
    events = [pb.Event(article_id="business-05", session_id=f"r{n}") for n in range(12)]
    server.stub.RecordEvents(pb.RecordEventsRequest(events=events))
    time.sleep(1.1)  # past the live sums' cache
    fitted = server.stub.GetPopular(pb.GetPopularRequest(explain=True)).items
    top = fitted[0]
    # No impressions in the log: the score is the decayed clicks (docs/popular.md).
    assert top.article_id == "business-05" and top.explanation.window == "now"
    assert top.explanation.clicks == pytest.approx(top.score, rel=1e-9)
    assert top.explanation.impressions == 0.0 and 11.0 < top.explanation.clicks <= 12.0
    rising = server.stub.GetPopular(pb.GetPopularRequest(window="rising", explain=True)).items
    why = rising[0].explanation
    assert why.window == "rising" and why.velocity == pytest.approx(rising[0].score)
    expected = max(why.earlier_clicks * math.log(2) / 24.0, 0.0)  # its own rate: the only one
    assert why.velocity == pytest.approx(
        (why.clicks * math.log(2) - expected) / math.sqrt(expected + 1), rel=1e-6
    )
    plain = server.stub.GetPopular(pb.GetPopularRequest(window="rising")).items
    assert not plain[0].HasField("explanation")
