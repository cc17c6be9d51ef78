"""`newsrec eval related`: the quality of related lists, computed through the training code path
(training.related.model.build_related), on an export whose articles carry labels.

Relevant = shares a label with the query article. Metrics per query: precision@k (missing slots
are misses) and nDCG@k (binary gain, ideal = min(k, relevant articles) hits); over all lists:
coverage (share with k items), near-duplicate rate (items with cosine >= the duplicate
threshold, on the full-vocabulary representation, to the query or to an earlier item) and the
mean age gap in days between query and item (where both have dates). Queries are split by their
position in the export into an even and an odd half, so parameters can be chosen on one half and
reported on the other.

A label must never be in the text the model reads: when labels come from tags, tags are blanked;
MIND exports always lose their tags (the subcategory, which determines the category), so MIND
is scored on title + abstract.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.domain import Article
from training.metrics import ndcg, precision_at_k
from training.related.duplicates import fit_duplicate_vectors
from training.related.model import DAY, build_related
from training.related.params import RelatedParams
from training.sources.articles import read_articles
from training.sources.common import InputError, detect_format

NEAR_DUPLICATE = 0.9
"""Cosine on the full-vocabulary representation at which a list item counts as a near-duplicate."""
_SECTIONS = {"section", "sections", "category", "categories"}
_MIND = {"category": "sections", "subcategory": "tags", "tags": "tags"}


@dataclass
class LabelledCorpus:
    """Articles as the model sees them, and each one's labels (empty = not a query)."""

    articles: list[Article]
    labels: list[frozenset[str]]
    field: str
    path: str


def _label_values(value: object) -> frozenset[str]:
    """A string ('|'-separated or a JSON list), a number or a list of those -> label set."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                return _label_values(json.loads(text))
            except ValueError:
                pass
        return frozenset(p.strip() for p in text.split("|") if p.strip())
    if isinstance(value, list | tuple):
        return frozenset(str(v).strip() for v in value if str(v).strip())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return frozenset({str(value)})
    return frozenset()


def _raw_field(path: Path, kind: str, field: str) -> dict[str, frozenset[str]]:
    """id -> labels of any field of a JSONL/CSV export (rows the reader skipped are ignored)."""
    found: dict[str, frozenset[str]] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if kind == "csv":
            for row in csv.DictReader(handle):
                lowered = {str(k).strip().lower(): v for k, v in row.items()}
                found[str(lowered.get("id", "")).strip()] = _label_values(lowered.get(field))
            return found
        for line in handle:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                found[str(row.get("id", "")).strip()] = _label_values(row.get(field))
    return found


def load_labelled(path: Path, field: str | None = None, fmt: str = "auto") -> LabelledCorpus:
    """Read an export and the labels named by field (default: the sections/category)."""
    kind = detect_format(path, fmt)
    articles = read_articles(path, kind).articles
    name = (field or "sections").strip().lower()
    source = "sections" if name in _SECTIONS else "tags" if name in ("tag", "tags") else name
    if kind == "mind":
        if name not in _MIND:
            raise InputError(f"{path}: MIND news has labels category and subcategory, not {name!r}")
        source = _MIND[name]
    if source == "sections":
        labels = [frozenset(a.sections) for a in articles]
    elif source == "tags":
        labels = [frozenset(a.tags) for a in articles]
    else:
        raw = _raw_field(path, kind, name)
        labels = [raw.get(a.id, frozenset()) for a in articles]
    if kind == "mind" or source == "tags":
        articles = [replace(a, tags=()) for a in articles]
    if not any(labels):
        raise InputError(f"{path}: no article has a value in field {name!r}")
    return LabelledCorpus(articles, labels, name, str(path))


@dataclass
class ListQuality:
    """Per-query quality of one method's lists (NaN for unlabelled queries)."""

    name: str
    k: int
    precision: NDArray[np.float64]
    ndcg: NDArray[np.float64]
    full: NDArray[np.bool_]
    near_duplicate: NDArray[np.int64]
    """Items per list that are near-duplicates of the query or of an earlier item."""
    length: NDArray[np.int64]
    age_gap_days: NDArray[np.float64]
    """Mean |published_at gap| per list, NaN where no dated pair."""
    hits: NDArray[np.bool_]
    """(articles, k): item at each rank is relevant (False for unlabelled queries)."""

    def summary(self, queries: NDArray[np.bool_] | None = None) -> dict[str, float]:
        """Mean metrics over the chosen queries (default all)."""
        chosen = np.ones(len(self.precision), bool) if queries is None else queries
        labelled = chosen & ~np.isnan(self.precision)
        items = int(self.length[chosen].sum())
        gaps = self.age_gap_days[chosen]
        gaps = gaps[~np.isnan(gaps)]
        return {
            f"p@{self.k}": float(self.precision[labelled].mean()) if labelled.any() else 0.0,
            f"ndcg@{self.k}": float(self.ndcg[labelled].mean()) if labelled.any() else 0.0,
            "coverage": float(self.full[chosen].mean()) if chosen.any() else 0.0,
            "near_dup_rate": float(self.near_duplicate[chosen].sum() / items) if items else 0.0,
            "age_gap_days": float(gaps.mean()) if len(gaps) else math.nan,
        }

    def precision_curve(self) -> list[float]:
        """Mean precision at each list length 1..k over the labelled queries."""
        labelled = ~np.isnan(self.precision)
        if not labelled.any():
            return [0.0] * self.k
        cumulative = np.cumsum(self.hits[labelled], axis=1).mean(axis=0)
        return (cumulative / np.arange(1, self.k + 1)).tolist()

    def metrics(self) -> dict[str, float]:
        """All queries, then the even and odd halves (by position in the export)."""
        n = len(self.precision)
        even = np.arange(n) % 2 == 0
        result = self.summary()
        for half, mask in (("even", even), ("odd", ~even)):
            for key in (f"p@{self.k}", f"ndcg@{self.k}"):
                result[f"{key}/{half}"] = self.summary(mask)[key]
        return result


