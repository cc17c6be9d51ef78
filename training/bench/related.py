"""`newsrec bench related`: the related-articles path on N generated articles, timed per stage.

Runs the training path (training/pipeline.py `train`, publishing into a throwaway namespace that
is deleted afterwards; or only training/related/model.py `fit_related` with --no-publish) with
its searches timed by the probes of training/bench/probe.py (the pseudo-relevance-feedback
neighbours of the LSA part, the near-duplicate pairs, the related candidates), with the bench's
search method and knobs. Then compares the candidates with exact search on a sample of queries,
computed by sklearn's brute-force cosine search on the same vectors, whose time, extrapolated
to all N queries, is the baseline.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from training.bench.config import BenchConfig
from training.bench.machine import machine
from training.bench.probe import Probe
from training.bench.related_report import table
from training.compute import on_cluster, worker_peaks_mb
from training.memory import TreeRssSampler, peak_rss_mb, release_memory, tree_rss_mb


def ensure_corpus(articles: int, corpus: Path | None) -> tuple[Path, float | None]:
    """The corpus's articles.jsonl, generated unless a matching one exists; generate seconds
    (None when reused)."""
    from training.demo.generate import DemoSpec, generate

    folder = corpus or Path(".newsrec/bench") / f"articles-{articles}"
    path = folder / "articles.jsonl"
    spec = DemoSpec(articles=articles, clicks_per_article=0)
    marker = folder / "bench-spec.json"
    wanted = json.dumps(asdict(spec), sort_keys=True)
    if path.exists() and (corpus is not None or (marker.exists() and marker.read_text() == wanted)):
        return path, None
    start = time.perf_counter()
    generate(folder, spec)
    marker.write_text(wanted)
    return path, time.perf_counter() - start


def run_path(
    config: BenchConfig, path: Path, probe: Probe, scheduler: str | None = None
) -> dict[str, float]:
    """The training path with the probes in (heavy stages on the dask `scheduler` if given);
    returns its stage seconds."""
    from training.pipeline import TrainConfig, train
    from training.related.model import CANDIDATE_MARGIN, fit_related
    from training.related.params import RelatedParams
    from training.sources.articles import read_articles

    params = replace(RelatedParams(), top_k=config.k, search_shards=config.shards)
    if config.embedding_weight is not None:
        params = replace(params, embedding_weight=config.embedding_weight)
    if not config.publish:
        with probe.installed(), probe.timed("read articles"):
            articles = read_articles(path, "auto", 0).articles
        with probe.installed(), probe.timed("related total"), on_cluster(scheduler):
            fit_related(articles, params, config.k + CANDIDATE_MARGIN, config.progress)
        return {}
    import redis

    from recommender.config import load_settings
    from recommender.embedded import resolve_redis_url
    from recommender.store.keys import Keys
    from training.bench.processes import drop_namespace

    settings = load_settings(overrides={"redis_url": config.redis_url})
    client = redis.Redis.from_url(resolve_redis_url(settings.redis_url, settings.data_dir))
    namespace = f"bench-related-{secrets.token_hex(4)}"
    try:
        with tempfile.TemporaryDirectory() as tmp, probe.installed():
            train_config = TrainConfig(
                articles=path, model_dir=Path(tmp), related=params, progress=config.progress,
                publish_batch=settings.publish_batch, dask_scheduler=scheduler,
            )  # fmt: skip

            def log(line: str) -> None:
                print(f"[bench] train: {line} (RSS now, with workers: {tree_rss_mb():,.0f} MB, "
                      f"peak of this process {peak_rss_mb():,.0f} MB)", file=sys.stderr,
                      flush=True)  # fmt: skip

            result = train(train_config, client, Keys(namespace), log=log)
        return dict(result.stage_seconds)
    finally:  # the throwaway namespace goes, whatever happened
        drop_namespace(client, namespace)


def quality(config: BenchConfig, probe: Probe) -> dict[str, Any]:
    """Recall and P@10 (same main section) against exact search on sampled queries, and the
    sklearn brute-force baseline's time on them, extrapolated to every query."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    vectors, allowed = probe.captured["vectors"], probe.captured["allowed"]
    ours = probe.captured["found"][0]
    n = len(ours)
    sample = np.sort(np.random.default_rng(config.seed).choice(n, min(config.sample, n), False))
    sparse, dense = vectors.scaled()
    data = sparse
    if dense is not None:  # rows of norm 1, so cosine = the blended similarity
        data = sp.hstack([sparse, sp.csr_matrix(dense)], format="csr")
    del sparse, dense
    width = min(n, config.k + 51)  # the extra absorb the article itself and hidden duplicates
    start = time.perf_counter()
    brute = NearestNeighbors(n_neighbors=width, metric="cosine", algorithm="brute")
    distances, found = brute.fit(data).kneighbors(data[sample], n_neighbors=width)
    seconds = time.perf_counter() - start
    del data
    keep = (found != sample[:, None]) & (distances < 1.0)
    if allowed is not None:
        keep &= allowed[found]
    exact = [row[ok][: config.k] for row, ok in zip(found, keep, strict=True)]
    sections = np.asarray(probe.captured["sections"])

    def recall(depth: int, lists: Any) -> float:
        hits = [len(set(ex[:depth].tolist()) & set(got[:depth].tolist())) / len(ex[:depth])
                for ex, got in zip(exact, lists, strict=True) if len(ex)]  # fmt: skip
        return float(np.mean(hits)) if hits else 1.0

    def precision(lists: Any) -> float:
        tops = [(i, got[got >= 0][:10]) for i, got in enumerate(lists)]
        same = [np.mean(sections[top] == sections[sample[i]]) for i, top in tops if len(top)]
        return float(np.mean(same)) if same else 0.0

    result: dict[str, Any] = {
        "sample": len(sample),
        "recall@10": recall(10, ours[sample]),
        "recall@k": recall(config.k, ours[sample]),
        "p@10_exact": precision(exact),
        "p@10_ours": precision(ours[sample]),
        "sklearn_seconds_sample": seconds,
        "sklearn_seconds_extrapolated": seconds * n / len(sample),
        "sweep": [],
    }
    for knob, values in config.sweeps:
        for value in values:
            again, took = _search_again(config, vectors, allowed, ours.shape[1], {knob: value})
            result["sweep"].append(
                {knob: value, "seconds": took, "recall@10": recall(10, again[sample]),
                 "recall@k": recall(config.k, again[sample])}
            )  # fmt: skip
    return result


