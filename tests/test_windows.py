"""Named Popular windows: "today" and "week" (most read, decayed over a day and a week) and
"rising" (a climbing click rate against the article's own and its section's), from the nightly
lists and the live counters, chosen per GetPopular; the shared formula's edges; the params."""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import redis

from recommender.config import Settings
from recommender.live.windows import rank
from recommender.scoring import HOUR
from recommender.v1 import recommender_pb2 as pb
from recommender.windows import DEFAULT_WINDOWS, PopularWindow, parse_windows, window_scores
from tests.corpus import write_corpus
from tests.helpers import ServerThread, newsrec, write_jsonl
from tests.test_security import code_of, train_into
from training.params import ParamsError, load_params, write_params
from training.related.params import RelatedParams
from training.sources.articles import read_articles
from training.sources.events import read_events
from training.trending.model import TrendingParams, index_events
from training.trending.windows import window_lists

RISING = PopularWindow("rising", slow_half_life_hours=6.0, min_clicks=3, min_score=0.0)


def popular(server: ServerThread, window: str, section: str = "") -> list[tuple[str, float]]:
    answer = server.stub.GetPopular(pb.GetPopularRequest(window=window, section=section))
    assert answer.window == (window or "now")
    return [(i.article_id, i.score) for i in answer.items]


def test_rising_rewards_acceleration_not_size() -> None:
    # (fast, slow) decayed totals: a steady big article, a quiet one bursting, one click.
    steady = 20 * 1.0 / math.log(2)  # 20 clicks an hour for long: both totals at that rate
    totals = np.array([[steady, steady * 6], [8.0, 8.5], [1.0, 1.0], [2.0, 30.0]])
    scores = window_scores(RISING, totals)
    assert scores[0] == pytest.approx(0.0, abs=1e-9)  # as fast as ever: not rising, however big
    assert scores[1] > 1.0  # 8 recent clicks against almost no history
    assert scores[2] == 0.0  # below the minimum evidence (3 decayed recent clicks)
    assert scores[3] == 0.0  # slowing down
    steadier = np.array([[20.0, 100.0]])  # a little above its slower rate: score 0.65
    assert window_scores(RISING, steadier)[0] > 0.5
    assert window_scores(replace(RISING, min_score=1.0), steadier)[0] == 0.0
    # The section's median rate is the floor: a newcomer is compared with a typical article.
    busy = np.vstack([totals, [[0.0, 600.0]] * 3])
    assert window_scores(RISING, busy)[1] < scores[1]
    decayed = PopularWindow("decayed", half_life_hours=6.0)
    assert np.allclose(window_scores(decayed, totals), totals[:, 0])


def test_window_settings_are_checked_and_round_trip_through_a_params_file(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"now": {"kind": "decayed"}}, "window name 'now'"),
        ({"Bad Name": {}}, "window name 'Bad Name'"),
        ({"w": {"kind": "velocity"}}, "kind 'velocity' (known: decayed, rising)"),
        ({"w": {"kind": "decayed", "half_life_hours": 0}}, "half-lives must be positive"),
        ({"w": {"kind": "decayed", "colour": "red"}}, "unexpected keyword argument 'colour'"),
    ]
    for spec, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_windows(spec)
    windows = {"hour": {"kind": "decayed", "half_life_hours": 0.5},
               "rising": {"kind": "rising", "fast_half_life_hours": 0.5,
                          "slow_half_life_hours": 4.0, "min_clicks": 5.0,
                          "min_score": 2.0}}  # fmt: skip
    path = write_params(tmp_path / "p.toml", RelatedParams(), TrendingParams(windows=windows))
    assert load_params(path)[1].windows == windows
    bad = tmp_path / "bad.toml"
    bad.write_text('[trending.windows.day]\nkind = "decayed"\nhalf_life_hours = -1\n')
    with pytest.raises(ParamsError, match=r"bad.toml: \[trending\].*window 'day'"):
        load_params(bad)


def test_training_lists_the_rising_story_and_keeps_the_history_of_the_big_ones(
    tmp_path: Path,
) -> None:
    articles_path, _ = write_corpus(tmp_path)
    articles = read_articles(articles_path).articles
    now = 1_767_400_000.0
    clicks = [{"article_id": "sport-01", "ts": now - h * 360, "session_id": f"a{h}"}
              for h in range(120)]  # steady: 10 an hour for 12 hours  # fmt: skip
    clicks += [{"article_id": "tech-05", "ts": now - 60 * m, "session_id": f"b{m}"}
               for m in range(8)]  # fmt: skip
    clicks += [{"article_id": "politics-02", "ts": now - 30, "session_id": "c"}]
    clicks.sort(key=lambda c: float(c["ts"]))  # type: ignore[arg-type]
    log = read_events(write_jsonl(tmp_path / "clicks.jsonl", clicks))
    windows = {"today": DEFAULT_WINDOWS["today"], "rising": {**RISING.as_dict(), "min_score": 1.0}}
    params = TrendingParams(windows=windows)
    lists = window_lists(articles, index_events(log, params), now, params)
    rising = lists["rising"][""]
    assert [a for a, s in rising.items if s > 0] == ["tech-05"]
    assert "sport-01" in rising.components  # kept for its history, scored 0
    assert [a for a, _ in lists["today"][""].items][:2] == ["sport-01", "tech-05"]
    assert [a for a, _ in lists["rising"]["tech"].items if _ > 0] == ["tech-05"]


