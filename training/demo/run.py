"""`newsrec demo`: generate the demo corpus, train and publish, start a real gRPC server, and
print the Related and Popular boxes as a site backend would receive them."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import replace
from pathlib import Path

import grpc

from recommender.config import Settings
from recommender.connect import keys_for
from recommender.domain import Article
from recommender.server import create_server
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from training.demo.generate import DemoSpec, generate
from training.gates import Gates
from training.pipeline import TrainConfig, train
from training.related.params import RelatedParams


def _show(title: str, items: list[pb.Item]) -> None:
    print(f"\n{title}")
    for n, item in enumerate(items, start=1):
        sections = "|".join(item.sections)
        when = (
            item.published_at.ToDatetime().strftime("%Y-%m-%d %H:%M")
            if item.HasField("published_at")
            else "-"
        )
        print(
            f"  {n:>2}. [{sections}] {item.title}  ({item.article_id}, {when}, "
            f"score {item.score:.3f})"
        )


def next_steps(settings: Settings, sample_id: str) -> list[str]:
    """What to try after the demo, and what it left running."""
    lines = [
        "",
        "Next steps (the `newsrec` command is .venv/bin/newsrec; `. .venv/bin/activate` puts it",
        "on PATH):",
        "  newsrec serve                       # the same server on 127.0.0.1:50051",
        '  grpcurl -plaintext -d \'{"article_id": "' + sample_id + '", "explain": true}\' \\',
        "    127.0.0.1:50051 recommender.v1.Recommender/GetRelated",
        '  grpcurl -plaintext -d \'{"window": "rising"}\' 127.0.0.1:50051 '
        "recommender.v1.Recommender/GetPopular",
        "  cd examples/node && npm ci && node client.js all " + sample_id + "   # a Node client",
        "  newsrec check --articles YOUR.csv --clicks YOUR_CLICKS.csv   # your own data: a dry run",
        "  newsrec train --articles YOUR.csv --clicks YOUR_CLICKS.csv   # (docs/own-data.md)",
    ]
    if not settings.redis_url:
        lines += [
            "",
            f"The embedded Redis is still running (its data in {settings.data_dir}), so the",
            "commands above see this model; `newsrec redis-stop` stops it.",
        ]
    return lines


async def _query(port: int, sample: Article, section: str, all_ids: list[str]) -> None:
    """Real gRPC calls against the running server, then a short latency sample."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RecommenderStub(channel)
        info = await stub.GetModelInfo(pb.GetModelInfoRequest())
        print(
            f"\nmodel {info.model_version}: {info.article_count:,} articles, "
            f"{info.click_count:,} clicks, sections {', '.join(info.sections)}"
        )
        related = await stub.GetRelated(pb.GetRelatedRequest(article_id=sample.id, limit=8))
        where = "|".join(sample.sections)
        _show(f"Related Articles for [{where}] {sample.title}  ({sample.id}):",
              list(related.items))  # fmt: skip
        popular = await stub.GetPopular(pb.GetPopularRequest(limit=8))
        _show(
            f"Popular (site-wide, as of {popular.as_of.ToDatetime():%Y-%m-%d %H:%M} UTC):",
            list(popular.items),
        )
        in_section = await stub.GetPopular(pb.GetPopularRequest(section=section, limit=5))
        _show(f"Popular in {section!r}:", list(in_section.items))
        print()
        for label, ids in (
            ("first call per article (read from Redis)", all_ids[:300]),
            ("repeat calls (in-process answer cache)", all_ids[:300]),
        ):
            latencies = []
            for article_id in ids:
                start = time.perf_counter()
                await stub.GetRelated(pb.GetRelatedRequest(article_id=article_id, limit=10))
                latencies.append((time.perf_counter() - start) * 1000)
            cuts = statistics.quantiles(latencies, n=100)
            p50, p99 = cuts[49], cuts[98]
            print(
                f"GetRelated latency, {len(latencies)} sequential calls, {label}: "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
            )


def run_demo(settings: Settings, data_dir: Path, spec: DemoSpec | None = None) -> int:
    """The whole demo; returns the exit status."""
    from recommender.connect import sync_client
    from recommender.embedded import resolve_redis_url

    articles_path, clicks_path = data_dir / "articles.jsonl", data_dir / "clicks.jsonl"
    if not (articles_path.exists() and clicks_path.exists()):
        print(f"generating the demo corpus in {data_dir} ...")
        generate(data_dir, spec or DemoSpec())
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    print(f"Redis: {url}")
    client = sync_client(settings)
    config = TrainConfig(
        articles=articles_path,
        clicks=clicks_path,
        model_dir=settings.model_dir,
        keep_versions=settings.keep_versions,
        progress=False,
        gates=Gates.from_settings(settings),
        lock_lease_seconds=settings.lock_lease_seconds,
        related=RelatedParams(explain=True),  # so that GetRelated(explain=true) can be tried
    )
    result = train(config, client, keys_for(settings), log=lambda m: print(f"  {m}"))
    print(
        f"trained and published {result.version} in {sum(result.stage_seconds.values()):.1f}s"
        f" (peak RSS {result.peak_rss_mb:,.0f} MB)"
    )
    first = result.articles.articles[len(result.articles.articles) // 2]
    section = first.sections[0] if first.sections else ""

    async def serve_and_query() -> None:
        server, port = await create_server(replace(settings, redis_url=url, port=0))
        print(f"gRPC server listening on 127.0.0.1:{port}")
        try:
            others = [a.id for a in result.articles.articles if a.id != first.id]
            await _query(port, first, section, others)
        finally:
            await server.stop(2)
            print("\nserver stopped")

    asyncio.run(serve_and_query())
    print("\n".join(next_steps(settings, first.id)))
    return 0
