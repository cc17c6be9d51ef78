"""The nightly job's commands: `newsrec train` and `export-events` (see newsrec/cli.py for the
table; `publish`, `rollback` and `versions` are in training/admin.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.config import Settings, add_settings_flags, settings_from_args
from recommender.connect import keys_for, sync_client
from training.lock import add_lock_flag, wait_flag
from training.sources.columns import merged_map
from training.sources.common import InputError, parse_time

if TYPE_CHECKING:
    from training.gates import Gates


def add_train(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec train`."""
    from training.params import add_train_flags

    add_settings_flags(parser)
    parser.add_argument("--articles", type=Path, required=True, help="article export")
    parser.add_argument("--clicks", type=Path, help="click log (JSONL/CSV/MIND behaviors.tsv)")
    add_input_flags(parser)
    parser.add_argument(
        "--as-of",
        help="score trending as of this time (RFC 3339 or epoch); default: the newest event",
    )
    parser.add_argument("--model-dir", type=Path, help="where model/<version>/ folders go")
    add_train_flags(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress; one summary line")
    parser.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="run the heavy stages on this dask.distributed scheduler, e.g. tcp://host:8786"
        " (default $NEWSREC_DASK_SCHEDULER, else local processes; needs newsrec[dask])",
    )
    add_lock_flag(parser)
    add_gate_flags(parser)


def add_input_flags(parser: argparse.ArgumentParser) -> None:
    """How the exports are read: format, column names, bad rows (train and check)."""
    parser.add_argument("--format", default="auto", choices=["auto", "jsonl", "csv", "mind"])
    parser.add_argument(
        "--map",
        action="append",
        metavar="FIELD=COLUMN,...",
        help="read a field from a column the recognised names miss, e.g. --map"
        " title=headline_text,ts=event_time (adds to the column_map setting; docs/own-data.md)",
    )
    parser.add_argument(
        "--max-bad-rows",
        type=int,
        default=0,
        help="skip up to N bad input rows instead of stopping (default 0)",
    )


def add_gate_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that let a run publish although a sanity gate refuses it."""
    allow = parser.add_argument_group("sanity gates (docs/training.md)")
    allow.add_argument(
        "--allow-unmatched-clicks",
        action="store_true",
        help="publish although almost none of the click log matches the export",
    )
    allow.add_argument(
        "--allow-shrink",
        action="store_true",
        help="publish although the model is much smaller than the live one",
    )
    allow.add_argument(
        "--allow-empty-related",
        action="store_true",
        help="publish although (almost) no article has a related list",
    )
    allow.add_argument("--force", action="store_true", help="all three of the above")  # fmt: skip


def gates_from_flags(settings: Settings, args: argparse.Namespace) -> Gates:
    """The gates' thresholds from settings, with the overrides add_gate_flags parsed."""
    from training.gates import Gates

    return Gates.from_settings(
        settings,
        allow_unmatched_clicks=args.allow_unmatched_clicks or args.force,
        allow_shrink=args.allow_shrink or args.force,
        allow_empty_related=args.allow_empty_related or args.force,
    )


def run_train(args: argparse.Namespace) -> int:
    """Train, publish, and print the summary."""
    from training.params import train_params
    from training.pipeline import TrainConfig, train

    if args.max_bad_rows < 0:
        raise InputError("--max-bad-rows must be >= 0")
    settings = settings_from_args(args, dask_scheduler=args.dask_scheduler)
    related, trending = train_params(args)
    config = TrainConfig(
        articles=args.articles,
        clicks=args.clicks,
        format=args.format,
        column_map=merged_map(settings.column_map, args.map),
        as_of=parse_time(args.as_of) if args.as_of else None,
        model_dir=settings.model_dir,
        max_bad_rows=args.max_bad_rows,
        related=related,
        trending=trending,
        keep_versions=settings.keep_versions,
        publish_batch=settings.publish_batch,
        progress=not args.quiet and sys.stderr.isatty(),
        gates=gates_from_flags(settings, args),
        lock_lease_seconds=settings.lock_lease_seconds,
        wait_for_lock=wait_flag(args.wait_for_lock),
        embedding_store=settings.embedding_store,
        dask_scheduler=settings.dask_scheduler or None,
    )

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    result = train(config, sync_client(settings), keys_for(settings), log)
    if args.quiet:
        seconds = sum(result.stage_seconds.values())
        print(f"published {result.version}: {result.meta['articles']} articles, {seconds:.1f}s")
    else:
        print(summary(result))
    return 0


