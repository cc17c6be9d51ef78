"""`newsrec demo` and `newsrec demo-data` (see newsrec/cli.py)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from recommender.config import add_settings_flags, settings_from_args
from training.demo.generate import DemoSpec


def add_demo(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec demo`."""
    add_settings_flags(parser)
    parser.add_argument("--data-dir", type=Path, default=Path(".newsrec/demo-data"))
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument(
        "--articles",
        type=int,
        default=DemoSpec.articles,
        help="articles of the corpus it generates when --data-dir holds none (default 3000)",
    )


def run_demo(args: argparse.Namespace) -> int:
    """Generate, train, serve and query."""
    from training.demo.run import run_demo as demo

    return demo(settings_from_args(args), args.data_dir, DemoSpec(articles=args.articles))


def add_demo_data(parser: argparse.ArgumentParser) -> None:
    """Flags of `newsrec demo-data`."""
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--clicks-per-article",
        type=float,
        help="mean clicks per article (default 20; 0 writes no clicks, about twice as fast)",
    )


def run_demo_data(args: argparse.Namespace) -> int:
    """Write the generated corpus and click log."""
    from training.demo.generate import generate

    spec = DemoSpec(articles=args.articles, days=args.days, seed=args.seed)
    if args.clicks_per_article is not None:
        spec = replace(spec, clicks_per_article=args.clicks_per_article)
    result = generate(args.out_dir, spec, progress=sys.stderr.isatty())
    print(
        f"wrote {result.articles:,} articles to {result.articles_path} and "
        f"{result.clicks:,} clicks + {result.impressions:,} impressions to {result.clicks_path}"
    )
    return 0
