"""`newsrec bench replicas`: a reader and a writer replica on one N-article model, and whether
live state slows reads as it grows.

A `newsrec serve --role reader` and a `--role writer` process share a trained namespace. The
reader answers GetRelated (latency, then its memory: it never loads the corpus vectors); the
writer takes U upserts one at a time (latency, its memory after the first and the last, the
time of each stage from its /metrics); a second writer then maps the first one's vectors
(writer_dir) and takes 100 upserts; then E events stream in (StreamEventBatches, 1,000 a
message), and the same GetRelated calls run again: live insertions and counters must not slow
reads down.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from training.bench.machine import machine
from training.bench.processes import (
    drop_namespace,
    free_port,
    memory_mb,
    processes,
    rss_mb,
    scrape_histograms,
    serve_command,
    trained_demo,
)
from training.bench.upsert import upsert_inputs, upsert_one_by_one
from training.demo.generate import DemoSpec, generate

UPSERT_STAGES = "newsrec_upsert_stage_seconds"


def _related_ms(stub: pb_grpc.RecommenderStub, ids: list[str], calls: int) -> dict[str, float]:
    latencies = []
    for n in range(calls):
        started = time.perf_counter()
        stub.GetRelated(pb.GetRelatedRequest(article_id=ids[n % len(ids)]), timeout=10)
        latencies.append((time.perf_counter() - started) * 1000)
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99)}


def _event_batches(
    ids: list[str], events: int, size: int = 1000
) -> Iterator[pb.RecordEventsRequest]:
    draw = random.Random(5)
    now = int(time.time())
    for start in range(0, events, size):
        batch = [pb.Event(article_id=draw.choice(ids), session_id=f"s{draw.randrange(10**6)}",
                          ts=Timestamp(seconds=now - draw.randrange(3600)))
                 for _ in range(min(size, events - start))]  # fmt: skip
        yield pb.RecordEventsRequest(events=batch, batch_id=f"bench-{start}")


def _upserts(
    stub: pb_grpc.RecommenderStub, batch: list[pb.ArticleInput], writer: int
) -> dict[str, Any]:
    first, _ = upsert_one_by_one(stub, batch[:1])
    after_first = memory_mb(writer)  # its peak (hwm): while loading
    _, latencies = upsert_one_by_one(stub, batch)
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"first_seconds": first, "writer_rss_mb_first": after_first["rss"],
            "writer_peak_mb_first": after_first["hwm"], "writer_memory_mb_first": after_first,
            "p50_ms": float(p50), "p99_ms": float(p99),
            "last_1000_p99_ms": float(np.percentile(latencies[-1000:], 99))}  # fmt: skip


def _second_writer(
    command: list[str], env: dict[str, str], target: str, batch: list[pb.ArticleInput]
) -> dict[str, Any]:
    """Another writer on the same machine: it maps the first one's vectors (writer_dir)."""
    with processes([command], target, [env]) as (writer,), grpc.insecure_channel(target) as chan:
        first, latencies = upsert_one_by_one(pb_grpc.RecommenderStub(chan), batch)
        p50, p99 = np.percentile(latencies, [50, 99])
        return {"first_seconds": first, "memory_mb_first_and_after": memory_mb(writer.pid),
                "upserts": len(latencies), "p50_ms": float(p50), "p99_ms": float(p99)}  # fmt: skip


@contextmanager
def _namespace(
    client: redis.Redis, articles: int, trained: str | None
) -> Iterator[tuple[str, Path]]:
    """A namespace trained on the demo corpus of `articles` (a throwaway one, or `trained`:
    trained already, e.g. at a million articles; its live state is cleared before and after),
    and a scratch folder."""
    if trained is None:
        with trained_demo(client, DemoSpec(articles=articles, clicks_per_article=0), False) as demo:
            yield demo.namespace, demo.folder
        return
    drop_namespace(client, f"{trained}:rt")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            yield trained, Path(tmp)
    finally:
        drop_namespace(client, f"{trained}:rt")


def run(url: str, articles: int, upserts: int, events: int, calls: int,
        log: Any = print, trained: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Train (unless `trained` names a namespace trained already), start a reader and a
    writer, measure; returns the figures."""
    client = redis.Redis.from_url(url)
    result: dict[str, Any] = {"machine": machine(), "articles": articles, "upserts": upserts,
                              "events": events, "calls": calls}  # fmt: skip
    with _namespace(client, articles, trained) as (namespace, folder):
        ids = [
            f"demo-{n:0{max(6, len(str(articles)))}d}"  # the generator's id width
            for n in random.Random(3).sample(range(1, articles + 1), min(2000, articles))
        ]
        extra = folder / "extra"
        generate(extra, DemoSpec(articles=upserts + 101, clicks_per_article=0, seed=99))
        ports, metrics_port = (free_port(), free_port(), free_port()), free_port()
        roles = ("reader", "writer", "writer")  # the second writer starts after the upserts
        commands = [serve_command(port, url, namespace, role)
                    for port, role in zip(ports, roles, strict=True)]  # fmt: skip
        env = {**os.environ, "NEWSREC_WRITER_DIR": str(folder / "writer")}
        envs = [env, {**env, "NEWSREC_METRICS_PORT": str(metrics_port)}]
        inputs = upsert_inputs(extra / "articles.jsonl", upserts + 101)
        with (
            processes(commands[:2], f"127.0.0.1:{ports[1]}", envs) as (reader, writer),
            grpc.insecure_channel(f"127.0.0.1:{ports[0]}") as read_channel,
            grpc.insecure_channel(f"127.0.0.1:{ports[1]}") as write_channel,
        ):
            reads = pb_grpc.RecommenderStub(read_channel)
            writes = pb_grpc.RecommenderStub(write_channel)
            result["related_before"] = _related_ms(reads, ids, calls)
            result["reader_rss_mb_before"] = rss_mb(reader.pid)
            log(f"reader: {calls:,} GetRelated {result['related_before']}, RSS "
                f"{result['reader_rss_mb_before']:,.0f} MB")  # fmt: skip
            result["upsert"] = _upserts(writes, inputs[: upserts + 1], writer.pid)
            result["writer_memory_mb"] = memory_mb(writer.pid)
            result["writer_rss_mb"] = result["writer_memory_mb"]["rss"]
            result["upsert_stages"] = scrape_histograms(metrics_port, UPSERT_STAGES)
            log(f"writer: {upserts:,} upserts {result['upsert']}, memory "
                f"{result['writer_memory_mb']}; stages {result['upsert_stages']}")  # fmt: skip
            result["second_writer"] = _second_writer(
                commands[2], env, f"127.0.0.1:{ports[2]}", inputs[upserts + 1 :]
            )
            log(f"second writer: {result['second_writer']}")
            started = time.perf_counter()
            reply = reads.StreamEventBatches(_event_batches(ids, events), timeout=3600)
            result["events_per_second"] = reply.accepted / (time.perf_counter() - started)
            result["events_accepted"] = reply.accepted
            result["related_after"] = _related_ms(reads, ids, calls)
            result["reader_rss_mb_after"] = rss_mb(reader.pid)
            log(f"events: {reply.accepted:,} accepted at {result['events_per_second']:,.0f}/s; "
                f"reader after: GetRelated {result['related_after']}, RSS "
                f"{result['reader_rss_mb_after']:,.0f} MB")  # fmt: skip
    return result
