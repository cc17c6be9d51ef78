"""`newsrec tune`: run a parameter grid through an evaluation and rank the settings.

Grid file (TOML); relative paths are relative to the grid file:

    evaluation = "related"        # a key of EVALUATORS: "related" or "popular"
    select = "p@10/even"          # metric to rank by (mean over the data sets; higher is better)
    holdout = "p@10/odd"          # optional: shown beside it, never used to choose
    params = "base.toml"          # optional: base parameters (default: the shipped defaults)

    [[data]]                      # one or more data sets, passed to the evaluator
    articles = "../shared/data/bbc/articles.jsonl"
    [[data]]
    name = "MIND subcategory"
    articles = "../shared/data/mind-sample/news.tsv"
    labels = "subcategory"        # related: label field (default sections); k = 10 by default

    [base]                        # optional: fixed overrides of the base parameters
    "related.top_k" = 20
    [grid]                        # every combination of these values is evaluated
    "related.min_df" = [2, 5]
    "related.lsa_weight" = [0.3, 0.5]
    "related.prf_neighbours,related.prf_weight" = [[0, 0.5], [5, 0.5]]   # values that go together

The "popular" evaluator takes `articles`, `clicks` and `step_seconds` (default 3600) per data
set and calls training.replay.evaluate_popular.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.params import ParamsError, apply_overrides, load_params, read_toml
from training.related.params import RelatedParams
from training.trending.model import TrendingParams

Evaluator = Callable[[Mapping[str, Any], RelatedParams, TrendingParams], dict[str, float]]


def evaluate_related_spec(
    spec: Mapping[str, Any], related: RelatedParams, trending: TrendingParams
) -> dict[str, float]:
    """Related-list metrics of one data set (see training/eval_related.py)."""
    from training.workbench.eval_related import evaluate_for_tune

    return evaluate_for_tune(dict(spec), related)


def evaluate_popular_spec(
    spec: Mapping[str, Any], related: RelatedParams, trending: TrendingParams
) -> dict[str, float]:
    """Popular-list replay metrics of one data set (training.replay.evaluate_popular)."""
    try:
        from training.workbench.eval_popular import evaluate_popular
    except ImportError:
        raise ParamsError("the popular evaluation is not available in this version") from None
    step = float(spec.get("step_seconds", 3600.0))
    return evaluate_popular(Path(spec["articles"]), Path(spec["clicks"]), trending, step)


EVALUATORS: dict[str, Evaluator] = {
    "related": evaluate_related_spec,
    "popular": evaluate_popular_spec,
}
DEFAULT_SELECT = {"related": "p@10/even", "popular": "ndcg@10"}
DEFAULT_HOLDOUT = {"related": "p@10/odd"}
_PATH_KEYS = ("articles", "clicks")


@dataclass
class Grid:
    """A parsed grid file."""

    path: Path
    evaluation: str
    select: str
    holdout: str | None
    data: list[dict[str, Any]]
    base: tuple[RelatedParams, TrendingParams]
    axes: dict[str, list[object]]

    def names(self) -> list[str]:
        """A short name per data set."""
        return [
            str(d.get("name") or Path(d["articles"]).parent.name + _labels_suffix(d))
            for d in self.data
        ]

    def fields(self) -> list[str]:
        """The parameters the grid varies (a key "a,b" varies a and b together)."""
        return [name.strip() for key in self.axes for name in key.split(",")]

    def points(self) -> list[dict[str, object]]:
        """Every combination of the grid values, in file order."""
        axes = [[_zip_key(key, value) for value in values] for key, values in self.axes.items()]
        return [
            {name: v for part in combo for name, v in part.items()}
            for combo in itertools.product(*axes)
        ]


def _zip_key(key: str, value: object) -> dict[str, object]:
    names = [name.strip() for name in key.split(",")]
    if len(names) == 1:
        return {names[0]: value}
    if not isinstance(value, list) or len(value) != len(names):
        raise ParamsError(f"[grid] {key}: each value must be a list of {len(names)} values")
    return dict(zip(names, value, strict=True))


def _labels_suffix(spec: Mapping[str, Any]) -> str:
    return f" {spec['labels']}" if spec.get("labels") else ""


def load_grid(path: Path) -> Grid:
    """Parse and check a grid file (every grid point is validated before anything runs)."""
    raw = read_toml(path)
    known = {"evaluation", "select", "holdout", "params", "data", "base", "grid"}
    if unknown := sorted(set(raw) - known):
        raise ParamsError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    evaluation = raw.get("evaluation", "related")
    if evaluation not in EVALUATORS:
        raise ParamsError(
            f"{path}: evaluation {evaluation!r} is not one of {', '.join(EVALUATORS)}"
        )
    data = raw.get("data")
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise ParamsError(f"{path}: needs at least one [[data]] table with articles = PATH")
    for spec in data:
        if "articles" not in spec:
            raise ParamsError(f"{path}: every [[data]] table needs articles = PATH")
        for key in _PATH_KEYS:
            if key in spec:
                spec[key] = str((path.parent / str(spec[key])).resolve())
    base = load_params(path.parent / raw["params"]) if "params" in raw else None
    related, trending = base or (RelatedParams(), TrendingParams())
    related, trending = apply_overrides(related, trending, raw.get("base", {}), f"{path}: [base]")
    axes = raw.get("grid", {})
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ParamsError(f"{path}: [grid] {key} must be a non-empty list of values")
    grid = Grid(
        path,
        evaluation,
        str(raw.get("select", DEFAULT_SELECT.get(evaluation, ""))),
        raw.get("holdout", DEFAULT_HOLDOUT.get(evaluation)),
        data,
        (related, trending),
        axes,
    )
    for point in grid.points():
        apply_overrides(related, trending, point, f"{path}: [grid]")
    return grid


@dataclass
class Result:
    """One grid point's parameters and metrics per data set."""

    point: dict[str, object]
    related: RelatedParams
    trending: TrendingParams
    metrics: list[dict[str, float]]
    seconds: float

    def mean(self, metric: str | None) -> float:
        """Mean of a metric over the data sets (NaN when absent)."""
        if metric is None:
            return float("nan")
        values = [m.get(metric, float("nan")) for m in self.metrics]
        return sum(values) / len(values)


