"""`newsrec eval popular`: the hourly replay leaderboard, printed and as an HTML report."""

from __future__ import annotations

import argparse
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from training.replay import ReplayResult, load_replay, replay_popular
from training.replay_core import ReplaySettings
from training.report import Report, Series
from training.sources import InputError
from training.trending import FloatArray, TrendingParams

Handler = Callable[[argparse.Namespace], int]
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from '1h', '30m', '90s', '1d' or a bare number of seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", text.lower())
    if not match or match.group(2) not in {"", *_UNITS}:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 1h, 30m, 3600)")
    seconds = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration must be > 0, got {text!r}")
    return seconds


def trending_params_from(
    values: Mapping[str, Any], base: TrendingParams | None = None
) -> TrendingParams:
    """TrendingParams from a mapping (a TOML [trending] table); unknown keys are an error."""
    known = [f.name for f in fields(TrendingParams)]
    if unknown := sorted(set(values) - set(known)):
        raise InputError(
            f"unknown trending parameter(s): {', '.join(unknown)} (known: {', '.join(known)})"
        )
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name in ("use_impressions", "fit_half_life"):
            ok = isinstance(value, bool)
        elif name == "depth":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            value = float(value)
        if not ok:
            raise InputError(f"trending.{name}: invalid value {value!r}")
        changes[name] = value
    return replace(base or TrendingParams(), **changes)


def load_params_toml(path: Path) -> TrendingParams:
    """Trending params from the [trending] table of a TOML file (or its top level)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: cannot read parameters: {e}") from e
    table = data.get("trending", data if "related" not in data else {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: [trending] must be a table")
    return trending_params_from(table)


def add_commands(evals: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add `popular` to the `newsrec eval` group; returns its handler by name."""
    p = evals.add_parser("popular", help="replay the click log hour by hour: nDCG@10 and recall@10")
    p.add_argument("--articles", type=Path, required=True, help="article export (JSONL/CSV/MIND)")
    p.add_argument("--clicks", type=Path, required=True, help="click log (JSONL/CSV/MIND)")
    p.add_argument("--format", default="auto", choices=["auto", "jsonl", "csv", "mind"])
    p.add_argument("--step", type=parse_duration, default=3600.0, help="replay step (default 1h)")
    p.add_argument("--params", type=Path, help="TOML with a [trending] table (default: shipped)")
    p.add_argument("--report", type=Path, help="write an HTML report with plots into DIR")
    p.add_argument("--warmup-hours", type=float, default=ReplaySettings.warmup_hours)
    p.add_argument(
        "--min-clicks",
        type=int,
        default=ReplaySettings.min_clicks,
        help="score only steps whose next step has at least this many clicks (default 20)",
    )
    return {"popular": cmd_eval_popular}


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def columns(k: int) -> list[str]:
    """Leaderboard column names."""
    return [
        "method",
        f"nDCG@{k}",
        f"recall@{k}",
        "fit:nDCG",
        "fit:recall",
        "held:nDCG",
        "held:recall",
    ]


def leaderboard(result: ReplayResult) -> list[list[object]]:
    """Rows: method, nDCG@k, recall@k, nDCG@k and recall@k on the fit days and held-out days."""
    k = result.replay.settings.k
    rows: list[list[object]] = []
    for series in result.series:
        all_, fit, held = (result.summary(series.name, d) for d in ("all", "fit", "held-out"))
        rows.append(
            [series.name]
            + [s[key] for s in (all_, fit, held) for key in (f"ndcg@{k}", f"recall@{k}")]
        )
    ceiling = [
        result.summary(result.main, d)[f"ceiling_recall@{k}"] for d in ("all", "fit", "held-out")
    ]
    rows.append([f"ceiling (perfect top {k})", 1.0, ceiling[0], 1.0, ceiling[1], 1.0, ceiling[2]])
    return rows


