"""The Popular replay, the trending formula and its fits, on logs whose right answer is obvious;
then the targets on the real MIND sample."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from newsrec.cli import main
from recommender.domain import Article
from recommender.scoring import BetaPrior, decay_weights, smoothed_ctr, trending_score
from tests.helpers import shared_file, write_jsonl
from training.sources.events import EventLog, read_events
from training.trending.halflife import HalfLifeFitter, fit_for_training
from training.trending.model import (
    TrendingParams,
    article_scores,
    fit_beta_prior,
    index_scores,
    popular_lists,
)
from training.trending.replay import (
    ReplaySettings,
    StepGains,
    before,
    build_replay,
    step_metrics,
    top_k,
)
from training.workbench.eval_popular import baselines, evaluate_popular, run_scorer

H = 3600.0
CLICKS_ONLY = TrendingParams(use_impressions=False, fit_half_life=False)


def log_of(rows: list[tuple[str, float, bool, str]]) -> EventLog:
    """An EventLog from (article, ts, is_click, session) rows."""
    rows = sorted(rows, key=lambda r: r[1])
    return EventLog(
        [r[0] for r in rows],
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows], dtype=np.bool_),
        [r[3] for r in rows],
        [],
        0,
        [],
        "synthetic",
        "jsonl",
    )


def gains(clicks: dict[int, float]) -> StepGains:
    codes = np.array(sorted(clicks), dtype=np.intp)
    return StepGains(0.0, codes, np.array([clicks[c] for c in codes.tolist()], dtype=np.float64))


def test_ndcg_and_recall_by_hand() -> None:
    g = gains({0: 3.0, 1: 2.0, 2: 1.0})  # article 3 has no clicks
    assert step_metrics(np.array([0, 1, 2]), g, 10) == (1.0, 6.0)  # the ideal order
    ndcg, hits = step_metrics(np.array([3, 2, 1]), g, 10)
    ideal = 3 + 2 / math.log2(3) + 1 / 2
    assert ndcg == pytest.approx((0 + 1 / math.log2(3) + 2 / 2) / ideal)
    assert hits == 3.0  # recall 3/6
    assert step_metrics(np.array([3]), g, 10) == (0.0, 0.0)
    assert step_metrics(np.array([1, 0]), g, 1) == (pytest.approx(2 / 3), 2.0)  # only k count


def test_top_k_ranks_like_popular_lists() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, size=300).astype(np.float64)  # many ties, many zeros
    ids = [f"n{i:04d}" for i in range(300)]  # codes follow id order, as index_events makes them
    by_id = {ids[i]: s for i, s in enumerate(scores.tolist()) if s > 0}
    lists = popular_lists([Article(i, i) for i in ids], by_id, 0.0, TrendingParams(depth=10))
    assert [ids[c] for c in top_k(scores, 10)] == [i for i, _ in lists[""].items]


def test_trending_formula_by_hand() -> None:
    prior = BetaPrior(1.0, 9.0)
    assert prior.mean == 0.1
    assert smoothed_ctr([0, 9], [0, 90], prior).tolist() == [0.1, 0.1]
    # 5 clicks in 10 views beats 1 in 2 (shrinkage); exposure multiplies
    scores = trending_score([5, 1, 5], [10, 2, 10], [4, 4, 8], prior)
    assert scores.tolist() == pytest.approx([6 / 20 * 4, 2 / 12 * 4, 6 / 20 * 8])
    assert trending_score([3, 1], [0, 0], [0, 0], None).tolist() == [3.0, 1.0]  # clicks only
    counts = np.array([[2, 4], [1, 0]])  # two articles, buckets 0 s and 3600 s old
    assert (counts @ decay_weights([0, 3600], 3600)).tolist() == [4.0, 1.0]


def test_beta_prior_fit_recovers_known_prior() -> None:
    rng = np.random.default_rng(0)
    rates = rng.beta(2.0, 48.0, size=4000)
    views = rng.integers(20, 2000, size=4000).astype(np.float64)
    clicks = rng.binomial(views.astype(np.int64), rates).astype(np.float64)
    prior = fit_beta_prior(clicks, views)
    assert prior is not None
    assert prior.mean == pytest.approx(0.04, rel=0.05)
    assert prior.alpha + prior.beta == pytest.approx(50.0, rel=0.25)
    assert fit_beta_prior(clicks, np.zeros(4000)) is None  # no impressions: clicks alone
    flat = fit_beta_prior(np.full(100, 10.0), np.full(100, 100.0))  # one rate for all: strong
    assert flat is not None and flat.mean == pytest.approx(0.1) and flat.alpha + flat.beta > 1e4


def test_exposure_now_beats_exposure_an_hour_ago() -> None:
    now = 10 * H
    rows = []
    for article, views_from in (("shown-now", now - 600), ("shown-before", now - 3600)):
        rows += [(article, now - 3600 + 360 * i, True, f"{article}{i}") for i in range(10)]
        rows += [(article, views_from + 6 * i, False, f"v{i}") for i in range(100)]
    log = log_of(rows)
    clicks_only = article_scores(log, now, CLICKS_ONLY)
    assert clicks_only["shown-now"] == clicks_only["shown-before"]  # the same clicks
    scores = article_scores(log, now, TrendingParams(prior_alpha=1.0, prior_beta=30.0))
    assert scores["shown-now"] > 3 * scores["shown-before"]  # only one is still on the page
    assert article_scores(log_of([("a", 1.0, False, "")]), 2.0, TrendingParams()) == {}


def test_replay_steps_skip_warmup_and_quiet_hours_and_never_see_the_step() -> None:
    rows = [("x", i * 60.0, True, "") for i in range(48 * 60)]  # a click a minute for 2 days
    rows = [r for r in rows if not 30 * H <= r[1] < 31 * H]  # hour 30 is silent
    rows.append(("late", 40 * H, True, ""))  # clicked exactly at a step start only
    replay = build_replay(log_of(rows), CLICKS_ONLY, ReplaySettings(min_clicks=20))
    starts = (replay.steps / H).tolist()
    assert replay.start == 24 * H and starts[0] == 24.0 and 30.0 not in starts
    assert replay.all_steps == 24 and len(starts) == 23
    scores = index_scores(replay.index, before(40 * H), CLICKS_ONLY)
    assert scores[replay.index.ids.index("late")] == 0.0  # step t sees events before t only


def test_baselines_and_a_perfect_predictor() -> None:
    rows = [("old", 1000.0 + i, True, "") for i in range(50)]  # hot on day one
    for hour in range(24, 48):
        rows += [("new", hour * H + 60.0 * i, True, "") for i in range(20)]  # hot from day two
        rows += [("mid", hour * H + 30.0, True, "")] * (hour % 3)
    replay = build_replay(log_of(rows), CLICKS_ONLY, ReplaySettings(min_clicks=5))
    ids = replay.index.ids
    fns = baselines(replay, [Article("old", "old", published_at=0.0)])
    t = before(26 * H)
    assert ids[top_k(fns["all-time counts"](t), 1)[0]] == "old"
    assert ids[top_k(fns["last-1 h counts"](t), 1)[0]] == "new"
    assert fns["last-24 h counts"](t)[ids.index("old")] == 0.0
    gravity = fns["HN gravity"](t)
    assert gravity[ids.index("old")] == pytest.approx(50 / (26 + 2) ** 1.8)  # age from published
    assert gravity[ids.index("new")] == pytest.approx(40 / (2 + 2) ** 1.8)  # from first click
    by_step = {g.t: g for g in replay.gains}
    size = len(ids)

    def oracle(as_of: float) -> np.ndarray:
        g = by_step[np.nextafter(as_of, np.inf)]
        return np.bincount(g.codes, weights=g.clicks, minlength=size).astype(np.float64)

    ndcg, hits, _ = run_scorer(replay, oracle)
    assert ndcg.tolist() == [1.0] * len(replay.gains)
    assert hits.tolist() == [g.total for g in replay.gains]  # recall 1 with 3 articles < k


def hawkes_log(half_life_hours: float, seed: int = 0, articles: int = 40) -> EventLog:
    """Self-exciting clicks: each article's click rate decays with exactly this half-life and
    jumps with each click, so the decayed count at that half-life is the best predictor."""
    rng = np.random.default_rng(seed)
    decay = 2.0 ** (-1.0 / (half_life_hours * 60))
    excite = np.zeros(articles)
    rows: list[tuple[str, float, bool, str]] = []
    for minute in range(4 * 24 * 60):
        counts = rng.poisson(0.05 + excite)
        for a in np.flatnonzero(counts).tolist():
            rows += [(f"a{a:02d}", minute * 60.0 + rng.uniform(0, 60), True, "")] * counts[a]
        excite = excite * decay + 0.6 * (1 - decay) * counts  # 0.6 clicks spawned per click
    return log_of(rows)


@pytest.mark.parametrize("true_half_life", [0.5, 2.0])
def test_half_life_fit_recovers_a_known_half_life(true_half_life: float) -> None:
    params = replace(CLICKS_ONLY, fit_half_life=True)
    replay = build_replay(hawkes_log(true_half_life), params, ReplaySettings())
    fit = HalfLifeFitter(replay, params).fit()
    assert fit.fitted and fit.steps >= 60
    assert true_half_life / 1.5 <= fit.params.half_life_hours <= true_half_life * 1.5


def test_fit_keeps_defaults_on_a_short_log() -> None:
    log = log_of([("a", i * 60.0, True, "") for i in range(600)])
    params, meta = fit_for_training(log, 600 * 60.0, TrendingParams(), None)
    assert meta["fitted"] is False and "scored steps" in str(meta["note"])
    assert params.half_life_hours == TrendingParams().half_life_hours
    json.dumps(meta)  # goes into the manifest


def test_eval_popular_command_writes_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = hawkes_log(1.0, articles=20)
    rows = [
        {"article_id": a, "ts": float(t), "session_id": ""}
        for a, t in zip(log.article_ids, log.ts.tolist(), strict=True)
    ]
    clicks = write_jsonl(tmp_path / "clicks.jsonl", rows)
    arts = write_jsonl(tmp_path / "articles.jsonl", [{"id": "a00", "title": "A"}])
    params = tmp_path / "params.toml"
    params.write_text("[trending]\nfit_half_life = false\nhalf_life_hours = 1.5\n")
    argv = ["eval", "popular", "--articles", str(arts), "--clicks", str(clicks)]
    assert main([*argv, "--params", str(params), "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "last-24 h counts" in out and "ceiling (perfect top 10)" in out
    assert (tmp_path / "r" / "index.html").exists() and list((tmp_path / "r").glob("*.png"))
    params.write_text("[trending]\nhalf_life = 2\n")
    assert main([*argv, "--params", str(params)]) == 2
    assert "[trending] unknown key 'half_life'" in capsys.readouterr().err
    metrics = evaluate_popular(arts, clicks, TrendingParams(), step_seconds=2 * H)
    assert {"ndcg@10", "recall@10", "ceiling_recall@10"} <= set(metrics)
    assert 0 < metrics["recall@10"] <= metrics["ceiling_recall@10"] <= 1


@pytest.mark.slow
def test_mind_sample_meets_the_popular_targets_with_shipped_defaults() -> None:
    news, behaviors = (
        shared_file("mind-sample", "news.tsv"),
        shared_file("mind-sample", "behaviors.tsv"),
    )
    metrics = evaluate_popular(news, behaviors, TrendingParams())
    assert metrics["ndcg@10"] >= 0.65
    assert metrics["recall@10"] >= 0.33
    assert metrics["ceiling_recall@10"] == pytest.approx(0.48, abs=0.01)
    assert metrics["heldout_ndcg@10"] >= 0.62  # the last two days, after nightly refits only


@pytest.mark.slow
def test_mind_sample_training_fit_reads_every_click() -> None:
    news, behaviors = (
        shared_file("mind-sample", "news.tsv"),
        shared_file("mind-sample", "behaviors.tsv"),
    )
    known = {line.split("\t", 1)[0] for line in news.read_text().splitlines()}
    events = read_events(behaviors, known_ids=known)
    assert events.clicks < 500  # most clicked ids are not in the sample's news.tsv
    reread = partial(read_events, behaviors)
    params, meta = fit_for_training(events, float(events.ts.max()), TrendingParams(), reread)
    assert meta["fitted"] is True and isinstance(meta["steps"], int) and meta["steps"] > 60
    assert 0.1 < params.half_life_hours < 8 and params.prior_alpha and params.prior_beta
    assert 0.01 < params.prior_alpha / (params.prior_alpha + params.prior_beta) < 0.1
