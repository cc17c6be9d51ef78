"""`newsrec check` as a new user runs it on their exports, and `newsrec train --map`: real
processes, real files, the test's real Redis."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from recommender.config import Settings
from tests.corpus import write_corpus
from tests.helpers import newsrec, shared_file
from training.demo.generate import DemoSpec, generate


def as_cms_export(articles: Path, clicks: Path, folder: Path) -> tuple[Path, Path]:
    """The corpus as a CMS might export it: other column names, CSV."""
    rows = [json.loads(line) for line in articles.open()]
    export = folder / "export.csv"
    with export.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["Article ID", "Heading Line", "Story Text", "Category", "pubDate"])
        for r in rows:
            sections = r["sections"] if "sections" in r else r.get("section", [])
            section = sections if isinstance(sections, str) else "|".join(sections)
            out.writerow([r["id"], r["title"], r["body"], section, r["published_at"]])
    log = folder / "clicks.csv"
    with log.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["item_id", "event_time", "visitor_id"])
        for line in clicks.open():
            c = json.loads(line)
            out.writerow([c["article_id"], c["ts"], c.get("session_id", "")])
    return export, log


def test_check_on_the_demo_corpus_passes(tmp_path: Path, settings: Settings) -> None:
    summary = generate(tmp_path, DemoSpec(articles=400, days=4))
    run = newsrec(settings, "check", "--articles", str(summary.articles_path),
                  "--clicks", str(summary.clicks_path))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "  articles    400 read, 0 bad row(s) (0 of them duplicate ids)" in out
    assert re.search(
        r"^  columns     id, title, body, section, tags, url, published_at$", out, re.M
    )
    assert "  unused      thread (--map FIELD=COLUMN reads one)" in out
    events = summary.clicks + summary.impressions
    assert f"  events      {events:,} read, 0 bad row(s)" in out
    assert f"100.0% of events ({events:,}; {summary.clicks:,} clicks)" in out
    assert "  live state  0 live upserts folded in, 0 takedowns dropped: 400 articles" in out
    assert "  click log   pass" in out
    assert "  shrink      pass" in out  # read from the test's Redis: nothing is live there
    assert out.rstrip().endswith("would read these files and pass the gates checked here")


@pytest.mark.slow
def test_check_on_the_mind_sample(settings: Settings) -> None:
    news = shared_file("mind-sample", "news.tsv")
    behaviors = shared_file("mind-sample", "behaviors.tsv")
    run = newsrec(settings, "check", "--articles", str(news), "--clicks", str(behaviors))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("MIND TSV (fixed columns)") == 2
    assert "  articles    2,000 read" in run.stdout
    matching = re.search(r"matching    ([\d.]+)% of events .* ([\d.]+)% of distinct", run.stdout)
    assert matching is not None, run.stdout
    assert 1 < float(matching.group(1)) < 10 and 1 < float(matching.group(2)) < 10
    assert "  click log   pass" in run.stdout


def test_check_on_broken_files_says_what_training_would_refuse(
    tmp_path: Path, settings: Settings
) -> None:
    articles, clicks = write_corpus(tmp_path)
    export, log = as_cms_export(articles, clicks, tmp_path)
    header = newsrec(settings, "check", "--articles", str(export), "--clicks", str(log))
    assert header.returncode == 1
    assert f"{export}:1: the article export has no column for title or body" in header.stdout
    assert "--map 'title=Heading Line'" in header.stdout
    assert f"  - articles: {export}:1: the article export has no column" in header.stdout
    assert "  columns     article_id <- item_id, ts <- event_time, session_id <- visitor_id" in (
        header.stdout
    )
    lines = export.read_text().splitlines()
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join([*lines, "bad id!,T,B,tech,2024-01-01", lines[1]]) + "\n")
    mapping = "title=Heading Line,body=Story Text"
    bad = newsrec(settings, "check", "--articles", str(broken), "--map", mapping)
    assert bad.returncode == 1
    assert f"{broken}:42: Article ID: invalid id 'bad id!'" in bad.stdout
    assert f"{broken}:43: id: duplicate" in bad.stdout
    assert "2 bad row(s), more than --max-bad-rows 0 allows" in bad.stdout
    skipped = newsrec(settings, "check", "--articles", str(broken), "--map", mapping,
                      "--max-bad-rows", "2")  # fmt: skip
    assert skipped.returncode == 0, skipped.stdout
    other_site = tmp_path / "other.jsonl"
    other_site.write_text("".join(json.dumps({"article_id": f"x{i}", "ts": i}) + "\n"
                                  for i in range(200)))  # fmt: skip
    config = tmp_path / "newsrec.toml"
    config.write_text(f'column_map = "{mapping}"\n')
    foreign = newsrec(settings, "check", "--config", str(config), "--articles", str(export),
                      "--clicks", str(other_site))  # fmt: skip
    assert foreign.returncode == 1
    assert "  click log   REFUSES: click-log gate: 0 of 200 events (0.00%)" in foreign.stdout
    allowed = newsrec(settings, "check", "--config", str(config), "--articles", str(export),
                      "--clicks", str(other_site), "--allow-unmatched-clicks")  # fmt: skip
    assert allowed.returncode == 0, allowed.stdout
    unreachable = newsrec(settings, "check", "--config", str(config), "--articles", str(export),
                          "--redis-url", "redis://127.0.0.1:1/0")  # fmt: skip
    assert unreachable.returncode == 1  # train could not publish either
    assert "  shrink      not checked: Redis: Error 111 connecting" in unreachable.stdout
    assert "\n  - Redis: Error 111 connecting" in unreachable.stdout


@pytest.mark.slow
def test_train_reads_a_cms_export_through_the_mapping(tmp_path: Path, settings: Settings) -> None:
    articles, clicks = write_corpus(tmp_path)
    export, log = as_cms_export(articles, clicks, tmp_path)
    unmapped = newsrec(settings, "train", "--articles", str(export), "--clicks", str(log))
    assert unmapped.returncode == 2 and "--map 'title=Heading Line'" in unmapped.stderr
    run = newsrec(settings, "train", "--articles", str(export), "--clicks", str(log),
                  "--map", "title=Heading Line", "--map", "body=Story Text")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert re.search(r"^  articles +40  from ", run.stdout, re.M), run.stdout
    events = sum(1 for _ in clicks.open())
    assert re.search(rf"^  events +{events:,}  \(", run.stdout, re.M), run.stdout
    assert "  sections   business, news, politics, sport, tech" in run.stdout  # from Category