def summary(result: Any) -> str:
    """The one-screen report printed at the end of a training run (a pipeline.TrainResult)."""
    meta = result.meta
    arts = result.articles
    lines = [
        f"published version {result.version}  (model folder {result.model_path})",
        f"  articles   {meta['articles']:>9,}  from {arts.path} ({arts.format}), "
        f"{arts.bad_row_count} bad rows skipped",
    ]
    if result.events is not None:
        ev = result.events
        lines.append(
            f"  events     {len(ev):>9,}  ({ev.clicks:,} clicks) from {ev.path}, "
            f"{ev.bad_row_count} bad rows skipped, {ev.unknown_ids:,} with unknown "
            "article ids ignored"
        )
        ids = len(set(ev.article_ids))
        total, all_ids = len(ev) + ev.unknown_ids, ids + ev.unknown_distinct_ids
        lines.append(
            f"             matching the export: {len(ev) / max(total, 1):.1%} of events, "
            f"{ids / max(all_ids, 1):.1%} of distinct article ids ({ids:,} of {all_ids:,})"
        )
    if "embeddings" in meta:
        emb = meta["embeddings"]
        lines.append(
            f"  embeddings {emb['reused'] + emb['encoded']:>9,}  ({emb['model']}): "
            f"{emb['encoded']:,} encoded, {emb['reused']:,} reused from the store"
        )
    lines.append(
        f"  vocabulary {meta['vocabulary']:>9,} terms; {meta['duplicate_pairs']:,} "
        "near-duplicate pairs kept out of lists"
    )
    lines.append(f"  sections   {', '.join(meta['sections'])}")
    lines.append(trending_summary(meta))
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.stage_seconds.items())
    lines.append(f"  time       {sum(result.stage_seconds.values()):.2f}s ({stages})")
    lines.append(f"  peak RSS   {result.peak_rss_mb:,.0f} MB")
    if result.pruned:
        lines.append(f"  pruned     {', '.join(result.pruned)}")
    if result.leftovers:
        lines.append(f"  removed    {', '.join(result.leftovers)} (left pending by killed runs)")
    return "\n".join(lines)


def trending_summary(meta: Mapping[str, Any]) -> str:
    """The training summary's line about the trending model."""
    p = meta.get("parameters", {})
    mode = "click rate x exposure" if p.get("trending.prior_alpha") is not None else "clicks"
    line = (
        f"  trending   {mode}, half-life {p.get('trending.half_life_hours')} h, exposure"
        f" {p.get('trending.exposure_half_life_hours')} h"
    )
    if p.get("trending.fit.fitted"):
        return line + (
            f" (fitted: nDCG@10 {p.get('trending.fit.ndcg@10')} over"
            f" {p.get('trending.fit.steps')} replay steps)"
        )
    return line + f" (not fitted: {p.get('trending.fit.note')})"


def add_export_events(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec export-events`."""
    add_settings_flags(parser)
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--since", help="only events at or after this time (RFC 3339 or epoch)")
    parser.add_argument("--until", help="only events before this time")


def run_export_events(args: argparse.Namespace) -> int:
    """Write the live event stream as a click log."""
    from training.export import export_events

    settings = settings_from_args(args)
    count = export_events(
        sync_client(settings),
        keys_for(settings),
        args.out,
        parse_time(args.since) if args.since else None,
        parse_time(args.until) if args.until else None,
    )
    print(f"wrote {count:,} events to {args.out}")
    return 0
