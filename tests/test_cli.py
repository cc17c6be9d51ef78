"""The `newsrec` command as cron and operators use it: real processes, real Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from recommender.config import Settings
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from tests.corpus import write_corpus
from tests.helpers import newsrec


@pytest.mark.slow
def test_train_summary_quiet_versions_and_rollback(tmp_path: Path, settings: Settings) -> None:
    articles, clicks = write_corpus(tmp_path)
    first = newsrec(settings, "train", "--articles", str(articles), "--clicks", str(clicks))
    assert first.returncode == 0, first.stderr
    summary = first.stdout
    assert re.search(r"^  articles +40  from ", summary, re.M), summary  # the corpus has 40
    clicks_logged = sum(1 for _ in clicks.open())
    assert re.search(rf"^  events +{clicks_logged:,}  \(", summary, re.M), summary
    peak = re.search(r"^  peak RSS +([\d,]+) MB$", summary, re.M)
    assert peak is not None and 50 < int(peak.group(1).replace(",", "")) < 4000
    quiet = newsrec(settings, "train", "--articles", str(articles), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert re.fullmatch(r"published \S+: 40 articles, [\d.]+s\n", quiet.stdout)
    header, *listing = newsrec(settings, "versions").stdout.splitlines()
    assert header.split()[:2] == ["version", "trained"] and "clicks" in header
    assert len(listing) == 2 and listing[1].startswith("* ") and listing[1].endswith("  live")
    first_row = listing[0].split()  # version, date, time, articles, events, clicks, state
    assert first_row[3:] == ["40", f"{clicks_logged:,}", first_row[5], "kept"]
    assert int(first_row[5].replace(",", "")) > 0
    back = newsrec(settings, "rollback")
    assert back.returncode == 0 and first_row[0] in back.stdout
    again = newsrec(settings, "rollback")
    assert again.returncode == 2 and "no published version older" in again.stderr


@pytest.mark.slow
def test_bad_rows_stop_the_run_or_are_skipped(tmp_path: Path, settings: Settings) -> None:
    articles, _ = write_corpus(tmp_path)
    lines = articles.read_text().splitlines()
    lines[4] = '{"id": "bad id", "title": "x"}'
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    stopped = newsrec(settings, "train", "--articles", str(bad))
    assert stopped.returncode == 2
    assert f"{bad}:5:" in stopped.stderr and "id" in stopped.stderr
    assert newsrec(settings, "versions").stdout == ""  # nothing published
    skipped = newsrec(settings, "train", "--articles", str(bad), "--max-bad-rows", "1")
    assert skipped.returncode == 0, skipped.stderr
    assert "1 bad rows skipped" in skipped.stdout and "39" in skipped.stdout


@pytest.mark.slow
def test_missing_file_and_bad_config_are_clear(tmp_path: Path, settings: Settings) -> None:
    missing = newsrec(settings, "train", "--articles", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr
    env_bad = {**os.environ, "NEWSREC_PORT": "abc"}
    run = subprocess.run(
        [sys.executable, "-m", "newsrec.cli", "versions"],
        env=env_bad,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2 and "setting 'port' got 'abc'" in run.stderr


@pytest.mark.slow
def test_serve_answers_then_stops_cleanly_on_sigterm(tmp_path: Path, settings: Settings) -> None:
    articles, _clicks = write_corpus(tmp_path)
    assert newsrec(settings, "train", "--articles", str(articles), "--quiet").returncode == 0
    env = {
        **os.environ,
        "NEWSREC_REDIS_URL": settings.redis_url,
        "NEWSREC_NAMESPACE": settings.namespace,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsrec.cli", "serve", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"serving recommender\.v1 on 127\.0\.0\.1:(\d+)", line)
    assert match, line
    with grpc.insecure_channel(f"127.0.0.1:{match.group(1)}") as channel:
        reply = pb_grpc.RecommenderStub(channel).GetRelated(
            pb.GetRelatedRequest(article_id="tech-01", limit=3), timeout=10
        )
        assert len(reply.items) == 3
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 30
    rest = proc.stderr.read()
    assert "stopping" in rest and "stopped" in rest
