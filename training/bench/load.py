"""The load generator of `newsrec bench serve`: runs in its own process so it never shares an
event loop with the server it measures. Prints one JSON line of results.

    python -m training.bench_load --target 127.0.0.1:PORT --method GetRelated --ids FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np

from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc

ZIPF_EXPONENT = 1.1
"""Article popularity on news sites is roughly Zipf: a few stories take most page views."""


def zipf_ids(ids: list[str], count: int, seed: int = 0) -> list[str]:
    """`count` ids drawn with Zipf-distributed ranks over a shuffled id list."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    ranks = np.minimum(rng.zipf(ZIPF_EXPONENT, size=count) - 1, len(ids) - 1)
    return [ids[order[r]] for r in ranks]


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds."""
    if not latencies:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    values = np.percentile(np.asarray(latencies) * 1000, [50, 95, 99])
    return {"p50_ms": float(values[0]), "p95_ms": float(values[1]), "p99_ms": float(values[2])}


async def unary_load(
    target: str, method: str, ids: list[str], concurrency: int, duration: float
) -> dict[str, float]:
    """`concurrency` callers in flight for `duration` seconds after a short warm-up."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        draws = zipf_ids(ids, 200_000)
        latencies: list[float] = []
        errors = 0
        stop_at = 0.0
        measuring = False

        base, _, window = method.partition(":")  # "GetPopular:rising": a named window

        def request(n: int) -> object:
            article = draws[n % len(draws)]
            if base == "GetRelated":
                return stub.GetRelated(pb.GetRelatedRequest(article_id=article, limit=10))
            if base == "GetPopular":
                sections = ("", "world", "sport", "tech")
                return stub.GetPopular(
                    pb.GetPopularRequest(section=sections[n % 4], limit=10, window=window)
                )
            events = [
                pb.Event(article_id=a, session_id=f"s{n}-{i}")
                for i, a in enumerate(draws[n % 1000 : n % 1000 + 10])
            ]
            return stub.RecordEvents(pb.RecordEventsRequest(events=events))

        async def caller(worker: int) -> None:
            nonlocal errors
            n = worker
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    await request(n)  # type: ignore[misc]
                except grpc.aio.AioRpcError:
                    errors += 1
                if measuring:
                    latencies.append(time.perf_counter() - start)
                n += concurrency

        stop_at = time.perf_counter() + 1.0  # warm-up: connections, caches
        await asyncio.gather(*(caller(w) for w in range(concurrency)))
        measuring = True
        started = time.perf_counter()
        stop_at = started + duration
        await asyncio.gather(*(caller(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "calls": len(latencies),
        "qps": len(latencies) / elapsed,
        "errors": errors,
        **percentiles(latencies),
    }


async def stream_load(
    target: str, ids: list[str], events: int, streams: int, batch: int = 0
) -> dict[str, float]:
    """Push `events` click events through `streams` concurrent client streams: StreamEvents
    (one event a message) when batch is 0, else StreamEventBatches with `batch` events a message.
    Messages are built while the clock runs, as a producer would."""
    per_stream = events // streams
    draws = zipf_ids(ids, per_stream, seed=1)

    def single(stream: int) -> Iterator[pb.Event]:
        for i, article in enumerate(draws):
            yield pb.Event(article_id=article, session_id=f"e{stream}-{i}")

    def batched(stream: int) -> Iterator[pb.RecordEventsRequest]:
        for start in range(0, len(draws), batch):
            request = pb.RecordEventsRequest()
            add = request.events.add
            for i, article in enumerate(draws[start : start + batch], start):
                add(article_id=article, session_id=f"b{stream}-{i}")
            yield request

    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        started = time.perf_counter()
        calls = [
            stub.StreamEventBatches(batched(s)) if batch else stub.StreamEvents(single(s))
            for s in range(streams)
        ]
        replies = await asyncio.gather(*calls)
        elapsed = time.perf_counter() - started
    accepted = sum(r.accepted for r in replies)
    return {
        "events": per_stream * streams,
        "accepted": accepted,
        "events_per_s": accepted / elapsed,
        "seconds": elapsed,
        "batch": batch,
        "streams": streams,
    }


def main() -> None:
    """Parse flags, run one load, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument(
        "--method",
        default="GetRelated",
        help="GetRelated, GetPopular (GetPopular:WINDOW for a named window), RecordEvents, "
        "StreamEvents or StreamEventBatches",
    )
    parser.add_argument("--ids", type=Path, required=True, help="file with one article id a line")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000, help="events per batched message")
    args = parser.parse_args()
    known = ("GetRelated", "GetPopular", "RecordEvents", "StreamEvents", "StreamEventBatches")
    base, _, window = args.method.partition(":")
    if base not in known or (window and base != "GetPopular"):
        parser.error(f"--method {args.method!r}: one of {', '.join(known)} (or GetPopular:WINDOW)")
    ids = args.ids.read_text().split()
    if args.method in ("StreamEvents", "StreamEventBatches"):
        batch = args.batch if args.method == "StreamEventBatches" else 0
        result = asyncio.run(stream_load(args.target, ids, args.events, args.streams, batch))
    else:
        result = asyncio.run(
            unary_load(args.target, args.method, ids, args.concurrency, args.duration)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
