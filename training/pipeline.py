"""The training run as named stages: read the inputs, fit the related lists and the trending
model, assemble the manifest, write the model folder, publish to Redis, prune old versions.
Any failure before the pointer flip leaves the live version serving."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import redis
from numpy.typing import NDArray

from recommender.domain import Article
from recommender.store.codec import PopularList
from recommender.store.keys import Keys
from recommender.store.vectors import chunk_count, write_vectors
from training import compute
from training import publish as pub
from training.gates import (
    ClickMatch,
    Gates,
    check_clicks,
    check_related,
    check_shrink,
    enforce,
    lists_with_related,
)
from training.live_state import LiveState, clear_folded, merge_articles, read_live_state
from training.lock import RunLock
from training.memory import peak_rss_mb
from training.modeldir import (
    BuiltModel,
    file_sha256,
    prune_model_dirs,
    remove_version_files,
    write_model_dir,
)
from training.related.embeddings import EncodeStats, default_store, embed_articles
from training.related.explain import Explanations
from training.related.lists import CandidateLists
from training.related.model import RelatedModel, build_related, text_model_json
from training.related.params import RelatedParams
from training.sources.articles import ArticleSet, read_articles
from training.sources.columns import ColumnMap
from training.sources.events import EventLog, read_events
from training.trending.halflife import fit_for_training
from training.trending.model import (
    TrendingParams,
    article_components,
    article_scores,
    default_as_of,
    index_events,
    popular_lists,
    with_components,
)
from training.trending.windows import window_lists


@dataclass(frozen=True)
class TrainConfig:
    """One training run's inputs and knobs."""

    articles: Path
    clicks: Path | None = None
    format: str = "auto"
    column_map: ColumnMap = field(default_factory=dict)
    """field -> column for the names the readers do not recognise (sources/columns.py)."""
    as_of: float | None = None
    model_dir: Path = Path(".newsrec/models")
    max_bad_rows: int = 0
    related: RelatedParams = field(default_factory=RelatedParams)
    trending: TrendingParams = field(default_factory=TrendingParams)
    keep_versions: int = 3
    publish_batch: int = 1000
    progress: bool = True
    gates: Gates = field(default_factory=Gates)
    lock_lease_seconds: float = 120.0
    wait_for_lock: float | None = None
    """None: stop at once when another run holds the lock; seconds (math.inf: no limit)."""
    embedding_store: Path | None = field(default_factory=default_store)
    """Where article embeddings are kept between runs (None: encode every article)."""
    dask_scheduler: str | None = None
    """A dask.distributed scheduler address: the heavy stages run on its workers (None: local
    processes and threads; training/compute.py). The lists are the same either way."""


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
    leftovers: list[str] = field(default_factory=list)
    """Pending versions of killed runs deleted (keys and folders) at the start."""


@dataclass
class Corpus:
    """The articles a run trains on: the export with live upserts folded in, takedowns out."""

    export: ArticleSet
    live: LiveState
    articles: list[Article]
    folded: int
    dropped: int


@dataclass
class RelatedOutput:
    """The related stage's lists, text model and the article vectors written for serving."""

    model: RelatedModel
    lists: CandidateLists
    text_model: bytes
    vectors_path: Path
    embedded: Embedded | None = None


@dataclass
class Embedded:
    """The encode stage's vectors and what it reused."""

    rows: NDArray[np.float32]
    stats: EncodeStats


@dataclass
class TrendingOutput:
    """The trending stage's parameters (fitted), the moment scored and the Popular lists."""

    params: TrendingParams
    fit: dict[str, object]
    as_of: float
    popular: dict[str, PopularList]
    windows: dict[str, dict[str, PopularList]] = field(default_factory=dict)
    """The named windows' lists (training/trending/windows.py): window -> section -> list."""


class StageTimer:
    """Records how long each named stage took and reports it through `log`."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self.log = log

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage `name`."""
        self.log(f"{name}...")
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def train(
    config: TrainConfig, client: redis.Redis, keys: Keys, log: Callable[[str], None] = print
) -> TrainResult:
    """Under the namespace's lock: delete a killed run's leftovers, run every stage, check the
    gates and publish; raises (leaving the live version alone, and nothing pending) on any
    failure or refusal."""
    config.model_dir.mkdir(parents=True, exist_ok=True)
    with (
        RunLock(client, keys, "train", config.lock_lease_seconds, config.wait_for_lock) as lock,
        compute.on_cluster(config.dask_scheduler),
    ):
        leftovers = pub.remove_leftovers(client, keys, config.model_dir)
        version = pub.new_version()
        pub.mark_pending(client, keys, version)
        try:
            result = _run(config, client, keys, log, version, lock)
        except BaseException:
            if client.zscore(keys.pending, version) is not None:  # never made live
                pub.delete_version(client, keys, version)
                remove_version_files(config.model_dir, version)
            raise
    result.leftovers = leftovers
    return result


