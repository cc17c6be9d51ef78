"""`newsrec eval popular`'s output: the replay leaderboard, what was scored and fitted, and the
HTML report with nDCG over time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from training.trending.model import FloatArray
from training.workbench.eval_popular import ReplayResult
from training.workbench.report import Report, Series


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
        f"rising@{k}",
        "held:rising",
    ]


def leaderboard(result: ReplayResult) -> list[list[object]]:
    """Rows: method, nDCG@k, recall@k, nDCG@k and recall@k on the fit days and held-out days."""
    k = result.replay.settings.k
    rows: list[list[object]] = []
    for series in result.series:
        all_, fit, held = (result.summary(series.name, d) for d in ("all", "fit", "held-out"))
        scores = [s[key] for s in (all_, fit, held) for key in (f"ndcg@{k}", f"recall@{k}")]
        rows.append([series.name, *scores, all_[f"rising@{k}"], held[f"rising@{k}"]])
    ceiling = [
        result.summary(result.main, d)[f"ceiling_recall@{k}"] for d in ("all", "fit", "held-out")
    ]
    rows.append([f"ceiling (perfect top {k})", 1.0, ceiling[0], 1.0, ceiling[1], 1.0, ceiling[2],
                 1.0, 1.0])  # fmt: skip
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
        f"rising@{settings.k}: of each step's (at most {settings.k}) articles whose clicks grew"
        " most from the hour before it to the hour after, the share listed at its start",
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
