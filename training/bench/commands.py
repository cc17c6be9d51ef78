"""`newsrec bench related|serve|upsert|footprint|encode|replicas`: the benchmarks (see
newsrec/cli.py). Their figures go to benchmarks/RESULTS.md by hand, with the machine and load
they ran on."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _knob(text: str) -> tuple[str, list[int]]:
    name, _, values = text.partition("=")
    if not values:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,VALUE...], got {text!r}")
    return name.replace("-", "_"), [int(v) for v in values.split(",")]


def add_bench(parser: argparse.ArgumentParser) -> None:
    """Every benchmark and its flags."""
    benches = parser.add_subparsers(dest="bench_command", required=True)
    _add_related(benches.add_parser("related", help="related-articles search: time, recall"))
    _add_serve(benches.add_parser("serve", help="load-test the gRPC server against bare gRPC"))
    u = benches.add_parser("upsert", help="UpsertArticles latency against an N-article model")
    u.add_argument("--redis-url", help="Redis URL (default $NEWSREC_REDIS_URL, else embedded)")
    u.add_argument("--articles", type=int, default=20_000)
    u.add_argument("--upserts", type=int, default=200)
    u.add_argument("--json", type=Path, help="also write the figures here")
    r = benches.add_parser("replicas", help="a reader and a writer: memory, live-state growth")
    r.add_argument("--redis-url", help="Redis URL (default $NEWSREC_REDIS_URL, else embedded)")
    r.add_argument("--articles", type=int, default=20_000)
    r.add_argument("--upserts", type=int, default=10_000, help="upserts through the writer")
    r.add_argument("--events", type=int, default=1_000_000, help="events through the reader")
    r.add_argument("--calls", type=int, default=10_000, help="GetRelated calls before and after")
    r.add_argument(
        "--trained-namespace",
        help="measure this namespace, trained already on the demo corpus of --articles "
        "(no training; its live state is cleared)",
    )
    r.add_argument("--json", type=Path, help="also write the figures here")
    e = benches.add_parser("encode", help="the encoder on ONNX Runtime against torch")
    e.add_argument("--articles", type=int, default=256, help="demo texts encoded in batches")
    e.add_argument("--singles", type=int, default=50, help="texts encoded one at a time")
    e.add_argument("--threads", type=int, default=1, help="intra-op threads of both runtimes")
    e.add_argument("--rounds", type=int, default=2, help="alternations of the two runtimes")
    e.add_argument("--json", type=Path, help="also write the figures here")
    f = benches.add_parser("footprint", help="a fresh replica's start-up time and memory")
    f.add_argument("--redis-url", help="Redis URL (default $NEWSREC_REDIS_URL, else embedded)")
    f.add_argument("--articles", type=int, default=3000, help="demo corpus size")
    f.add_argument("--calls", type=int, default=1000, help="GetRelated calls before measuring")
    f.add_argument("--repeats", type=int, default=5, help="fresh replicas started")
    f.add_argument("--json", type=Path, help="also write the figures here")


def _add_related(p: argparse.ArgumentParser) -> None:
    p.add_argument("--articles", type=int, help="generate (or reuse) a corpus of N articles")
    p.add_argument("--k", type=int, default=50, help="related articles per article (top_k)")
    p.add_argument("--sample", type=int, default=2000, help="queries checked against exact")
    p.add_argument("--n-jobs", type=int, default=2, help="threads for the searches")
    p.add_argument("--corpus", type=Path, help="corpus folder (default .newsrec/bench/articles-N)")
    p.add_argument("--redis-url", help="Redis for the publish stage (default as `newsrec train`)")
    p.add_argument("--no-publish", action="store_true", help="stop after the related stage")
    p.add_argument("--method", default="pruned", choices=["auto", "exact", "pruned"])
    p.add_argument("--knob", type=_knob, action="append", default=[], metavar="NAME=VALUE",
                   help="a pruned-search knob (training.search.pruned.PrunedParams)")  # fmt: skip
    p.add_argument("--sweep", type=_knob, action="append", default=[], metavar="NAME=V1,V2,...",
                   help="search again with each value of one knob (for a plot)")  # fmt: skip
    p.add_argument("--progress", action="store_true", help="progress bars even without a tty")
    p.add_argument("--embedding-weight", type=float, metavar="W",
                   help="embedding share of the blend (default: shipped; 0: none)")  # fmt: skip
    dask = p.add_mutually_exclusive_group()
    dask.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="heavy stages on this dask scheduler (workers' peaks span their life)",
    )
    dask.add_argument(
        "--dask-workers",
        type=int,
        default=0,
        metavar="N",
        help="heavy stages on a LocalCluster of N one-thread worker processes",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=1,
        metavar="N",
        help="the searches' corpus shards (search_shards: one per dask worker)",
    )
    p.add_argument("--json", type=Path, help="also write every figure here")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write PNG plots here")
    p.add_argument("--runs", type=Path, nargs="*", default=[],
                   help="earlier --json files to plot (with this run, if any)")  # fmt: skip


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML settings file")
    p.add_argument("--redis-url", help="Redis URL (default $NEWSREC_REDIS_URL, else embedded)")
    p.add_argument("--articles", type=int, default=3000)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    p.add_argument("--concurrency", default="1,8,64", help="calls in flight, comma-separated")
    p.add_argument("--processes", default="1,2", help="server processes, comma-separated")
    p.add_argument("--stream-events", type=int, default=200_000,
                   help="events through each event stream (0 = skip)")  # fmt: skip
    p.add_argument("--stream-batch", type=int, default=1000, help="events a batched message")
    p.add_argument("--methods", default="GetRelated,GetPopular,RecordEvents",
                   help="comma-separated; GetPopular:WINDOW measures a named Popular window "
                   "(GetPopular:rising)")  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the raw figures here")
    p.add_argument("--plots", type=Path, help="write QPS and latency plots into DIR")


def run_bench(args: argparse.Namespace) -> int:
    """Dispatch `newsrec bench <what>`."""
    runs = {"related": bench_related, "serve": bench_serve, "upsert": bench_upsert,
            "footprint": bench_footprint, "encode": bench_encode,
            "replicas": bench_replicas}  # fmt: skip
    return runs[args.bench_command](args)


def _write_json(path: Path | None, figures: object) -> None:
    if path is not None:
        path.write_text(json.dumps(figures, indent=2, default=str))


def bench_related(args: argparse.Namespace) -> int:
    """Run the related bench and/or plot earlier runs."""
    from training.bench.config import BenchConfig
    from training.bench.related import run
    from training.bench.related_report import plot

    runs = [json.loads(path.read_text()) for path in args.runs]
    if args.articles is None and args.corpus is None and not runs:
        raise ValueError("give --articles N (or --corpus DIR, or --runs FILE... to plot)")
    if args.articles is not None or args.corpus is not None:
        config = BenchConfig(
            articles=args.articles or 0, k=args.k, sample=args.sample, n_jobs=args.n_jobs,
            corpus=args.corpus, redis_url=args.redis_url, publish=not args.no_publish,
            method=args.method, knobs={name: values[0] for name, values in args.knob},
            sweeps=tuple((name, tuple(values)) for name, values in args.sweep),
            progress=args.progress or sys.stderr.isatty(),
            embedding_weight=args.embedding_weight,
            dask_scheduler=args.dask_scheduler, dask_workers=args.dask_workers,
            shards=args.shards,
        )  # fmt: skip
        figures = run(config)
        _write_json(args.json, figures)
        runs.append(figures)
    if args.plot:
        for path in plot(runs, args.plot):
            print(f"wrote {path}")
    return 0


def bench_serve(args: argparse.Namespace) -> int:
    """Load-test the server; print the Markdown table."""
    from recommender.config import load_settings
    from training.bench.serve import ServeBenchConfig, run
    from training.bench.serve_report import markdown, plots

    settings = load_settings(args.config, overrides={"redis_url": args.redis_url})
    config = ServeBenchConfig(
        articles=args.articles,
        duration=args.duration,
        concurrency=[int(c) for c in args.concurrency.split(",")],
        processes=[int(p) for p in args.processes.split(",")],
        stream_events=args.stream_events,
        stream_batch=args.stream_batch,
        methods=args.methods.split(","),
    )
    results = run(settings, config)
    print()
    print(markdown(results))
    _write_json(args.json, results)
    if args.plots:
        for path in plots(results, args.plots):
            print(f"wrote {path}")
    return 0


def _redis_url(args: argparse.Namespace) -> str:
    from recommender.config import load_settings
    from recommender.embedded import resolve_redis_url

    settings = load_settings(overrides={"redis_url": args.redis_url})
    return resolve_redis_url(settings.redis_url, settings.data_dir)


def bench_upsert(args: argparse.Namespace) -> int:
    """UpsertArticles latency."""
    from training.bench.upsert import run

    _write_json(args.json, run(_redis_url(args), args.articles, args.upserts))
    return 0


def bench_footprint(args: argparse.Namespace) -> int:
    """A fresh replica's time to listening and memory."""
    from training.bench.footprint import run

    _write_json(args.json, run(_redis_url(args), args.articles, args.calls, args.repeats))
    return 0


def bench_encode(args: argparse.Namespace) -> int:
    """The encoder's speed, ONNX Runtime against torch."""
    from training.bench.encode import run

    _write_json(args.json, run(args.articles, args.singles, args.threads, args.rounds))
    return 0


def bench_replicas(args: argparse.Namespace) -> int:
    """A reader and a writer replica; reads before and after live state grows."""
    from training.bench.replicas import run

    figures = run(_redis_url(args), args.articles, args.upserts, args.events, args.calls,
                  trained=args.trained_namespace)  # fmt: skip
    _write_json(args.json, figures)
    return 0