def describe(result: ReplayResult) -> list[str]:
    """The lines under the table: what was scored, fitted, held out."""
    replay, settings = result.replay, result.replay.settings
    fit = result.summary(result.main, "fit")["steps"]
    held = result.summary(result.main, "held-out")["steps"]
    lines = [
        f"{len(replay.gains)} of {replay.all_steps} steps of {settings.step_seconds / 3600:g} h"
        f" scored (first {settings.warmup_hours:g} h: warm-up; steps with fewer than"
        f" {settings.min_clicks} next-step clicks: skipped; the same steps for every method)",
        f"fit days: the {fit:.0f} steps before {_when(result.split)};"
        f" held-out days: the {held:.0f} from then on",
    ]
    for t, f in result.fits:
        p = f.params
        got = f"half-life {p.half_life_hours:g} h, exposure {p.exposure_half_life_hours:g} h"
        did = f"{got} (nDCG@10 {f.ndcg:.3f} on {f.steps} steps)" if f.fitted else f"{got}: {f.note}"
        lines.append(f"nightly fit at {_when(t)}: {did}")
    if h := result.holdout:
        lines.append(
            f"held-out check: half-lives fitted on the fit days only ({h['half_life_hours']:g} h,"
            f" exposure {h['exposure_half_life_hours']:g} h) score {h['heldout_ndcg']:.3f} on the"
            f" held-out days; the best any half-lives reach there is {h['heldout_best_ndcg']:.3f}"
        )
    return lines


def _rolling(values: FloatArray, width: int) -> list[float]:
    width = max(1, min(width, len(values)))
    return np.convolve(values, np.ones(width) / width, mode="valid").tolist()


def write_report(result: ReplayResult, directory: Path, source: str) -> Path:
    """HTML page: leaderboard, nightly fits, nDCG over time per method, nDCG per method."""
    k, width = result.replay.settings.k, 6
    report = Report(f"Popular replay: {source}")
    for line in describe(result):
        report.note(line)
    report.table(
        "Leaderboard (nDCG: mean over steps; recall: pooled over clicks)",
        columns(k),
        leaderboard(result),
    )
    if result.fits:
        report.table(
            "Nightly half-life fits (each used for the next 24 h of replay)",
            ["at (UTC)", "half-life h", "exposure h", "nDCG on the steps before"],
            [
                [_when(t), f.params.half_life_hours, f.params.exposure_half_life_hours, f.ndcg]
                for t, f in result.fits
            ],
        )
    steps, start = result.replay.steps, result.replay.start
    hours = ((steps - start) / 3600.0).tolist()
    series: Series = {
        s.name: (hours[len(hours) - len(_rolling(s.ndcg, width)) :], _rolling(s.ndcg, width))
        for s in result.series
    }
    report.lines(
        f"nDCG@{k} per scored step ({width}-step moving average)",
        f"hours since {_when(start)} UTC",
        f"nDCG@{k}",
        series,
    )
    names = [s.name for s in result.series]
    report.bars(
        f"nDCG@{k}, all scored steps",
        f"nDCG@{k}",
        names,
        [float(s.ndcg.mean()) for s in result.series],
    )
    return report.write(directory)


def format_table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table: the first column left-aligned, numbers with 3 decimals."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.3f}"
        return str(value)

    cells = [headers] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    )


def cmd_eval_popular(args: argparse.Namespace) -> int:
    """Run the replay, print the leaderboard, and write the report when asked."""
    params = load_params_toml(args.params) if args.params else TrendingParams()
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
    print(format_table(columns(settings.k), leaderboard(result)))
    for line in describe(result):
        print(line)
    if args.report:
        print(f"report: {write_report(result, args.report, str(args.clicks))}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Dispatch `newsrec eval <what>` to the handler its module registered."""
    handlers: dict[str, Handler] = args.eval_handlers
    return handlers[args.eval_command](args)


def add_train_flags(train: argparse.ArgumentParser) -> None:
    """`newsrec train` flags of the trending model."""
    train.add_argument(
        "--half-life-hours",
        type=float,
        help="fixed trending half-life in hours (turns the fit off unless --fit-half-life)",
    )
    train.add_argument(
        "--fit-half-life",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit the trending half-lives on the click log's own hourly replay"
        " (default: on, unless --half-life-hours is given)",
    )


def trending_from_args(args: argparse.Namespace) -> TrendingParams:
    """Trending params from `newsrec train` flags."""
    base = TrendingParams()
    half_life = args.half_life_hours
    if half_life is not None and half_life <= 0:
        raise InputError("--half-life-hours must be > 0")
    fit = args.fit_half_life if args.fit_half_life is not None else half_life is None
    changes: dict[str, Any] = {"fit_half_life": fit}
    if half_life is not None:
        changes["half_life_hours"] = half_life
    return replace(base, **changes)


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