def _relevant_counts(labels: Sequence[frozenset[str]]) -> NDArray[np.int64]:
    """How many other articles share a label with each article."""
    members: dict[str, set[int]] = defaultdict(set)
    for i, own in enumerate(labels):
        for label in own:
            members[label].add(i)
    counts = np.zeros(len(labels), dtype=np.int64)
    for i, own in enumerate(labels):
        if len(own) == 1:
            counts[i] = len(members[next(iter(own))]) - 1
        elif own:
            counts[i] = len(set().union(*(members[lab] for lab in own))) - 1
    return counts


def score_lists(
    corpus: LabelledCorpus,
    lists: Sequence[Sequence[int]],
    k: int,
    name: str,
    duplicates: sp.csr_matrix,
    threshold: float,
) -> ListQuality:
    """Quality of per-article lists of article indices (first k items of each)."""
    n = len(corpus.articles)
    labels = corpus.labels
    duplicates = duplicates[:, np.unique(duplicates.indices)]  # drop unused hash buckets
    relevant = _relevant_counts(labels)
    dates = np.array(
        [math.nan if a.published_at is None else a.published_at for a in corpus.articles]
    )
    precision, ndcgs = np.full(n, np.nan), np.full(n, np.nan)
    near_dup = np.zeros(n, dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)
    gaps = np.full(n, np.nan)
    all_hits = np.zeros((n, k), dtype=np.bool_)
    for i, related in enumerate(lists):
        items = [j for j in related[:k] if j >= 0]
        length[i] = len(items)
        if labels[i]:
            hits = np.array(
                [bool(labels[j] & labels[i]) for j in items] + [False] * (k - len(items))
            )
            precision[i] = precision_at_k(hits, k)
            all_hits[i] = hits
            ndcgs[i] = ndcg(hits, np.ones(min(k, int(relevant[i]))))
        if items:
            rows = duplicates[[i, *items]]
            gram = (rows @ rows.T).toarray()
            near_dup[i] = int(np.any(np.tril(gram >= threshold, k=-1)[1:], axis=1).sum())
            item_gaps = np.abs(dates[items] - dates[i]) / DAY
            if not np.all(np.isnan(item_gaps)):
                gaps[i] = float(np.nanmean(item_gaps))
    return ListQuality(name, k, precision, ndcgs, length >= k, near_dup, length, gaps, all_hits)


def newsrec_lists(corpus: LabelledCorpus, params: RelatedParams) -> list[list[int]]:
    """Related lists exactly as the training job builds them (related.model.build_related)."""
    _, related = build_related(corpus.articles, params, progress=False)
    index = {a.id: i for i, a in enumerate(corpus.articles)}
    return [[index[article_id] for article_id, _, _ in chosen] for chosen in related]


def evaluate_related(
    corpus: LabelledCorpus,
    params: RelatedParams,
    k: int = 10,
    baselines: bool = False,
) -> list[ListQuality]:
    """Our lists (first) and optionally the baselines', scored the same way."""
    duplicates, _ = fit_duplicate_vectors(corpus.articles)
    threshold = NEAR_DUPLICATE
    results = [
        score_lists(corpus, newsrec_lists(corpus, params), k, "newsrec", duplicates, threshold)
    ]
    if baselines:
        from training.workbench.baselines import BASELINES

        for name, method in BASELINES.items():
            found = method(corpus.articles, k)
            results.append(score_lists(corpus, found.tolist(), k, name, duplicates, threshold))
    return results


def per_label_precision(
    corpus: LabelledCorpus, quality: ListQuality
) -> list[tuple[str, int, float]]:
    """(label, queries, mean precision@k) for every label, most frequent first."""
    values: dict[str, list[float]] = defaultdict(list)
    for own, value in zip(corpus.labels, quality.precision.tolist(), strict=True):
        for label in own:
            values[label].append(value)
    rows = [(label, len(v), float(np.mean(v))) for label, v in values.items()]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def evaluate_for_tune(spec: dict[str, Any], params: RelatedParams) -> dict[str, float]:
    """Tune's evaluator: spec has articles, optional labels, format and k."""
    corpus = cached_corpus(Path(spec["articles"]), spec.get("labels"), spec.get("format", "auto"))
    return evaluate_related(corpus, params, int(spec.get("k", 10)))[0].metrics()


_CACHE: dict[tuple[str, str | None, str], LabelledCorpus] = {}


def cached_corpus(path: Path, field: str | None, fmt: str) -> LabelledCorpus:
    """load_labelled, read once per process (a grid evaluates the same file many times)."""
    key = (str(path.resolve()), field, fmt)
    if key not in _CACHE:
        _CACHE[key] = load_labelled(path, field, fmt)
    return _CACHE[key]
