"""`newsrec bench footprint`: what a fresh read replica costs. A `newsrec serve` process is
started on a trained demo model; measured: the time from spawn until its health service answers
SERVING, its RSS then, its RSS after N distinct GetRelated calls, its peak (VmHWM), and which
heavy libraries are mapped into it (a read-only replica should map none of the training stack).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import redis

from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from training.bench.machine import describe, machine
from training.bench.processes import free_port, rss_mb, serve_command, trained_demo, wait_serving
from training.demo.generate import DemoSpec

HEAVY = ("sklearn", "numba", "llvmlite", "scipy", "matplotlib", "torch")
"""Libraries whose shared objects a read replica should not map (scipy: none needed to read)."""


def mapped_libraries(pid: int) -> list[str]:
    """Which of HEAVY have files mapped into the process."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name in HEAVY if f"/{name}/" in maps]


def one_replica(url: str, namespace: str, ids: list[str], calls: int) -> dict[str, Any]:
    """Start a replica, time it to SERVING, call it, measure it, stop it."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        serve_command(port, url, namespace), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_serving(f"127.0.0.1:{port}", service="recommender.v1.Recommender", poll=0.01)
        listening = time.perf_counter() - started
        row: dict[str, Any] = {"listening_ms": listening * 1000, "rss_serving_mb": rss_mb(proc.pid)}
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RecommenderStub(channel)
            for n in range(calls):
                stub.GetRelated(pb.GetRelatedRequest(article_id=ids[n % len(ids)]), timeout=10)
        row |= {
            "rss_after_calls_mb": rss_mb(proc.pid),
            "hwm_mb": rss_mb(proc.pid, "VmHWM"),
            "mapped": mapped_libraries(proc.pid),
        }
        return row
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run(url: str, articles: int, calls: int, repeats: int, log: Any = print) -> dict[str, Any]:
    """`repeats` fresh replicas on one trained demo model; medians and ranges."""
    client = redis.Redis.from_url(url)
    result: dict[str, Any] = {"machine": machine(), "articles": articles, "calls": calls}
    with trained_demo(client, DemoSpec(articles=articles, clicks_per_article=2.0)) as demo:
        ids = [json.loads(line)["id"] for line in (demo.folder / "articles.jsonl").open()]
        rows = [one_replica(url, demo.namespace, ids, calls) for _ in range(repeats)]
    result["runs"] = rows
    for key in ("listening_ms", "rss_serving_mb", "rss_after_calls_mb", "hwm_mb"):
        values = [r[key] for r in rows]
        result[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    result["mapped"] = sorted({name for r in rows for name in r["mapped"]})
    log(describe(result["machine"]))
    log(
        f"newsrec serve on {articles:,} demo articles, {repeats} fresh replicas: time to SERVING "
        f"{_spread(result['listening_ms'], 'ms')}; RSS at SERVING "
        f"{_spread(result['rss_serving_mb'], 'MB')}; after {calls:,} GetRelated "
        f"{_spread(result['rss_after_calls_mb'], 'MB')} (peak {_spread(result['hwm_mb'], 'MB')});"
        f" heavy libraries mapped: {', '.join(result['mapped']) or 'none'}"
    )
    return result


def _spread(values: dict[str, float], unit: str) -> str:
    return f"{values['median']:,.0f} {unit} ({values['min']:,.0f}-{values['max']:,.0f})"
