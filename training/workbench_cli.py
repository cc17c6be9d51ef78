"""The engineers' workbench commands: `newsrec eval related` and `newsrec tune`, plus the
`newsrec train --params` handling. Tables are printed; --report writes HTML with plots."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from training.params import load_params, write_params
from training.related import RelatedParams
from training.report import Report, Series
from training.sources import InputError
from training.trending import TrendingParams

if TYPE_CHECKING:
    from training.tune import Result

Handler = Callable[[argparse.Namespace], int]
PRINTED = 20
"""Labels printed in the per-label table (the most frequent); the report lists them all."""


def add_commands(subparsers: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add `tune` to the top-level commands; returns its handler by name."""
    t = subparsers.add_parser("tune", help="run a parameter grid through an evaluation")
    t.add_argument("--grid", type=Path, required=True, help="grid TOML (see training/tune.py)")
    t.add_argument("--report", type=Path, help="write an HTML report with plots into DIR")
    t.add_argument(
        "--out", type=Path, default=Path("best.toml"), help="best parameters (default best.toml)"
    )
    return {"tune": cmd_tune}


def add_eval_commands(evals: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add `related` to the `newsrec eval` group; returns its handler by name."""
    r = evals.add_parser("related", help="precision/nDCG@k of related lists against labels")
    r.add_argument("--articles", type=Path, required=True, help="article export (JSONL/CSV/MIND)")
    r.add_argument("--format", default="auto", choices=["auto", "jsonl", "csv", "mind"])
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
    return {"related": cmd_eval_related}


def train_params(args: argparse.Namespace) -> tuple[RelatedParams, TrendingParams]:
    """`newsrec train` parameters: --params FILE as the base (else the defaults), then the
    flags that were given explicitly (--top-k, the trending flags)."""
    from training.replay_cli import trending_from_args

    if args.top_k is not None and args.top_k < 1:
        raise InputError("--top-k must be >= 1")
    if args.params is None:
        related, trending = RelatedParams(), trending_from_args(args)
    else:
        related, trending = load_params(args.params)
        if args.half_life_hours is not None or args.fit_half_life is not None:
            flags = trending_from_args(args)
            trending = replace(trending, fit_half_life=flags.fit_half_life)
            if args.half_life_hours is not None:
                trending = replace(trending, half_life_hours=flags.half_life_hours)
    if args.top_k is not None:
        related = replace(related, top_k=args.top_k)
    return related, trending


def format_table(headers: list[str], rows: list[list[object]]) -> str:
    """Plain-text table: first column left-aligned, floats with 4 decimals, NaN as '-'."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.4f}"
        return str(value)

    cells = [headers] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in _columns(row, widths))
        for row in cells
    )


def _columns(row: list[str], widths: list[int]) -> list[tuple[int, tuple[str, int]]]:
    return list(enumerate(zip(row, widths, strict=True)))


def cmd_eval_related(args: argparse.Namespace) -> int:
    """Score related lists (and baselines), print the tables, write the report when asked."""
    from training.eval_related import evaluate_related, load_labelled, per_label_precision

    if args.k < 1:
        raise InputError("--k must be >= 1")
    related = load_params(args.params)[0] if args.params else RelatedParams()
    if related.top_k < args.k:
        related = replace(related, top_k=args.k)
    corpus = load_labelled(args.articles, args.labels, args.format)
    results = evaluate_related(corpus, related, args.k, args.baselines)
    k = args.k
    headers = ["method", f"P@{k}", f"nDCG@{k}", f"P@{k} even", f"P@{k} odd"]
    headers += ["coverage", "near-dup rate", "age gap days"]
    rows: list[list[object]] = []
    for quality in results:
        m = quality.metrics()
        rows.append(
            [
                quality.name,
                m[f"p@{k}"],
                m[f"ndcg@{k}"],
                m[f"p@{k}/even"],
                m[f"p@{k}/odd"],
                m["coverage"],
                m["near_dup_rate"],
                m["age_gap_days"],
            ]
        )
    labelled = sum(1 for labels in corpus.labels if labels)
    source = f"parameters from {args.params}" if args.params else "shipped default parameters"
    title = (
        f"related lists of {args.articles}: {len(corpus.articles):,} articles, {labelled:,}"
        f" labelled by {corpus.field!r}; k={k}; {source}"
    )
    by_label = per_label_precision(corpus, results[0])
    print(title)
    print(format_table(headers, rows))
    print(f"\nprecision@{k} by label (newsrec)")
    print(format_table(["label", "queries", f"P@{k}"], [list(r) for r in by_label[:PRINTED]]))
    if len(by_label) > PRINTED:
        print(f"... and {len(by_label) - PRINTED} smaller labels (all of them in --report)")
    if args.report:
        report = Report(f"Related lists: {args.articles}")
        report.note(title)
        report.note(
            "Relevant = shares a label with the article. Even/odd: queries at even/odd positions"
            " in the export (choose parameters on one half, report the other). Near-duplicate"
            " rate: items with cosine >= 0.9 to the article or an earlier item, measured on the"
            " full-vocabulary representation."
        )
        report.table("Leaderboard", headers, rows)
        report.table(f"Precision@{k} by label", ["label", "queries", f"P@{k}"], by_label)
        report.bars(f"Precision@{k} by label (newsrec)", f"P@{k}", *_label_axes(by_label))
        ranks = list(range(1, k + 1))
        report.lines(
            "Precision at each list length",
            "list length",
            "precision",
            {q.name: (ranks, q.precision_curve()) for q in results},
        )
        print(f"report: {report.write(args.report)}")
    return 0


def _label_axes(
    rows: list[tuple[str, int, float]], most: int = 40
) -> tuple[list[str], list[float]]:
    shown = rows[:most]
    return [r[0] for r in shown], [r[2] for r in shown]


def cmd_tune(args: argparse.Namespace) -> int:
    """Run the grid, print the leaderboard, write the best parameters (and the report)."""
    from training.tune import leaderboard, load_grid, run_grid

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
    print(
        f"best parameters written to {write_params(args.out, best.related, best.trending, comment)}"
    )
    if args.report:
        report = Report(f"Tune: {args.grid}")
        report.note(comment.replace("\n", ": "))
        if grid.holdout:
            report.note(
                f"Ranked by {grid.select}; {grid.holdout} is shown but never used to choose."
            )
        report.table("Leaderboard", headers, rows)
        points = grid.points()
        for key in grid.fields():
            values = list(dict.fromkeys(p[key] for p in points))  # distinct, in grid order
            _metric_by_parameter(report, grid.select, grid.names(), key, values, results)
        print(f"report: {report.write(args.report)}")
    return 0


def _metric_by_parameter(
    report: Report,
    metric: str,
    names: list[str],
    key: str,
    values: list[object],
    results: list[Result],
) -> None:
    """Best metric reached at each value of one grid parameter, per data set, as the gap to
    the data set's best in the whole grid (so data sets of different levels share one axis)."""
    series: Series = {}
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    xs = [
        float(v) if isinstance(v, int | float) and numeric else float(i)
        for i, v in enumerate(values)
    ]
    for d, name in enumerate(names):
        top = max(r.metrics[d][metric] for r in results)
        best = [max(r.metrics[d][metric] for r in results if r.point[key] == v) for v in values]
        series[f"{name} (best {top:.4f})"] = (xs, [b - top for b in best])
    label = key if numeric else f"{key} ({', '.join(f'{i}={v}' for i, v in enumerate(values))})"
    title = f"{metric} by {key} (best over the other parameters)"
    report.lines(title, label, f"{metric} minus the data set's best", series)
