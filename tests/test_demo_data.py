"""The synthetic demo corpus: formats, determinism and the realism the product's tests rely on."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from training.demo.generate import SECTIONS, DemoSpec, DemoSummary, generate
from training.demo.titles import fresh_title

SPEC = DemoSpec(articles=500, days=10, seed=11)
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def epoch(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC stamp."""
    return datetime.fromisoformat(stamp).timestamp()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSON-lines file."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def neighbours(articles: list[dict[str, Any]], k: int = 5) -> np.ndarray:
    """Indices of each article's k most cosine-similar others by TF-IDF of title and body."""
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    matrix = vectorizer.fit_transform([f"{a['title']} {a['body']}" for a in articles])
    similarity = (matrix @ matrix.T).toarray()
    np.fill_diagonal(similarity, -1.0)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    return generate(tmp_path_factory.mktemp("demo"), SPEC)


@pytest.fixture(scope="module")
def articles(demo: DemoSummary) -> list[dict[str, Any]]:
    return read_jsonl(demo.articles_path)


@pytest.fixture(scope="module")
def events(demo: DemoSummary) -> list[dict[str, Any]]:
    return read_jsonl(demo.clicks_path)


def test_same_spec_gives_byte_identical_files(tmp_path: Path) -> None:
    spec = DemoSpec(articles=300, seed=3)
    first, second = generate(tmp_path / "a", spec), generate(tmp_path / "b", spec)
    assert first.articles_path.read_bytes() == second.articles_path.read_bytes()
    assert first.clicks_path.read_bytes() == second.clicks_path.read_bytes()
    assert (first.clicks, first.impressions) == (second.clicks, second.impressions)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["articles.jsonl", "clicks.jsonl"]