def _search_again(
    config: BenchConfig, vectors: Any, allowed: Any, k: int, knobs: dict[str, Any]
) -> tuple[Any, float]:
    """The pruned search again with changed knobs: its neighbours and its seconds."""
    from training.search.neighbours import search

    start = time.perf_counter()
    found = search(vectors.sparse, k, vectors.dense, vectors.weight, method="pruned",
                   allowed=allowed, n_jobs=config.n_jobs, **(config.knobs | knobs))[0]  # fmt: skip
    return found, time.perf_counter() - start


def run(config: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate or reuse the corpus, run the path, measure quality; returns every figure."""
    figures: dict[str, Any] = {"machine": machine(), "config": asdict(config)}
    path, generated = ensure_corpus(config.articles, config.corpus)
    figures["corpus"] = str(path)
    probe = Probe(config)
    with dask_cluster(config) as scheduler:
        start = time.perf_counter()
        with TreeRssSampler() as sampled:  # workers' memory counts too
            stages = run_path(config, path, probe, scheduler)
        total = time.perf_counter() - start
        if scheduler is not None:
            with on_cluster(scheduler) as client:
                probe.note_peaks(worker_peaks_mb(client))
                figures["dask"] = {"scheduler": scheduler, "workers": config.dask_workers,
                                   "worker_peak_rss_mb": dict(probe.worker_max),
                                   "worker_peaks_by_stage": probe.worker_peaks,
                                   "worker_starts_by_stage": probe.worker_starts}  # fmt: skip
    if "neighbours" not in " ".join(probe.seconds) or "found" not in probe.captured:
        raise RuntimeError("the training path no longer calls related.model.neighbours: re-wire")
    timings: dict[str, float | None] = {"generate corpus": generated}
    timings |= _stage_table(stages, probe.seconds)
    # No per-worker peak: a spawned worker's ru_maxrss counts the parent's image it forked
    # from before exec, so the sampled PSS of the whole tree is the figure that means something.
    figures |= {"stages": timings, "end_to_end_seconds": total, "peak_rss_mb": peak_rss_mb(),
                "peak_tree_rss_mb": sampled.peak}  # fmt: skip
    figures["neighbours_seconds"] = probe.seconds[probe.captured["stage"]]
    figures["articles"] = len(probe.captured["found"][0])
    release_memory()  # the path's garbage, before sklearn's brute force needs ~3x the vectors
    figures["quality"] = quality(config, probe)
    figures["speedup"] = (
        figures["quality"]["sklearn_seconds_extrapolated"] / figures["neighbours_seconds"]
    )
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    log(table(figures))
    return figures


@contextmanager
def dask_cluster(config: BenchConfig) -> Iterator[str | None]:
    """The scheduler the run uses: --dask-scheduler's, a LocalCluster of --dask-workers
    one-thread processes started for the run, or None (local threads and processes)."""
    if not config.dask_workers:
        yield config.dask_scheduler
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=config.dask_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:  # fmt: skip
        yield cluster.scheduler_address


def _stage_table(stages: dict[str, float], probed: dict[str, float]) -> dict[str, float]:
    """The pipeline's stages with the related stage split into what the probes timed."""
    outer = {"read articles": probed["read articles"]} if "read articles" in probed else {}
    outer |= stages or {"related total": probed.get("related total", 0.0)}
    rows: dict[str, float] = {}
    for name, seconds in outer.items():
        if name in ("fit TF-IDF and related lists", "related total"):
            inner = {k: v for k, v in probed.items() if k not in ("read articles", "related total")}
            rows |= inner
            rows["related: lists, encoding, rest"] = seconds - sum(inner.values())
        else:
            rows[name] = seconds
    return rows