def test_get_popular_serves_each_window_with_live_clicks(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    train_into(client, settings, tmp_path)
    info = server.stub.GetModelInfo(pb.GetModelInfoRequest())
    assert list(info.popular_windows) == ["now", "rising", "today", "week"]
    # The nightly lists (tests/corpus.py: 15 readers of tech-01 in the last hour, 10 of
    # politics-03 two hours before the end, 40 of sport-02 thirty hours before).
    assert [a for a, _ in popular(server, "today")][:3] == ["tech-01", "politics-03", "sport-02"]
    assert [a for a, _ in popular(server, "week")][:2] == ["sport-02", "tech-01"]
    assert popular(server, "") == popular(server, "now")
    code, message = code_of(lambda: popular(server, "monthly"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "'monthly' is not a Popular window of this model: now, rising, today, week" in message
    # Live clicks now: a burst on business-05, one click on tech-02 (below the floor).
    events = [pb.Event(article_id="business-05", session_id=f"r{n}") for n in range(20)]
    events += [pb.Event(article_id="tech-02", session_id="q")]
    assert server.stub.RecordEvents(pb.RecordEventsRequest(events=events)).accepted == 21
    time.sleep(1.1)  # past the live sums' cache
    rising = popular(server, "rising")
    assert [a for a, _ in rising] == ["business-05"] and rising[0][1] > 3
    assert [a for a, _ in popular(server, "rising", "business")] == ["business-05"]
    assert popular(server, "rising", "tech") == []
    today = dict(popular(server, "today"))
    # An hour bucket's clicks count at its middle: at most 30 minutes off at a 6 h half-life.
    assert 20 * 2 ** (-0.5 / 6) - 1e-9 <= today["business-05"] <= 20 * 2 ** (0.5 / 6) + 1e-9
    assert popular(server, "week", "business")[0][0] == "business-05"


def test_hits_counters_are_kept_only_for_versions_with_windows(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    articles, clicks = write_corpus(tmp_path)
    params = tmp_path / "p.toml"
    write_params(params, RelatedParams(), TrendingParams(windows={}))
    done = newsrec(settings, "train", "--articles", str(articles), "--clicks", str(clicks),
                   "--params", str(params), "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(server.stub.GetModelInfo(pb.GetModelInfoRequest()).popular_windows) == ["now"]
    event = pb.Event(article_id="tech-03", session_id="z")
    server.stub.RecordEvents(pb.RecordEventsRequest(events=[event]))
    hits = list(client.scan_iter(f"{settings.namespace}:rt:hits:*"))
    assert hits == [] and list(client.scan_iter(f"{settings.namespace}:rt:clicks:*"))


def test_serving_scores_a_nightly_window_list_as_training_did(tmp_path: Path) -> None:
    """At the list's own as_of, nothing decays and nothing is live: the same scores, so the
    rising baseline (the busiest articles' median) is the same set on both sides."""
    articles_path, _ = write_corpus(tmp_path)
    articles = read_articles(articles_path).articles
    now = 1_767_400_000.0
    rng = random.Random(5)
    clicks = [{"article_id": a.id, "ts": now - rng.uniform(0, 30 * HOUR), "session_id": f"s{n}"}
              for n, a in enumerate(rng.choices(articles, k=600))]  # fmt: skip
    clicks += [{"article_id": "tech-07", "ts": now - 60 * m, "session_id": f"b{m}"}
               for m in range(12)]  # fmt: skip
    clicks.sort(key=lambda c: float(c["ts"]))  # type: ignore[arg-type]
    log = read_events(write_jsonl(tmp_path / "clicks.jsonl", clicks))
    params = TrendingParams(windows={"rising": {"kind": "rising", "baseline_articles": 8}})
    windows = parse_windows(params.windows)
    lists = window_lists(articles, index_events(log, params), now, params)
    for section in ("", "tech", "sport"):
        nightly = lists["rising"][section]
        served = dict(rank(nightly, {}, now, windows["rising"]))
        trained = {a: s for a, s in nightly.items if s > 0}
        assert served.keys() == trained.keys() and trained
        assert all(served[a] == pytest.approx(s, rel=1e-9) for a, s in trained.items())


def test_a_window_reads_sixteen_of_its_half_lives_back(tmp_path: Path) -> None:
    articles = read_articles(write_corpus(tmp_path)[0]).articles
    now = 1_767_400_000.0
    clicks = [{"article_id": "sport-06", "ts": now - 100 * HOUR, "session_id": "old"}]
    log = read_events(write_jsonl(tmp_path / "clicks.jsonl", clicks))
    params = TrendingParams()  # the trending window is 72 h; "week" reads 16 x 42 h
    lists = window_lists(articles, index_events(log, params), now, params)
    assert [a for a, _ in lists["week"][""].items] == ["sport-06"]
    assert lists["today"][""].items == []  # 100 h > 16 x 6 h
