"""`newsrec bench serve`: N `newsrec serve` processes on one port (SO_REUSEPORT) under a separate
load-generator process (training/bench/load.py), against a bare grpc.aio server with a constant
answer (training/bench/bare.py) and redis-benchmark GET on the same Redis, in the same run; and
events/s through StreamEvents and StreamEventBatches."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

from recommender.config import Settings
from recommender.embedded import resolve_redis_url
from training.bench.machine import describe, machine
from training.bench.processes import free_port, processes, serve_command, trained_demo
from training.demo.generate import DemoSpec


@dataclass
class ServeBenchConfig:
    """What to measure."""

    articles: int = 3000
    duration: float = 5.0
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 64])
    processes: list[int] = field(default_factory=lambda: [1, 2])
    stream_events: int = 200_000
    stream_batch: int = 1000
    """Events per StreamEventBatches message."""
    methods: list[str] = field(default_factory=lambda: ["GetRelated", "GetPopular", "RecordEvents"])


def load(
    target: str,
    method: str,
    ids_file: Path,
    concurrency: int,
    duration: float,
    events: int = 0,
    batch: int = 1000,
) -> dict[str, Any]:
    """One run of the load generator in its own process."""
    command = [
        sys.executable,
        "-m",
        "training.bench.load",
        "--target",
        target,
        "--method",
        method,
        "--ids",
        str(ids_file),
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--events",
        str(events),
        "--batch",
        str(batch),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


STREAMS = (("stream", "StreamEvents"), ("stream_batches", "StreamEventBatches"))
"""Result key and method of the two event streams: one event a message, or a batch a message."""


def streams(
    results: dict[str, Any],
    server: str,
    target: str,
    ids_file: Path,
    config: ServeBenchConfig,
    log: Any,
) -> None:
    """Events/s through StreamEvents and StreamEventBatches (each with its own sessions, so
    neither deduplicates the other); against the bare server, events/s it merely receives."""
    for key, method in STREAMS:
        row = load(
            target, method, ids_file, 0, 0, events=config.stream_events, batch=config.stream_batch
        )
        results[key if server == "newsrec" else f"bare_{key}"] = row
        per_message = f"{row['batch']:,} events a message" if row["batch"] else "1 event a message"
        log(
            f"  {server:8} {method} ({per_message}, {row['streams']} streams): "
            f"{row['accepted']:,} accepted in {row['seconds']:.1f}s = "
            f"{row['events_per_s']:,.0f} events/s"
        )


def redis_get_benchmark(url: str, requests: int = 200_000) -> float | None:
    """redis-benchmark GET requests/s against the same Redis (None if the tool is missing)."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return None
    parsed = urlparse(url)
    where = (
        ["-s", parsed.path]
        if parsed.scheme == "unix"
        else ["-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379)]
    )
    out = subprocess.run(
        [tool, *where, "-t", "get", "-n", str(requests), "-c", "50", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    ).stdout
    found = re.findall(r"GET: ([\d.]+) requests per second", out)
    return float(found[-1]) if found else None


def run(settings: Settings, config: ServeBenchConfig, log: Any = print) -> dict[str, Any]:
    """Everything, returned as a dict (and printed as it goes)."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    client = redis.Redis.from_url(url)
    results: dict[str, Any] = {"machine": machine(), "articles": config.articles, "runs": []}
    log(describe(results["machine"]))
    spec = DemoSpec(articles=config.articles, clicks_per_article=2.0)
    with trained_demo(client, spec) as demo:
        ids = [json.loads(line)["id"] for line in (demo.folder / "articles.jsonl").open()]
        ids_file = demo.folder / "ids.txt"
        ids_file.write_text("\n".join(ids))
        for count in config.processes:
            port = free_port()
            ours = [serve_command(port, url, demo.namespace)] * count
            bare = [[sys.executable, "-m", "training.bench.bare", "--port", str(port)]] * count
            for name, commands in (("newsrec", ours), ("bare", bare)):
                with processes(commands, f"127.0.0.1:{port}"):
                    measure(results, name, count, f"127.0.0.1:{port}", ids_file, config, log)
    results["redis_get_per_s"] = redis_get_benchmark(url)
    log(f"  redis-benchmark GET: {results['redis_get_per_s']} requests/s")
    return results


def measure(
    results: dict[str, Any],
    server: str,
    count: int,
    target: str,
    ids_file: Path,
    config: ServeBenchConfig,
    log: Any,
) -> None:
    """Each method at each concurrency against one running server group (and the streams,
    with the first group size)."""
    methods = config.methods if server == "newsrec" else ["GetRelated"]
    for method in methods:
        for c in config.concurrency:
            row = load(target, method, ids_file, c, config.duration)
            row.update(server=server, processes=count, method=method, concurrency=c)
            results["runs"].append(row)
            log(
                f"  {server:8} x{count} {method:12} c={c:<3} {row['qps']:8.0f} QPS  "
                f"p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  errors {row['errors']}"
            )
    if count == config.processes[0] and config.stream_events:
        streams(results, server, target, ids_file, config, log)