def _run(
    config: TrainConfig,
    client: redis.Redis,
    keys: Keys,
    log: Callable[[str], None],
    version: str,
    lock: RunLock,
) -> TrainResult:
    """The stages of one run, from reading the inputs to pruning old versions."""
    # Scratch files beside the model folders (a hidden name, so pruning skips it): moving them
    # into the new model folder is a rename, not a copy of gigabytes.
    scratch_dir = tempfile.TemporaryDirectory(prefix=f".scratch-{version}-", dir=config.model_dir)
    with scratch_dir as scratch:
        timer = StageTimer(log)
        with timer.stage("read articles"):
            corpus = read_corpus(config, client, keys)
        events = None
        if config.clicks is not None:
            with timer.stage("read clicks"):
                known = {a.id for a in corpus.articles}
                events = read_events(config.clicks, config.format, known, config.max_bad_rows,
                                     config.column_map)  # fmt: skip
        with timer.stage("encode articles"):
            embeddings = encode_articles(config, corpus, log)
        with timer.stage("fit TF-IDF and related lists"):
            related = fit_related_lists(config, corpus, Path(scratch), embeddings)
        with timer.stage("fit trending"):
            trending = fit_trending(config, corpus.articles, events)
        with timer.stage("check sanity gates"):
            check_gates(config.gates, client, keys, events, related)
        with timer.stage("assemble manifest"):
            model = assemble(config, corpus, events, related, trending, version, keys)
        with timer.stage("write model folder"):
            model.meta["timing_seconds"] = dict(timer.seconds)
            model.meta["peak_rss_mb"] = round(peak_rss_mb(), 1)
            model_path = write_model_dir(model, config.model_dir)
        with timer.stage("publish to Redis"):
            options = pub.PublishOptions(config.publish_batch, config.progress, lock)
            pub.publish_folder(client, keys, model_path, model.meta, options)
            clear_folded(client, keys, corpus.live)
        with timer.stage("prune old versions"):
            pruned = pub.prune(client, keys, config.keep_versions)
            kept = pub.kept_versions(client, keys)
            prune_model_dirs(config.model_dir, config.keep_versions, kept, keys.namespace)
    return TrainResult(version, model_path, model.meta, corpus.export, events,
                       timer.seconds, peak_rss_mb(), pruned)  # fmt: skip


def check_gates(
    gates: Gates, client: redis.Redis, keys: Keys, events: EventLog | None, related: RelatedOutput
) -> None:
    """Refuse (GateRefused) a model a bad input would break, before anything is written."""
    articles = len(related.lists)
    refusals = []
    if events is not None:
        refusals.append(check_clicks(ClickMatch.of(events), gates))
    refusals.append(check_shrink(articles, pub.live_articles(client, keys), gates))
    with_lists = lists_with_related(related.lists.lists.scores)
    refusals.append(check_related(with_lists, articles, gates))
    enforce(refusals)


def read_corpus(config: TrainConfig, client: redis.Redis, keys: Keys) -> Corpus:
    """The export, with the live state (upserts, takedowns) folded in."""
    export = read_articles(config.articles, config.format, config.max_bad_rows, config.column_map)
    live = read_live_state(client, keys)
    articles, folded, dropped = merge_articles(export.articles, live)
    # The related stage drops each body once vectorised (at 1M articles bodies hold about
    # 3.5 GB); the export's own list would keep them alive, so it becomes the corpus list.
    export.articles = articles
    return Corpus(export, live, articles, folded, dropped)


def encode_articles(
    config: TrainConfig, corpus: Corpus, log: Callable[[str], None]
) -> Embedded | None:
    """Every article's sentence embedding, reusing the store's (None when the blend is off)."""
    if config.related.embedding_weight == 0:
        return None
    return Embedded(*embed_articles(corpus.articles, config.related.embedding_model,
                                    config.embedding_store, config.progress, log))  # fmt: skip


