"""`newsrec bench upsert`: UpsertArticles latency of one article against an N-article corpus.

Trains and publishes an N-article demo corpus into a throwaway namespace, starts a real server
process, upserts articles of another seed one call at a time and reports p50/p99, the replica's
one-off corpus load and its memory.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis

from recommender.config import load_settings
from recommender.embedded import resolve_redis_url
from recommender.store import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from training.bench_serve import drop_namespace, free_port, machine, processes, serve_command
from training.demo_data import DemoSpec, generate
from training.pipeline import TrainConfig, train


def _inputs(path: Path, count: int) -> list[pb.ArticleInput]:
    """The first `count` articles of a generated export, renamed so they are new."""
    result = []
    with path.open() as handle:
        for line in handle:
            row = json.loads(line)
            article = pb.ArticleInput(
                article_id=f"new-{row['id']}",
                title=row["title"],
                body=row["body"],
                sections=row["section"],
                tags=row["tags"],
                url=row["url"],
            )
            result.append(article)
            if len(result) == count:
                break
    return result


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(redis_url: str, articles: int, upserts: int, log: Any = print) -> dict[str, Any]:
    """Train, serve, upsert; returns the figures."""
    namespace = f"bench-{secrets.token_hex(4)}"
    client = redis.Redis.from_url(redis_url)
    result: dict[str, Any] = {"machine": machine(), "articles": articles}
    with tempfile.TemporaryDirectory() as tmp:
        base, extra = Path(tmp) / "base", Path(tmp) / "extra"
        started = time.perf_counter()
        generate(base, DemoSpec(articles=articles, clicks_per_article=0))
        generate(extra, DemoSpec(articles=upserts + 1, clicks_per_article=0, seed=99))
        log(f"generated in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        train(
            TrainConfig(
                articles=base / "articles.jsonl", model_dir=Path(tmp) / "models", progress=False
            ),
            client,
            Keys(namespace),
            log=lambda _m: None,
        )
        result["train_seconds"] = time.perf_counter() - started
        log(f"trained and published in {result['train_seconds']:.1f}s")
        port = free_port()
        command = serve_command(port, redis_url, namespace)
        try:
            with (
                processes([command], f"127.0.0.1:{port}") as (server,),
                grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
            ):
                stub = pb_grpc.RecommenderStub(channel)
                batch = _inputs(extra / "articles.jsonl", upserts + 1)
                started = time.perf_counter()
                stub.UpsertArticles(pb.UpsertArticlesRequest(articles=batch[:1]), timeout=600)
                result["first_upsert_seconds"] = time.perf_counter() - started
                latencies = []
                for article in batch[1:]:
                    started = time.perf_counter()
                    stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]), timeout=60)
                    latencies.append((time.perf_counter() - started) * 1000)
                p50, p99 = np.percentile(latencies, [50, 99])
                result.update(
                    upserts=len(latencies),
                    p50_ms=float(p50),
                    p99_ms=float(p99),
                    max_ms=float(max(latencies)),
                )
                result["server_rss_mb"] = _rss_mb(server.pid)
        finally:
            drop_namespace(client, namespace)
    log(
        f"{articles:,} articles: first upsert (loads the corpus) "
        f"{result['first_upsert_seconds']:.2f}s; then {result['upserts']} upserts one at a time: "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f}"
        f" ms; server RSS {result['server_rss_mb']:,.0f} MB"
    )
    return result


def add_commands(benches: Any) -> dict[str, Any]:
    """Register `newsrec bench upsert`."""
    p = benches.add_parser("upsert", help="UpsertArticles latency against an N-article corpus")
    p.add_argument("--redis-url", help="Redis URL (default $NEWSREC_REDIS_URL, else embedded)")
    p.add_argument("--articles", type=int, default=20_000)
    p.add_argument("--upserts", type=int, default=200)
    p.add_argument("--json", type=Path, help="also write the figures here")
    return {"upsert": cmd_bench_upsert}


def cmd_bench_upsert(args: Any) -> int:
    """Handler of `newsrec bench upsert`."""
    settings = load_settings(overrides={"redis_url": args.redis_url})
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    result = run(url, args.articles, args.upserts)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0
