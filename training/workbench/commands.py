"""The engineers' workbench commands: `newsrec eval related`, `newsrec eval popular` and
`newsrec tune` (see newsrec/cli.py for the table). Tables are printed; --report writes HTML."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

from training.params import load_params, write_params
from training.related.params import RelatedParams
from training.sources.common import InputError
from training.trending.model import TrendingParams
from training.trending.replay import ReplaySettings

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_FORMATS = ["auto", "jsonl", "csv", "mind"]


def parse_duration(text: str) -> float:
    """Seconds from '1h', '30m', '90s', '1d' or a bare number of seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", text.lower())
    if not match or match.group(2) not in {"", *_UNITS}:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 1h, 30m, 3600)")
    seconds = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration must be > 0, got {text!r}")
    return seconds


def add_eval(parser: argparse.ArgumentParser) -> None:
    """`newsrec eval related` and `newsrec eval popular`."""
    evals = parser.add_subparsers(dest="eval_command", required=True)
    r = evals.add_parser("related", help="precision/nDCG@k of related lists against labels")
    r.add_argument("--articles", type=Path, required=True, help="article export (JSONL/CSV/MIND)")
    r.add_argument("--format", default="auto", choices=_FORMATS)
    r.add_argument(
        "--labels",
        help="field whose values are the labels (default: sections/category; e.g. tags, topics;"
        " MIND: category or subcategory)",
    )
    r.add_argument("--k", type=int, default=10, help="list length scored (default 10)")
    r.add_argument("--params", type=Path, help="params TOML (default: the shipped defaults)")
    r.add_argument(
        "--baselines",
        action="store_true",
        help="also score sklearn TfidfVectorizer() defaults and a More-Like-This-style query",
    )
    r.add_argument("--report", type=Path, help="write an HTML report with plots into DIR")
    p = evals.add_parser("popular", help="replay the click log hour by hour: nDCG@10 and recall@10")
    p.add_argument("--articles", type=Path, required=True, help="article export (JSONL/CSV/MIND)")
    p.add_argument("--clicks", type=Path, required=True, help="click log (JSONL/CSV/MIND)")
    p.add_argument("--format", default="auto", choices=_FORMATS)
    p.add_argument("--step", type=parse_duration, default=3600.0, help="replay step (default 1h)")
    p.add_argument("--params", type=Path, help="params TOML with a [trending] table")
    p.add_argument("--report", type=Path, help="write an HTML report with plots into DIR")
    p.add_argument("--warmup-hours", type=float, default=ReplaySettings.warmup_hours)
    p.add_argument(
        "--min-clicks",
        type=int,
        default=ReplaySettings.min_clicks,
        help="score only steps whose next step has at least this many clicks (default 20)",
    )


def run_eval(args: argparse.Namespace) -> int:
    """Dispatch `newsrec eval <what>`."""
    return eval_related(args) if args.eval_command == "related" else eval_popular(args)


def eval_related(args: argparse.Namespace) -> int:
    """Score related lists (and baselines), print the tables, write the report when asked."""
    from training.workbench.eval_related import evaluate_related, load_labelled
    from training.workbench.related_report import print_related, write_related_report

    if args.k < 1:
        raise InputError("--k must be >= 1")
    related = load_params(args.params)[0] if args.params else RelatedParams()
    if related.top_k < args.k:
        related = replace(related, top_k=args.k)
    corpus = load_labelled(args.articles, args.labels, args.format)
    results = evaluate_related(corpus, related, args.k, args.baselines)
    labelled = sum(1 for labels in corpus.labels if labels)
    source = f"parameters from {args.params}" if args.params else "shipped default parameters"
    title = (
        f"related lists of {args.articles}: {len(corpus.articles):,} articles, {labelled:,}"
        f" labelled by {corpus.field!r}; k={args.k}; {source}"
    )
    print_related(title, corpus, results, args.k)
    if args.report:
        print(f"report: {write_related_report(args.report, title, corpus, results, args.k)}")
    return 0


def eval_popular(args: argparse.Namespace) -> int:
    """Run the replay, print the leaderboard, and write the report when asked."""
    from training.workbench.eval_popular import load_replay, replay_popular
    from training.workbench.popular_report import columns, describe, leaderboard, write_report
    from training.workbench.tables import format_table

    params = load_params(args.params)[1] if args.params else TrendingParams()
    if args.min_clicks < 0 or args.warmup_hours < 0:
        raise InputError("--min-clicks and --warmup-hours must be >= 0")
    settings = ReplaySettings(args.step, args.warmup_hours, args.min_clicks)
    articles, replay = load_replay(args.articles, args.clicks, params, settings, args.format)
    if not replay.gains:
        raise InputError(
            f"{args.clicks}: no step to score (the log is shorter than the warm-up,"
            " or no step has --min-clicks clicks)"
        )
    result = replay_popular(articles, replay, params)
    print(format_table(columns(settings.k), leaderboard(result), decimals=3))
    for line in describe(result):
        print(line)
    if args.report:
        print(f"report: {write_report(result, args.report, str(args.clicks))}")
    return 0


def add_tune(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec tune`."""
    parser.add_argument("--grid", type=Path, required=True, help="grid TOML (see tune.py)")
    parser.add_argument("--report", type=Path, help="write an HTML report with plots into DIR")
    parser.add_argument(
        "--out", type=Path, default=Path("best.toml"), help="best parameters (default best.toml)"
    )


def run_tune(args: argparse.Namespace) -> int:
    """Run the grid, print the leaderboard, write the best parameters (and the report)."""
    from training.workbench.related_report import write_tune_report
    from training.workbench.tables import format_table
    from training.workbench.tune import leaderboard, load_grid, run_grid

    grid = load_grid(args.grid)
    results = run_grid(grid, log=lambda line: print(line, file=sys.stderr, flush=True))
    headers, rows = leaderboard(grid, results)
    print(format_table(headers, rows))
    best = results[0]
    chosen = ", ".join(f"{k} = {v!r}" for k, v in best.point.items()) or "the base parameters"
    comment = (
        f"newsrec tune --grid {args.grid}: best of {len(results)} by mean {grid.select}"
        f" over {', '.join(grid.names())}\n{chosen}"
    )
    written = write_params(args.out, best.related, best.trending, comment)
    print(f"best parameters written to {written}")
    if args.report:
        print(f"report: {write_tune_report(args.report, grid, results, headers, rows, comment)}")
    return 0
