"""A tiny corpus whose right answers are obvious: four topics with disjoint vocabularies."""

from __future__ import annotations

import random
from pathlib import Path

from tests.helpers import write_jsonl

TOPICS = {
    "sport": ["football", "striker", "goal", "league", "keeper", "match", "penalty", "coach"],
    "tech": ["smartphone", "chip", "software", "battery", "android", "laptop", "processor", "app"],
    "politics": [
        "election",
        "senate",
        "ballot",
        "minister",
        "parliament",
        "vote",
        "campaign",
        "coalition",
    ],
    "business": [
        "bank",
        "shares",
        "profit",
        "merger",
        "investor",
        "inflation",
        "market",
        "dividend",
    ],
}
COMMON = ["today", "report", "people", "week", "said", "new", "year", "time"]
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3600.0


def _filler(rng: random.Random, count: int = 400) -> list[str]:
    """Made-up words shared across topics, so no two stories of a topic are near-identical."""
    return [
        "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))
        for _ in range(count)
    ]


def make_articles(per_topic: int = 10, seed: int = 1) -> list[dict[str, object]]:
    """per_topic articles in each topic; ids like sport-03; one hour apart."""
    rng = random.Random(seed)
    filler = _filler(rng)
    rows: list[dict[str, object]] = []
    for t, (topic, words) in enumerate(TOPICS.items()):
        for n in range(per_topic):
            body = " ".join(rng.choice(words + COMMON) for _ in range(60))
            body += " " + " ".join(rng.sample(filler, 30))
            title = " ".join(rng.sample(words, 4))
            rows.append(
                {
                    "id": f"{topic}-{n:02d}",
                    "title": title.capitalize(),
                    "body": body,
                    "section": [topic, "news"] if n % 3 == 0 else [topic],
                    "tags": [words[0]],
                    "url": f"https://example.org/{topic}/{n}",
                    "published_at": START + (t * per_topic + n) * HOUR,
                }
            )
    return rows


def write_corpus(directory: Path, per_topic: int = 10) -> tuple[Path, Path]:
    """Articles plus a click log where tech-01 is hot late and sport-02 was hot long ago."""
    articles = make_articles(per_topic)
    for row in articles:
        row["published_at"] = _rfc3339(float(row["published_at"]))  # type: ignore[arg-type]
    end = START + 4 * per_topic * HOUR
    clicks: list[dict[str, object]] = []
    for i in range(40):  # old burst: 40 readers, a day before the end
        clicks.append({"article_id": "sport-02", "ts": end - 30 * HOUR + i, "session_id": f"s{i}"})
    for i in range(15):  # recent: 15 readers in the last hour
        clicks.append({"article_id": "tech-01", "ts": end - HOUR + i * 60, "session_id": f"r{i}"})
    for i in range(10):
        clicks.append({"article_id": "politics-03", "ts": end - 2 * HOUR, "session_id": f"p{i}"})
    for _ in range(30):  # one reader reloading: counts once
        clicks.append({"article_id": "business-04", "ts": end - 10, "session_id": "reloader"})
    clicks.sort(key=lambda c: float(c["ts"]))  # type: ignore[arg-type]
    return (
        write_jsonl(directory / "articles.jsonl", articles),
        write_jsonl(directory / "clicks.jsonl", clicks),
    )


def _rfc3339(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
