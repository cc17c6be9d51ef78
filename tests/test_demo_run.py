"""`newsrec demo` as a new user reads it: every list names its article, items carry titles,
sections and scores, and no list shows one headline twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recommender.config import Settings
from tests.helpers import newsrec

HEADING = re.compile(
    r"^Related Articles for \[(?P<sections>[^\]]+)\] (?P<title>.+)  \((?P<id>[^)]+)\):$"
)
ITEM = re.compile(
    r"^ +\d+\. \[(?P<sections>[^\]]+)\] (?P<title>.+)  \((?P<id>demo-\d+), "
    r"(?P<when>[\d-]+ [\d:]+), score (?P<score>[\d.]+)\)$"
)


def lists_in(output: str) -> dict[str, list[re.Match[str]]]:
    """Each printed list's heading line -> its item lines, parsed."""
    lists: dict[str, list[re.Match[str]]] = {}
    current: list[re.Match[str]] | None = None
    for line in output.splitlines():
        if line and not line.startswith(" "):
            boxed = line.startswith(("Related Articles for", "Popular")) and line.endswith(":")
            current = lists.setdefault(line, []) if boxed else None
        elif current is not None and line.strip():
            item = ITEM.match(line)
            assert item is not None, f"an item line without title, section or score: {line!r}"
            current.append(item)
    return lists


@pytest.mark.slow
def test_demo_lists_have_titles_and_no_headline_twice(tmp_path: Path, settings: Settings) -> None:
    run = newsrec(settings, "demo", "--articles", "600", "--data-dir", str(tmp_path / "data"),
                  "--model-dir", str(tmp_path / "models"), timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lists = lists_in(run.stdout)
    related = [h for h in lists if h.startswith("Related Articles for")]
    assert len(related) == 1 and len(lists) == 3, list(lists)
    heading = HEADING.match(related[0])
    assert heading is not None and heading["title"].strip() and heading["id"].startswith("demo-")
    items = lists[related[0]]
    assert len(items) == 8
    for name, listed in lists.items():
        titles = [item["title"] for item in listed]
        assert len(set(titles)) == len(titles), f"{name} repeats a headline: {titles}"
        assert all(float(item["score"]) > 0 for item in listed)
    assert heading["title"] not in [item["title"] for item in items]
    assert heading["id"] not in [item["id"] for item in items]
    assert "Next steps" in run.stdout and "newsrec check --articles" in run.stdout
