"""The `newsrec` command: train, serve, rollback, versions, demo-data, demo, redis-stop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import redis

from recommender.config import ConfigError, Settings, load_settings
from recommender.embedded import EmbeddedRedisError, resolve_redis_url, stop_embedded
from recommender.store import Keys
from training import bench_related, bench_serve, bench_upsert, replay_cli, workbench_cli
from training import publish as pub
from training.pipeline import TrainConfig, TrainResult, train
from training.related import RelatedParams
from training.sources import InputError, parse_time


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file (or $NEWSREC_CONFIG)")
    parser.add_argument("--redis-url", help="Redis URL (default $NEWSREC_REDIS_URL, else embedded)")
    parser.add_argument("--namespace", help="Redis key prefix (default newsrec)")


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their flags."""
    parser = argparse.ArgumentParser(prog="newsrec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fit and publish a model version")
    _settings_flags(t)
    t.add_argument("--articles", type=Path, required=True, help="article export (JSONL/CSV/MIND)")
    t.add_argument("--clicks", type=Path, help="click log (JSONL/CSV/MIND behaviors.tsv)")
    t.add_argument("--format", default="auto", choices=["auto", "jsonl", "csv", "mind"])
    t.add_argument(
        "--as-of",
        help="score trending as of this time (RFC 3339 or epoch); default: the newest event",
    )
    t.add_argument("--model-dir", type=Path, help="where model/<version>/ folders go")
    t.add_argument("--params", type=Path, help="params TOML ([related], [trending]) as the base")
    t.add_argument("--top-k", type=int, help=f"related per article (default {RelatedParams.top_k})")
    replay_cli.add_train_flags(t)
    t.add_argument(
        "--max-bad-rows",
        type=int,
        default=0,
        help="skip up to N bad input rows instead of stopping (default 0)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress output; one summary line")

    s = sub.add_parser("serve", help="run the gRPC server")
    _settings_flags(s)
    s.add_argument("--port", type=int, help="gRPC port (default $NEWSREC_PORT or 50051)")
    s.add_argument("--host", help="bind address (default 127.0.0.1)")

    r = sub.add_parser("rollback", help="make an earlier published version live again")
    _settings_flags(r)
    r.add_argument("--to", help="version to restore (default: the one before the live one)")

    v = sub.add_parser("versions", help="list published versions")
    _settings_flags(v)

    d = sub.add_parser("demo-data", help="write the generated demo corpus and click log")
    d.add_argument("out_dir", type=Path)
    d.add_argument("--articles", type=int, default=3000)
    d.add_argument("--days", type=int, default=14)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument(
        "--clicks-per-article",
        type=float,
        help="mean clicks per article (default 20; 0 writes no clicks, about twice as fast)",
    )

    m = sub.add_parser("demo", help="generate data, train, serve and query over gRPC")
    _settings_flags(m)
    m.add_argument("--data-dir", type=Path, default=Path(".newsrec/demo-data"))
    m.add_argument("--model-dir", type=Path)

    x = sub.add_parser("export-events", help="write live events as a click log for training")
    _settings_flags(x)
    x.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    x.add_argument("--since", help="only events at or after this time (RFC 3339 or epoch)")
    x.add_argument("--until", help="only events before this time")

    ev = sub.add_parser("eval", help="offline list quality: metrics, replay, HTML report")
    evals = ev.add_subparsers(dest="eval_command", required=True)
    handlers = {**replay_cli.add_commands(evals), **workbench_cli.add_eval_commands(evals)}
    ev.set_defaults(eval_handlers=handlers)
    COMMANDS.update(workbench_cli.add_commands(sub))

    bn = sub.add_parser("bench", help="benchmarks: the server under load, neighbour search")
    benches = bn.add_subparsers(dest="bench_command", required=True)
    bn.set_defaults(
        bench_handlers={
            **bench_serve.add_commands(benches),
            **bench_upsert.add_commands(benches),
            **bench_related.add_commands(benches),
        }
    )

    e = sub.add_parser("redis-stop", help="stop the embedded Redis server (data stays on disk)")
    _settings_flags(e)
    return parser


