"""`newsrec eval related` and `newsrec tune` output: the leaderboards and their HTML reports."""

from __future__ import annotations

from pathlib import Path

from training.workbench.eval_related import LabelledCorpus, ListQuality, per_label_precision
from training.workbench.report import Report, Series
from training.workbench.tables import format_table
from training.workbench.tune import Grid, Result

PRINTED = 20
"""Labels printed in the per-label table (the most frequent); the report lists them all."""


def related_table(results: list[ListQuality], k: int) -> tuple[list[str], list[list[object]]]:
    """The leaderboard of `eval related`: one row per method."""
    headers = ["method", f"P@{k}", f"nDCG@{k}", f"P@{k} even", f"P@{k} odd"]
    headers += ["coverage", "near-dup rate", "age gap days"]
    keys = [f"p@{k}", f"ndcg@{k}", f"p@{k}/even", f"p@{k}/odd"]
    keys += ["coverage", "near_dup_rate", "age_gap_days"]
    rows = [[quality.name, *(quality.metrics()[key] for key in keys)] for quality in results]
    return headers, rows


def print_related(title: str, corpus: LabelledCorpus, results: list[ListQuality], k: int) -> None:
    """The leaderboard and the precision of the most frequent labels."""
    headers, rows = related_table(results, k)
    by_label = per_label_precision(corpus, results[0])
    print(title)
    print(format_table(headers, rows))
    print(f"\nprecision@{k} by label (newsrec)")
    print(format_table(["label", "queries", f"P@{k}"], [list(r) for r in by_label[:PRINTED]]))
    if len(by_label) > PRINTED:
        print(f"... and {len(by_label) - PRINTED} smaller labels (all of them in --report)")


def write_related_report(
    directory: Path, title: str, corpus: LabelledCorpus, results: list[ListQuality], k: int
) -> Path:
    """HTML page: leaderboard, precision by label, precision at each list length."""
    headers, rows = related_table(results, k)
    by_label = per_label_precision(corpus, results[0])
    report = Report(f"Related lists: {corpus.path}")
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
    return report.write(directory)


def _label_axes(
    rows: list[tuple[str, int, float]], most: int = 40
) -> tuple[list[str], list[float]]:
    shown = rows[:most]
    return [r[0] for r in shown], [r[2] for r in shown]


def write_tune_report(
    directory: Path, grid: Grid, results: list[Result], headers: list[str],
    rows: list[list[object]], comment: str,
) -> Path:  # fmt: skip
    """HTML page: the leaderboard and, per grid parameter, the best metric at each value."""
    report = Report(f"Tune: {grid.path}")
    report.note(comment.replace("\n", ": "))
    if grid.holdout:
        report.note(f"Ranked by {grid.select}; {grid.holdout} is shown but never used to choose.")
    report.table("Leaderboard", headers, rows)
    points = grid.points()
    for key in grid.fields():
        values = list(dict.fromkeys(p[key] for p in points))  # distinct, in grid order
        _metric_by_parameter(report, grid.select, grid.names(), key, values, results)
    return report.write(directory)


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
