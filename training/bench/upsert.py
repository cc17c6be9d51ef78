"""`newsrec bench upsert`: UpsertArticles latency of one article at a time against a trained
N-article model, through a real `newsrec serve` process, and that process's memory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis

from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from training.bench.machine import machine
from training.bench.processes import free_port, processes, rss_mb, serve_command, trained_demo
from training.demo.generate import DemoSpec, generate


def upsert_inputs(path: Path, count: int) -> list[pb.ArticleInput]:
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


def upsert_one_by_one(
    stub: pb_grpc.RecommenderStub, batch: list[pb.ArticleInput]
) -> tuple[float, list[float]]:
    """Seconds of the first upsert (it loads the vectors and the model), then the latency in ms
    of each of the others, one article a call."""
    started = time.perf_counter()
    stub.UpsertArticles(pb.UpsertArticlesRequest(articles=batch[:1]), timeout=600)
    first = time.perf_counter() - started
    latencies = []
    for article in batch[1:]:
        started = time.perf_counter()
        stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]), timeout=60)
        latencies.append((time.perf_counter() - started) * 1000)
    return first, latencies


def run(redis_url: str, articles: int, upserts: int, log: Any = print) -> dict[str, Any]:
    """Train, serve, upsert; returns the figures."""
    client = redis.Redis.from_url(redis_url)
    result: dict[str, Any] = {"machine": machine(), "articles": articles}
    started = time.perf_counter()
    with trained_demo(client, DemoSpec(articles=articles, clicks_per_article=0), False) as demo:
        result["train_seconds"] = time.perf_counter() - started
        log(f"generated, trained and published in {result['train_seconds']:.1f}s")
        extra = demo.folder / "extra"
        generate(extra, DemoSpec(articles=upserts + 1, clicks_per_article=0, seed=99))
        port = free_port()
        command = serve_command(port, redis_url, demo.namespace)
        with (
            processes([command], f"127.0.0.1:{port}") as (server,),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = pb_grpc.RecommenderStub(channel)
            batch = upsert_inputs(extra / "articles.jsonl", upserts + 1)
            result["first_upsert_seconds"], latencies = upsert_one_by_one(stub, batch)
            p50, p99 = np.percentile(latencies, [50, 99])
            result.update(upserts=len(latencies), p50_ms=float(p50), p99_ms=float(p99),
                          max_ms=max(latencies), server_rss_mb=rss_mb(server.pid))  # fmt: skip
    log(
        f"{articles:,} articles: first upsert (loads the vectors) "
        f"{result['first_upsert_seconds']:.2f}s; then {result['upserts']} upserts one at a time: "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f}"
        f" ms; server RSS {result['server_rss_mb']:,.0f} MB"
    )
    return result