def settings_from(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings layered from defaults, TOML, env and this command's flags."""
    flags = {
        "redis_url": getattr(args, "redis_url", None),
        "namespace": getattr(args, "namespace", None),
        "model_dir": getattr(args, "model_dir", None),
        **extra,
    }
    return load_settings(getattr(args, "config", None), overrides=flags)


def redis_client(settings: Settings) -> redis.Redis:
    """A sync client on the configured Redis, or the embedded one."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
    client.ping()
    return client


def summary(result: TrainResult) -> str:
    """The one-screen report printed at the end of a training run."""
    meta = result.meta
    arts = result.articles
    lines = [
        f"published version {result.version}  (model folder {result.model_path})",
        f"  articles   {meta['articles']:>9,}  from {arts.path} ({arts.format}), "
        f"{len(arts.bad_rows)} bad rows skipped",
    ]
    if result.events is not None:
        ev = result.events
        lines.append(
            f"  events     {len(ev):>9,}  ({ev.clicks:,} clicks) from {ev.path}, "
            f"{len(ev.bad_rows)} bad rows skipped, {ev.unknown_ids:,} with unknown "
            "article ids ignored"
        )
    lines.append(
        f"  vocabulary {meta['vocabulary']:>9,} terms; {meta['duplicate_pairs']:,} "
        "near-duplicate pairs kept out of lists"
    )
    lines.append(f"  sections   {', '.join(meta['sections'])}")
    lines.append(replay_cli.trending_summary(meta))
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.stage_seconds.items())
    lines.append(f"  time       {sum(result.stage_seconds.values()):.2f}s ({stages})")
    lines.append(f"  peak RSS   {result.peak_rss_mb:,.0f} MB")
    if result.pruned:
        lines.append(f"  pruned     {', '.join(result.pruned)}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    related, trending = workbench_cli.train_params(args)
    config = TrainConfig(
        articles=args.articles,
        clicks=args.clicks,
        format=args.format,
        as_of=parse_time(args.as_of) if args.as_of else None,
        model_dir=settings.model_dir,
        max_bad_rows=args.max_bad_rows,
        related=related,
        trending=trending,
        keep_versions=settings.keep_versions,
        publish_batch=settings.publish_batch,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if args.max_bad_rows < 0:
        raise InputError("--max-bad-rows must be >= 0")
    client = redis_client(settings)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    result = train(config, client, Keys(settings.namespace), log)
    if args.quiet:
        print(
            f"published {result.version}: {result.meta['articles']} articles, "
            f"{sum(result.stage_seconds.values()):.1f}s"
        )
    else:
        print(summary(result))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from recommender.server import serve

    settings = settings_from(args, port=args.port, host=args.host)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(settings))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    version = pub.rollback(redis_client(settings), Keys(settings.namespace), args.to)
    print(f"live version is now {version}")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    client, keys = redis_client(settings), Keys(settings.namespace)
    live = pub.live_version(client, keys)
    for version in pub.published_versions(client, keys):
        print(("* " if version == live else "  ") + version)
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from training.demo_data import DemoSpec, generate

    spec = DemoSpec(articles=args.articles, days=args.days, seed=args.seed)
    if args.clicks_per_article is not None:
        spec = replace(spec, clicks_per_article=args.clicks_per_article)
    result = generate(args.out_dir, spec, progress=sys.stderr.isatty())
    print(
        f"wrote {result.articles:,} articles to {result.articles_path} and "
        f"{result.clicks:,} clicks + {result.impressions:,} impressions to {result.clicks_path}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from training.demo import run_demo

    return run_demo(settings_from(args), args.data_dir)


def cmd_export_events(args: argparse.Namespace) -> int:
    from training.export import export_events

    settings = settings_from(args)
    count = export_events(
        redis_client(settings),
        Keys(settings.namespace),
        args.out,
        parse_time(args.since) if args.since else None,
        parse_time(args.until) if args.until else None,
    )
    print(f"wrote {count:,} events to {args.out}")
    return 0


def cmd_redis_stop(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    stopped = stop_embedded(settings.data_dir)
    print("embedded Redis stopped" if stopped else "embedded Redis was not running")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Dispatch `newsrec bench <what>` to the handler its module registered."""
    return int(args.bench_handlers[args.bench_command](args))


COMMANDS = {
    "train": cmd_train, "serve": cmd_serve, "rollback": cmd_rollback, "versions": cmd_versions,
    "demo-data": cmd_demo_data, "eval": replay_cli.run_eval,
    "export-events": cmd_export_events, "demo": cmd_demo, "redis-stop": cmd_redis_stop,
    "bench": cmd_bench,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `newsrec` console script; errors are one clear line, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (InputError, ConfigError, EmbeddedRedisError, ValueError) as exc:
        print(f"newsrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"newsrec {args.command}: error: Redis: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
