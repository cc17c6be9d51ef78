"""The benchmark commands run end to end on a small size (speed lives in benchmarks/RESULTS.md,
never in tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.config import Settings


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEWSREC_REDIS_URL": settings.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "newsrec.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_bench_serve_measures_ours_bare_and_stream(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    done = run_cli(
        settings,
        "bench",
        "serve",
        "--articles",
        "300",
        "--duration",
        "0.5",
        "--concurrency",
        "2",
        "--processes",
        "1",
        "--stream-events",
        "2000",
        "--stream-batch",
        "100",
        "--json",
        str(out),
        "--plots",
        str(tmp_path / "plots"),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    kinds = {(r["server"], r["method"]) for r in results["runs"]}
    assert kinds == {
        ("newsrec", "GetRelated"),
        ("newsrec", "GetPopular"),
        ("newsrec", "RecordEvents"),
        ("bare", "GetRelated"),
    }
    assert all(r["calls"] > 0 and r["errors"] == 0 for r in results["runs"])
    assert all(0 < r["p50_ms"] <= r["p99_ms"] < 5_000 and r["qps"] > 1 for r in results["runs"])
    assert results["stream"]["accepted"] == 2000
    batched = results["stream_batches"]
    assert batched["accepted"] == 2000 and batched["batch"] == 100  # not deduplicated by the above
    assert results["bare_stream"]["accepted"] == results["bare_stream_batches"]["accepted"] == 2000
    assert "StreamEventBatches (100 events a message, 4 concurrent streams)" in done.stdout
    assert "| newsrec | 1 | GetRelated | 2 |" in done.stdout
    assert (tmp_path / "plots" / "serve-qps.png").stat().st_size > 1000


@pytest.mark.slow
def test_bench_upsert_reports_latency(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "upsert.json"
    done = run_cli(
        settings, "bench", "upsert", "--articles", "300", "--upserts", "5", "--json", str(out)
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["upserts"] == 5 and 0 < result["p50_ms"] <= result["p99_ms"] < 10_000
    assert 0 < result["first_upsert_seconds"] < 120
    assert 30 < result["server_rss_mb"] < 2_000
    assert f"p99 {result['p99_ms']:.1f} ms" in done.stdout


@pytest.mark.slow
def test_bench_footprint_measures_a_lean_replica(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "footprint.json"
    done = run_cli(settings, "bench", "footprint", "--articles", "300", "--calls", "50",
                   "--repeats", "2", "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert len(result["runs"]) == 2 and result["calls"] == 50
    for run in result["runs"]:
        assert 0 < run["listening_ms"] < 60_000
        assert 10 < run["rss_serving_mb"] <= run["hwm_mb"] < 1_000
        assert run["rss_after_calls_mb"] <= run["hwm_mb"]
    assert result["mapped"] == []  # no scikit-learn, numba, scipy, matplotlib in a read replica
    assert "heavy libraries mapped: none" in done.stdout


def test_bench_encode_compares_onnxruntime_with_torch(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "encode.json"
    done = run_cli(settings, "bench", "encode", "--articles", "16", "--singles", "3",
                   "--rounds", "1", "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["texts"] == 16 and result["max_difference"] < 1e-4  # the same vectors
    assert sorted(r["runtime"] for r in result["rows"]) == ["onnxruntime", "torch"]
    for row in result["rows"]:
        assert 0 < row["one_p50_ms"] <= row["one_p99_ms"] < 10_000 and row["batch_per_s"] > 0
    assert "onnxruntime / torch, batch throughput" in done.stdout


@pytest.mark.slow
def test_bench_replicas_measures_a_reader_and_a_writer(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "replicas.json"
    done = run_cli(settings, "bench", "replicas", "--articles", "300", "--upserts", "5",
                   "--events", "2500", "--calls", "50", "--json", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["events_accepted"] == 2500  # three messages, the last one partial
    for reads in (result["related_before"], result["related_after"]):
        assert 0 < reads["p50_ms"] <= reads["p99_ms"] < 10_000
    assert 0 < result["upsert"]["p50_ms"] <= result["upsert"]["p99_ms"] < 10_000
    # the writer holds the vectors and the encoder; the reader neither
    assert 30 < result["reader_rss_mb_after"] < result["writer_rss_mb"]
    memory = result["writer_memory_mb"]
    assert memory["file"] > 0 and memory["anon"] > 0 and memory["rss"] <= memory["hwm"]
    stages = result["upsert_stages"]
    # the first upsert, then all six (the first again: an edit)
    assert {stage: stages[stage]["count"] for stage in stages} == {
        "vectorize": 7, "encode": 7, "score_words": 7, "score": 7, "write": 7}  # fmt: skip
    assert all(stages[stage]["mean_ms"] > 0 for stage in stages)
    second = result["second_writer"]  # it mapped the first writer's vectors: no blob, no build
    assert second["upserts"] == 99 and 0 < second["first_seconds"] < 600
    assert "reader after: GetRelated" in done.stdout
