"""The training run: read inputs, fit related and trending models, write the model folder,
publish to Redis. Any failure before the pointer flip leaves the live version serving."""

from __future__ import annotations

import hashlib
import json
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from recommender.domain import Article
from recommender.store import Keys, corpus_chunk_count, write_corpus
from recommender.textmodel import vectorizer_to_json
from training import publish as pub
from training.candidates import CandidateLists
from training.halflife import fit_for_training
from training.live_state import clear_folded, merge_articles, read_live_state
from training.related import RelatedModel, RelatedParams, fit_related
from training.sources import ArticleSet, EventLog, read_articles, read_events
from training.trending import (
    TrendingParams,
    article_components,
    article_scores,
    default_as_of,
    popular_lists,
    with_components,
)

CANDIDATE_MARGIN = 10
"""Extra neighbours searched so that dropping near-duplicates still leaves top_k."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run's inputs and knobs."""

    articles: Path
    clicks: Path | None = None
    format: str = "auto"
    as_of: float | None = None
    model_dir: Path = Path(".newsrec/models")
    max_bad_rows: int = 0
    related: RelatedParams = field(default_factory=RelatedParams)
    trending: TrendingParams = field(default_factory=TrendingParams)
    keep_versions: int = 3
    publish_batch: int = 1000
    progress: bool = True


@dataclass
class TrainResult:
    """What the run did, for the summary and the manifest."""

    version: str
    model_path: Path
    meta: dict[str, Any]
    articles: ArticleSet
    events: EventLog | None
    stage_seconds: dict[str, float]
    peak_rss_mb: float
    pruned: list[str]


def file_sha256(path: Path) -> str:
    """Checksum of an input, recorded in the manifest."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class StageTimer:
    """Records how long each named stage took and reports it through `log`."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self.log = log

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.log(f"{name}...")
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def build_related(
    articles: list[Article], params: RelatedParams, progress: bool, release_text: bool = False
) -> tuple[RelatedModel, CandidateLists]:
    """Fit TF-IDF (+ LSA) and turn neighbours into per-article candidate lists. With
    release_text, article bodies are dropped from `articles` once vectorised (see
    training/vectorise.py)."""
    model = fit_related(
        articles, params, params.top_k + CANDIDATE_MARGIN, progress, release_text=release_text
    )
    return model, CandidateLists(articles, model.lists)


def _input_meta(path: Path, fmt: str, rows: int, bad: int) -> dict[str, Any]:
    return {
        "path": str(path),
        "sha256": file_sha256(path),
        "format": fmt,
        "rows": rows,
        "bad_rows_skipped": bad,
    }


def train(
    config: TrainConfig, client: redis.Redis, keys: Keys, log: Callable[[str], None] = print
) -> TrainResult:
    """Run the whole job and publish; raises (leaving the live version alone) on any failure."""
    config.model_dir.mkdir(parents=True, exist_ok=True)
    # Scratch files beside the model folders (a hidden name, so pruning skips it): moving them
    # into the new model folder is a rename, not a copy of gigabytes.
    with tempfile.TemporaryDirectory(prefix=".scratch-", dir=config.model_dir) as scratch:
        return _train(config, client, keys, log, Path(scratch))


def _train(
    config: TrainConfig,
    client: redis.Redis,
    keys: Keys,
    log: Callable[[str], None],
    scratch: Path,
) -> TrainResult:
    timer = StageTimer(log)
    with timer.stage("read articles"):
        article_set = read_articles(config.articles, config.format, config.max_bad_rows)
        live = read_live_state(client, keys)
        articles, folded, dropped = merge_articles(article_set.articles, live)
    events = None
    if config.clicks is not None:
        with timer.stage("read clicks"):
            events = read_events(
                config.clicks, config.format, {a.id for a in articles}, config.max_bad_rows
            )
    with timer.stage("fit TF-IDF and related lists"):
        # The related stage drops each body once vectorised (at 1M articles bodies hold about
        # 3.5 GB); the export's own list would keep them alive, so it becomes the corpus list.
        article_set.articles = articles
        fitted, related = build_related(
            articles, config.related, config.progress, release_text=True
        )
        vectorizer, matrix, arrays = fitted.vectorizer, fitted.matrix, fitted.arrays
        kth = related.kth_scores(config.related.top_k)
        corpus_path = scratch / "corpus.npz"  # streamed to Redis from disk: GBs at 1M articles
        with corpus_path.open("wb") as out:
            write_corpus(out, [a.id for a in articles], matrix, kth, fitted.serving_arrays())
        vectorizer_json = json.dumps(
            vectorizer_to_json(vectorizer, config.related.title_weight), separators=(",", ":")
        ).encode()
    as_of = config.as_of if config.as_of is not None else default_as_of(events, articles)
    with timer.stage("fit trending"):
        trending, trending_fit = fit_for_training(
            events, as_of, config.trending, config.clicks, config.format, config.max_bad_rows
        )
        scores = article_scores(events, as_of, trending) if events is not None else {}
        popular = popular_lists(articles, scores, as_of, trending)
        if events is not None:  # serving decays these forward and adds live events to them
            with_components(popular, article_components(events, as_of, trending))
    version = pub.new_version()
    sections = Counter(s.lower() for a in articles for s in a.sections)
    meta: dict[str, Any] = {
        "version": version,
        "trained_at": time.time(),
        "articles": len(articles),
        "live_upserts_folded": folded,
        "taken_down_dropped": dropped,
        "corpus_chunks": corpus_chunk_count(corpus_path.stat().st_size),
        "clicks": int(events.clicks) if events is not None else 0,
        "vocabulary": len(vectorizer.vocabulary_),
        "duplicate_pairs": len(arrays["duplicate_pairs"]),
        "sections": sorted(sections),
        "parameters": {
            **{f"related.{k}": v for k, v in config.related.as_dict().items()},
            **{f"trending.{k}": v for k, v in trending.as_dict().items()},
            **{f"trending.fit.{k}": v for k, v in trending_fit.items()},
            "trending.as_of": as_of,
        },
        "inputs": {
            "articles": _input_meta(
                config.articles, article_set.format, len(articles), len(article_set.bad_rows)
            ),
        },
    }
    if events is not None and config.clicks is not None:
        meta["inputs"]["clicks"] = _input_meta(
            config.clicks, events.format, len(events), len(events.bad_rows)
        )
        meta["inputs"]["clicks"]["unknown_article_ids"] = events.unknown_ids
    model = pub.BuiltModel(
        version, articles, related, popular, meta, arrays, vectorizer_json, corpus_path
    )
    with timer.stage("write model folder"):
        vectorizer_path = scratch / "vectorizer.json"
        vectorizer_path.write_bytes(vectorizer_json)
        meta["timing_seconds"] = timer.seconds
        meta["peak_rss_mb"] = round(peak_rss_mb(), 1)
        model_path = pub.write_model_dir(model, config.model_dir, vectorizer_path)
    with timer.stage("publish to Redis"):
        pub.publish(client, keys, model, config.publish_batch, config.progress)
        clear_folded(client, keys, live)
    with timer.stage("prune old versions"):
        pruned = pub.prune(client, keys, config.keep_versions)
        pub.prune_model_dirs(config.model_dir, config.keep_versions)
    return TrainResult(
        version, model_path, meta, article_set, events, timer.seconds, peak_rss_mb(), pruned
    )