def test_different_seed_gives_different_files(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", DemoSpec(articles=300, seed=3))
    second = generate(tmp_path / "b", DemoSpec(articles=300, seed=4))
    assert first.articles_path.read_bytes() != second.articles_path.read_bytes()
    assert first.clicks_path.read_bytes() != second.clicks_path.read_bytes()


def test_summary_matches_files(
    demo: DemoSummary, articles: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    kinds = Counter(e["type"] for e in events)
    assert demo.articles == len(articles) == SPEC.articles
    assert (demo.clicks, demo.impressions) == (kinds["click"], kinds["impression"])
    assert demo.threads == len({a["thread"] for a in articles}) == round(SPEC.articles / 15)
    assert set(demo.sections) == {a["section"][0] for a in articles}
    assert demo.sections == tuple(s for s in SECTIONS if s in demo.sections)


def test_article_fields(articles: list[dict[str, Any]]) -> None:
    start, end = SPEC.end - SPEC.days * 86_400, SPEC.end
    for a in articles:
        assert set(a) == {"id", "thread", "title", "body", "section", "tags", "url", "published_at"}
        assert re.fullmatch(r"demo-\d{6}", a["id"])
        assert 1 <= len(a["section"]) <= 3 and len(set(a["section"])) == len(a["section"])
        assert set(a["section"]) <= set(SECTIONS)
        assert a["url"] == f"https://demo.newsrec.example/{a['section'][0]}/{a['id']}"
        assert STAMP.match(a["published_at"]) and start <= epoch(a["published_at"]) <= end
        assert a["tags"] and all(isinstance(t, str) and t for t in a["tags"])
        assert 6 <= len(a["title"].split()) <= 12, a["title"]
        assert a["body"].endswith(".") and a["body"][0].isupper()
    assert len({a["id"] for a in articles}) == len(articles)
    assert len({a["section"][0] for a in articles}) >= 6
    multi = sum(len(a["section"]) > 1 for a in articles) / len(articles)
    assert 0.15 < multi < 0.7


def test_body_lengths_are_realistic(articles: list[dict[str, Any]]) -> None:
    words = [len(a["body"].split()) for a in articles]
    assert 250 <= statistics.median(words) <= 600
    assert max(words) > 2 * statistics.median(words)  # a long tail
    assert "\n\n" in articles[0]["body"]  # paragraphs


def test_threads_share_a_section_and_a_few_days(articles: list[dict[str, Any]]) -> None:
    threads: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in articles:
        threads[a["thread"]].append(a)
    assert statistics.median(len(t) for t in threads.values()) >= 5
    for members in threads.values():
        assert len({a["section"][0] for a in members}) == 1
        times = [epoch(a["published_at"]) for a in members]
        assert max(times) - min(times) <= 8 * 86_400


def test_near_duplicates_are_republished_copies(articles: list[dict[str, Any]]) -> None:
    by_body: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in articles:
        by_body[a["body"]].append(a)
    copies = [group for group in by_body.values() if len(group) > 1]
    assert 1 <= sum(len(g) - 1 for g in copies) <= 0.03 * len(articles)
    for group in copies:
        original, *later = sorted(group, key=lambda a: a["published_at"])
        for copy in later:
            assert copy["id"] != original["id"] and copy["thread"] == original["thread"]
            assert copy["title"] != original["title"]
            assert original["title"] in copy["title"]
            assert epoch(copy["published_at"]) > epoch(original["published_at"])


def test_stories_of_a_thread_have_different_titles(articles: list[dict[str, Any]]) -> None:
    # Before titles were made unique, 123 of these 500 articles shared a title with another
    # story of their thread (the same template and keyword drawn twice).
    bodies: set[str] = set()
    titles: Counter[tuple[str, str]] = Counter()
    for a in articles:  # a republished copy comes after its original, with the same body
        if a["body"] not in bodies:
            bodies.add(a["body"])
            titles[a["thread"], a["title"]] += 1
    assert len(titles) > 400 and max(titles.values()) == 1


def test_a_huge_thread_gets_labelled_then_numbered_titles() -> None:
    ents, kws = ("Kernevak", "Omar Delnessa", "Dranemar Front"), ["aid", "truce", "a", "b", "c"]
    used: set[str] = set()
    titles = [fresh_title("world", ents, kws, ("envoy",), [0, 0, 0, 0], used) for _ in range(700)]
    assert len(set(titles)) == len(used) == 700
    assert titles[0] == "Omar Delnessa urges calm as aid tensions rise in Kernevak"
    assert titles[1] == "Aid convoy reaches Kernevak after aid delays"  # the next template
    assert titles[60] == "Omar Delnessa urges calm as envoy tensions rise in Kernevak"  # a noun
    # 12 templates x 6 words (5 keywords, 1 noun): then the labels, then numbers
    assert titles[72] == "Analysis: Omar Delnessa urges calm as aid tensions rise in Kernevak"
    assert titles[-1] == "Omar Delnessa urges calm as aid tensions rise in Kernevak, part 700"


def test_related_articles_stay_in_thread_and_section(articles: list[dict[str, Any]]) -> None:
    near = neighbours(articles)
    section = np.array([a["section"][0] for a in articles])
    thread = np.array([a["thread"] for a in articles])
    assert (section[near] == section[:, None]).mean() >= 0.9
    assert (thread[near] == thread[:, None]).mean() >= 0.7


def test_event_fields_and_order(
    articles: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    published = {a["id"]: epoch(a["published_at"]) for a in articles}
    times = [epoch(e["ts"]) for e in events]
    assert times == sorted(times)
    for e, ts in zip(events, times, strict=True):
        assert set(e) == {"article_id", "ts", "type", "session_id"}
        assert STAMP.match(e["ts"]) and e["type"] in ("click", "impression")
        assert re.fullmatch(r"s-[0-9a-f]{10}", e["session_id"])
        assert published[e["article_id"]] <= ts <= SPEC.end


def test_every_click_follows_an_impression(events: list[dict[str, Any]]) -> None:
    shown: set[tuple[str, str]] = set()
    for e in events:
        key = (e["article_id"], e["session_id"])
        if e["type"] == "impression":
            shown.add(key)
        else:
            assert key in shown, e
    clicks = sum(e["type"] == "click" for e in events)
    assert 0.05 <= clicks / (len(events) - clicks) <= 0.15
    assert 10 <= clicks / SPEC.articles <= 30


def test_sessions_sometimes_click_twice_within_minutes(events: list[dict[str, Any]]) -> None:
    last: dict[tuple[str, str], float] = {}
    repeats = 0
    for e in (e for e in events if e["type"] == "click"):
        key, ts = (e["article_id"], e["session_id"]), epoch(e["ts"])
        repeats += key in last and ts - last[key] <= 600
        last[key] = ts
    assert 0.01 * len(last) <= repeats <= 0.1 * len(last)
    per_session = Counter(e["session_id"] for e in events)
    assert len(events) / len(per_session) >= 1.5  # sessions see several items
    assert max(per_session.values()) >= 5


def test_clicks_decay_after_publication_and_popularity_moves(
    articles: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    published = {a["id"]: epoch(a["published_at"]) for a in articles}
    clicks = [e for e in events if e["type"] == "click"]
    delays = [(epoch(e["ts"]) - published[e["article_id"]]) / 3600 for e in clicks]
    assert statistics.median(delays) < 12 and np.percentile(delays, 90) > 24
    per_article = sorted(Counter(e["article_id"] for e in clicks).values(), reverse=True)
    assert sum(per_article[: len(articles) // 10]) > 0.3 * len(clicks)  # heavy-tailed
    hourly: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for e in clicks:
        hourly[e["ts"][:13]][e["article_id"]] += 1
    leaders = [counts.most_common(1)[0] for counts in hourly.values()]
    assert len({article for article, _ in leaders}) > len(leaders) / 5  # "popular now" changes
    assert max(n for _, n in leaders) >= 20  # bursts: a story spikes within an hour


def test_ids_are_sequential_and_progress_is_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = generate(tmp_path, DemoSpec(articles=40, clicks_per_article=2.0), progress=True)
    rows = read_jsonl(summary.articles_path)
    assert [a["id"] for a in rows] == [f"demo-{i:06d}" for i in range(1, 41)]
    assert "articles" in capsys.readouterr().err


def test_invalid_spec_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, DemoSpec(articles=0))


def test_the_demo_ends_with_next_steps_and_says_what_it_left_running(tmp_path: Path) -> None:
    from recommender.config import Settings
    from training.demo.run import next_steps

    embedded = "\n".join(next_steps(Settings(data_dir=tmp_path), "demo-000042"))
    assert "newsrec serve" in embedded and '"article_id": "demo-000042"' in embedded
    assert "node client.js all demo-000042" in embedded and ". .venv/bin/activate" in embedded
    assert f"embedded Redis is still running (its data in {tmp_path})" in embedded
    assert "newsrec redis-stop" in embedded
    own = "\n".join(next_steps(Settings(redis_url="redis://127.0.0.1:6379/0"), "demo-000042"))
    assert "redis-stop" not in own and "newsrec serve" in own