def run_grid(grid: Grid, log: Callable[[str], None] = print) -> list[Result]:
    """Evaluate every grid point on every data set; best first by the select metric."""
    evaluate = EVALUATORS[grid.evaluation]
    results: list[Result] = []
    points = grid.points()
    for n, point in enumerate(points, 1):
        related, trending = apply_overrides(*grid.base, point, f"{grid.path}: [grid]")
        start = time.perf_counter()
        metrics = [evaluate(spec, related, trending) for spec in grid.data]
        if missing := [m for m in (grid.select, grid.holdout) if m and m not in metrics[0]]:
            known = ", ".join(sorted(metrics[0]))
            raise ParamsError(f"{grid.path}: metric {missing[0]!r} not produced (known: {known})")
        result = Result(point, related, trending, metrics, time.perf_counter() - start)
        results.append(result)
        shown = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) or "base"
        log(f"[{n}/{len(points)}] {shown}: {grid.select} {result.mean(grid.select):.4f}")
    order = sorted(range(len(results)), key=lambda i: (-results[i].mean(grid.select), i))
    return [results[i] for i in order]


def leaderboard(grid: Grid, results: list[Result]) -> tuple[list[str], list[list[object]]]:
    """Headers and rows: rank, grid values, select metric per data set and mean, holdout."""
    names = grid.names()
    headers = ["rank", *(k.split(".")[-1] for k in grid.fields())]
    headers += [f"{grid.select} {n}" for n in names] + [f"{grid.select} mean"]
    if grid.holdout:
        headers += [f"{grid.holdout} {n}" for n in names] + [f"{grid.holdout} mean"]
    headers.append("seconds")
    rows: list[list[object]] = []
    for rank, result in enumerate(results, 1):
        row: list[object] = [rank, *result.point.values()]
        row += [m[grid.select] for m in result.metrics] + [result.mean(grid.select)]
        if grid.holdout:
            row += [m[grid.holdout] for m in result.metrics] + [result.mean(grid.holdout)]
        rows.append([*row, round(result.seconds, 1)])
    return headers, rows