def fit_related_lists(
    config: TrainConfig, corpus: Corpus, scratch: Path, embedded: Embedded | None = None
) -> RelatedOutput:
    """TF-IDF (+ LSA + embedding) related lists, and the vectors live upserts score against,
    on disk."""
    rows = None if embedded is None else embedded.rows
    model, lists = build_related(corpus.articles, config.related, config.progress,
                                 release_text=True, embeddings=rows)  # fmt: skip
    vectors_path = scratch / "vectors.npz"  # streamed to Redis from disk: GBs at 1M articles
    with vectors_path.open("wb") as out:
        write_vectors(out, [a.id for a in corpus.articles], model.matrix,
                      lists.kth_scores(config.related.top_k), model.serving_arrays())  # fmt: skip
    text_model = text_model_json(model.vectorizer, config.related.title_weight)
    return RelatedOutput(model, lists, text_model, vectors_path, embedded)


def fit_trending(
    config: TrainConfig, articles: list[Article], events: EventLog | None
) -> TrendingOutput:
    """Half-lives fitted on the log's replay, then Popular lists scored as of as_of."""
    as_of = config.as_of if config.as_of is not None else default_as_of(events, articles)
    reread = None
    if config.clicks is not None:  # the fit rereads the log with the clicks on unknown ids
        reread = partial(read_events, config.clicks, config.format, None, config.max_bad_rows,
                         config.column_map)  # fmt: skip
    params, fit = fit_for_training(events, as_of, config.trending, reread)
    scores = article_scores(events, as_of, params) if events is not None else {}
    popular = popular_lists(articles, scores, as_of, params)
    windows: dict[str, dict[str, PopularList]] = {}
    if events is not None:  # serving decays these forward and adds live events to them
        with_components(popular, article_components(events, as_of, params))
        windows = window_lists(articles, index_events(events, params), as_of, params)
    return TrendingOutput(params, fit, as_of, popular, windows)


def assemble(
    config: TrainConfig,
    corpus: Corpus,
    events: EventLog | None,
    related: RelatedOutput,
    trending: TrendingOutput,
    version: str,
    keys: Keys,
) -> BuiltModel:
    """The new version: its manifest (parameters, inputs, counts) and everything it publishes."""
    sections = Counter(s.lower() for a in corpus.articles for s in a.sections)
    meta: dict[str, Any] = {
        "version": version,
        "namespace": keys.namespace,
        "trained_at": time.time(),
        "articles": len(corpus.articles),
        "live_upserts_folded": corpus.folded,
        "taken_down_dropped": corpus.dropped,
        "vector_chunks": chunk_count(related.vectors_path.stat().st_size),
        "clicks": int(events.clicks) if events is not None else 0,
        "events": len(events) if events is not None else 0,
        "vocabulary": len(related.model.vectorizer.vocabulary_),
        "duplicate_pairs": len(related.model.arrays["duplicate_pairs"]),
        "sections": sorted(sections),
        "parameters": {
            **{f"related.{k}": v for k, v in config.related.as_dict().items()},
            **{f"trending.{k}": v for k, v in trending.params.as_dict().items()},
            **{f"trending.fit.{k}": v for k, v in trending.fit.items()},
            "trending.as_of": trending.as_of,
        },
        "inputs": {"articles": _input_meta(config.articles, corpus.export, len(corpus.articles))},
    }
    if related.embedded is not None:
        stats = related.embedded.stats
        meta["embeddings"] = {
            "model": config.related.embedding_model,
            "reused": stats.reused,
            "encoded": stats.encoded,
            "seconds": round(stats.seconds, 2),
        }
    if events is not None and config.clicks is not None:
        clicks = _input_meta(config.clicks, events, len(events))
        meta["inputs"]["clicks"] = {**clicks, "unknown_article_ids": events.unknown_ids}
    return BuiltModel(
        version, corpus.articles, related.lists, trending.popular, meta,
        related.model.arrays, related.text_model, related.vectors_path, trending.windows,
        explanations(config, corpus, related),
    )  # fmt: skip


def explanations(
    config: TrainConfig, corpus: Corpus, related: RelatedOutput
) -> Explanations | None:
    """What GetRelated(explain=true) answers from, when the params ask for it."""
    if not config.related.explain:
        return None
    return Explanations.of(related.model, config.related, corpus.articles)


def _input_meta(path: Path, source: ArticleSet | EventLog, rows: int) -> dict[str, Any]:
    return {
        "path": str(path),
        "sha256": file_sha256(path),
        "format": source.format,
        "rows": rows,
        "bad_rows_skipped": source.bad_row_count,
    }
