"""`newsrec bench related`: the related-articles path on N generated articles, timed per stage.

Runs the training path (training/pipeline.py `train`, publishing into a throwaway namespace that
is deleted afterwards; or only training/related.py `fit_related` with --no-publish) with its
neighbour searches (the pseudo-relevance-feedback neighbours of the LSA part, the near-duplicate
pairs, the related candidates) done by training/neighbours.py: what wiring it in will do, done
here at run time so the bench measures the real path. Then compares the candidates with exact
search on a sample of queries, computed by sklearn's brute-force cosine search on the same
vectors, whose time, extrapolated to all N queries, is the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from training.memory import TreeRssSampler, release_memory, tree_rss_mb

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class BenchConfig:
    """One bench run."""

    articles: int
    k: int = 50
    sample: int = 2000
    n_jobs: int = 2
    corpus: Path | None = None
    redis_url: str | None = None
    publish: bool = True
    method: str = "pruned"
    knobs: dict[str, int] = field(default_factory=dict)
    sweeps: tuple[tuple[str, tuple[int, ...]], ...] = ()
    """Knobs and values: search again with each (time and recall, for the plots)."""
    progress: bool = False
    seed: int = 0


@dataclass
class Probe:
    """Stand-ins for the training path's search functions that time and record each call."""

    config: BenchConfig
    seconds: dict[str, float] = field(default_factory=dict)
    captured: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + took
            # As it happens, so a run that dies (out of memory, say) still tells how far it got.
            print(f"[bench] {name}: {took:.1f} s, peak RSS {peak_rss_mb():,.0f} MB, "
                  f"RSS now (with workers) {tree_rss_mb():,.0f} MB",
                  file=sys.stderr, flush=True)  # fmt: skip

    def feedback_seconds(self) -> float:
        return sum(v for k, v in self.seconds.items() if k.startswith("LSA feedback"))

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The probes swapped into training.related for the duration."""
        from training import related
        from training.neighbours import pairs_above, search

        cfg = self.config

        def top_candidates(
            vectors: Any,
            k: int,
            allowed: Any = None,
            recency: Any = None,
            progress: bool = False,
            **passed: int,
        ) -> Any:
            if recency is not None:  # recency rules are not in the pruned search: exact, timed
                with self.timed("neighbours (exact: recency rules on)"):
                    return saved["top_candidates"](vectors, k, allowed, recency, progress)
            main = isinstance(vectors, related.ArticleVectors)
            sparse, dense, weight = (
                (vectors.sparse, vectors.dense, vectors.weight) if main else (vectors, None, 0.0)
            )
            width = max(0, min(k, sparse.shape[0] - 1))
            stage = f"neighbours (k={width})" if main else f"LSA feedback neighbours (k={width})"
            knobs: dict[str, Any] = {**passed, **cfg.knobs}
            with self.timed(stage):
                found = search(sparse, width, dense, weight, method=cfg.method, allowed=allowed,
                               n_jobs=cfg.n_jobs, progress=progress, **knobs)  # fmt: skip
            if main:
                self.captured.update(vectors=vectors, allowed=allowed, found=found, stage=stage)
            return related.Neighbours(*found)

        def duplicate_pairs(matrix: Any, threshold: float, progress: bool = False) -> Any:
            with self.timed(f"duplicates: search (>= {threshold})"):
                return pairs_above(matrix, threshold, cfg.n_jobs, progress)

        def vectorise(articles: Any, *args: Any, **kwargs: Any) -> Any:
            self.captured["sections"] = [a.sections[0] if a.sections else "" for a in articles]
            with self.timed("vectorise: TF-IDF and duplicate counts"):
                return saved["vectorise"](articles, *args, **kwargs)

        def fit_lsa(matrix: Any, params: Any, progress: bool = False) -> Any:
            nested = self.feedback_seconds()
            with self.timed("vectorise: LSA (feedback neighbours apart)"):
                fitted = saved["fit_lsa"](matrix, params, progress)
            # The feedback search inside it has its own row: count it once.
            self.seconds["vectorise: LSA (feedback neighbours apart)"] -= (
                self.feedback_seconds() - nested
            )
            return fitted

        def duplicate_vectors_of(counts: Any) -> Any:
            with self.timed("duplicates: vectors"):
                return saved["duplicate_vectors_of"](counts)

        probes = [top_candidates, duplicate_pairs, vectorise, fit_lsa, duplicate_vectors_of]
        saved = {probe.__name__: getattr(related, probe.__name__) for probe in probes}
        for probe in probes:
            setattr(related, probe.__name__, probe)
        try:
            yield
        finally:
            for name, original in saved.items():
                setattr(related, name, original)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict[str, Any]:
    """Where the figures were measured: cores, CPU, memory, versions, load."""
    import numpy
    import scipy
    import sklearn

    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "?")
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def ensure_corpus(articles: int, corpus: Path | None) -> tuple[Path, float | None]:
    """The corpus's articles.jsonl, generated unless a matching one exists; generate seconds
    (None when reused)."""
    from training.demo_data import DemoSpec, generate

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


def run_path(config: BenchConfig, path: Path, probe: Probe) -> dict[str, float]:
    """The training path with the probes in; returns its stage seconds."""
    from training.pipeline import CANDIDATE_MARGIN, TrainConfig, train
    from training.related import RelatedParams, fit_related
    from training.sources import read_articles

    params = replace(RelatedParams(), top_k=config.k)
    if not config.publish:
        with probe.installed(), probe.timed("read articles"):
            articles = read_articles(path, "auto", 0).articles
        with probe.installed(), probe.timed("related total"):
            fit_related(articles, params, config.k + CANDIDATE_MARGIN, config.progress)
        return {}
    import redis

    from recommender.config import load_settings
    from recommender.embedded import resolve_redis_url
    from recommender.store import Keys

    settings = load_settings(overrides={"redis_url": config.redis_url})
    client = redis.Redis.from_url(resolve_redis_url(settings.redis_url, settings.data_dir))
    namespace = f"bench-related-{secrets.token_hex(4)}"
    try:
        with tempfile.TemporaryDirectory() as tmp, probe.installed():
            train_config = TrainConfig(
                articles=path, model_dir=Path(tmp), related=params, progress=config.progress,
                publish_batch=settings.publish_batch,
            )  # fmt: skip

            def log(line: str) -> None:
                print(f"[bench] train: {line} (RSS now, with workers: {tree_rss_mb():,.0f} MB, "
                      f"peak of this process {peak_rss_mb():,.0f} MB)", file=sys.stderr,
                      flush=True)  # fmt: skip

            result = train(train_config, client, Keys(namespace), log=log)
        return dict(result.stage_seconds)
    finally:  # the throwaway namespace goes, whatever happened
        stale = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for start in range(0, len(stale), 1000):
            client.unlink(*stale[start : start + 1000])


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
    from training.neighbours import search

    for knob, values in config.sweeps:
        for value in values:
            knobs: dict[str, Any] = config.knobs | {knob: value}
            start = time.perf_counter()
            again = search(vectors.sparse, ours.shape[1], vectors.dense, vectors.weight,
                           method="pruned",
                           allowed=allowed, n_jobs=config.n_jobs, **knobs)[0][sample]  # fmt: skip
            took = time.perf_counter() - start
            result["sweep"].append(
                {knob: value, "seconds": took,
                 "recall@10": recall(10, again), "recall@k": recall(config.k, again)}
            )  # fmt: skip
    return result


def run(config: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate or reuse the corpus, run the path, measure quality; returns every figure."""
    figures: dict[str, Any] = {"machine": machine(), "config": asdict(config)}
    path, generated = ensure_corpus(config.articles, config.corpus)
    figures["corpus"] = str(path)
    probe = Probe(config)
    start = time.perf_counter()
    with TreeRssSampler() as sampled:  # workers' memory counts too
        stages = run_path(config, path, probe)
    total = time.perf_counter() - start
    if "neighbours" not in " ".join(probe.seconds) or "found" not in probe.captured:
        raise RuntimeError("the training path no longer calls related.top_candidates: re-wire")
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


def table(figures: dict[str, Any]) -> str:
    """The report printed at the end of a run."""
    cfg, q, m = figures["config"], figures["quality"], figures["machine"]
    lines = [
        f"bench related: {figures['articles']:,} articles ({figures['corpus']}), k={cfg['k']}, "
        f"method {cfg['method']} {cfg['knobs'] or '(default knobs)'}, {cfg['n_jobs']} threads",
        f"machine: {m['cores']} cores {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}, "
        f"numpy {m['numpy']}, scipy {m['scipy']}; load {m['load_before']} before, "
        f"{figures['load_after']} after",
        f"{'stage':<48}{'seconds':>10}",
    ]
    for name, seconds in figures["stages"].items():
        lines.append(f"  {name:<46}{'reused' if seconds is None else f'{seconds:.1f}':>10}")
    lines += [
        f"  {'end to end (all but generate)':<46}{figures['end_to_end_seconds']:>10.1f}",
        f"peak RSS {figures['peak_rss_mb']:,.0f} MB (this process, exact); with its worker "
        f"processes (PSS, sampled every 0.5-6 s): {figures.get('peak_tree_rss_mb', 0):,.0f} MB",
        f"quality on {q['sample']:,} sampled queries, exact = sklearn brute cosine, same vectors:",
        f"  recall@10 {q['recall@10']:.4f}   recall@{cfg['k']} {q['recall@k']:.4f}   "
        f"P@10 (same section) exact {q['p@10_exact']:.4f} ours {q['p@10_ours']:.4f}",
        f"sklearn NearestNeighbors(metric=cosine, algorithm=brute): {q['sample']:,} queries in "
        f"{q['sklearn_seconds_sample']:.1f} s -> {q['sklearn_seconds_extrapolated']:,.1f} s for "
        f"all {figures['articles']:,} (extrapolated)",
        f"speedup: {figures['speedup']:.1f}x (sklearn extrapolated / our neighbours stage "
        f"{figures['neighbours_seconds']:.1f} s)",
    ]
    for row in q["sweep"]:
        lines.append("  sweep " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Time vs N (ours and sklearn extrapolated) and recall vs each swept knob, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    if runs:
        sized = sorted(runs, key=lambda r: int(r["articles"]))
        sizes = [r["articles"] for r in sized]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(sizes, [r["neighbours_seconds"] for r in sized], "o-", label="ours (pruned)")
        brute = [r["quality"]["sklearn_seconds_extrapolated"] for r in sized]
        ax.loglog(sizes, brute, "s--", label="sklearn brute cosine (extrapolated)")
        ax.set(xlabel="articles", ylabel="seconds, top-k of every article")
        charts.append((fig, ax, "related-time-vs-n.png"))
    for figures in runs:
        rows = figures["quality"]["sweep"]
        for knob in dict.fromkeys(next(iter(row)) for row in rows):  # each knob once, in order
            picked = [row for row in rows if knob in row]
            fig, ax = plt.subplots(figsize=(6, 4))
            values = [row[knob] for row in picked]
            for metric, style in (("recall@10", "o-"), ("recall@k", "s-")):
                ax.plot(values, [row[metric] for row in picked], style, label=metric)
            for row in picked:  # what each setting cost
                ax.annotate(f"{row['seconds']:.0f} s", (row[knob], row["recall@10"]), fontsize=7)
            ax.set(xlabel=knob, ylabel="recall vs exact", ylim=(0, 1.02),
                   title=f"{figures['articles']:,} articles")  # fmt: skip
            charts.append((fig, ax, f"related-recall-vs-{knob}.png"))
    out_dir.mkdir(parents=True, exist_ok=True)
    for fig, ax, name in charts:
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
    return [out_dir / name for _, _, name in charts]


def _knob(text: str) -> tuple[str, list[int]]:
    name, _, values = text.partition("=")
    if not values:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,VALUE...], got {text!r}")
    return name.replace("-", "_"), [int(v) for v in values.split(",")]


def add_commands(benches: Any) -> dict[str, Handler]:
    """Register `newsrec bench related`; returns its handler by name."""
    p = benches.add_parser("related", help="related-articles search: time per stage, recall")
    p.add_argument("--articles", type=int, help="generate (or reuse) a corpus of N articles")
    p.add_argument("--k", type=int, default=50, help="related articles per article (top_k)")
    p.add_argument("--sample", type=int, default=2000, help="queries checked against exact")
    p.add_argument("--n-jobs", type=int, default=2, help="threads for the searches")
    p.add_argument("--corpus", type=Path, help="corpus folder (default .newsrec/bench/articles-N)")
    p.add_argument("--redis-url", help="Redis for the publish stage (default as `newsrec train`)")
    p.add_argument("--no-publish", action="store_true", help="stop after the related stage")
    p.add_argument("--method", default="pruned", choices=["auto", "exact", "pruned"])
    p.add_argument("--knob", type=_knob, action="append", default=[], metavar="NAME=VALUE",
                   help="a pruned-search knob (training.neighbours.PrunedParams)")  # fmt: skip
    p.add_argument("--sweep", type=_knob, action="append", default=[], metavar="NAME=V1,V2,...",
                   help="search again with each value of one knob (for a plot)")  # fmt: skip
    p.add_argument("--progress", action="store_true", help="progress bars even without a tty")
    p.add_argument("--json", type=Path, help="also write every figure here")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write PNG plots here")
    p.add_argument("--runs", type=Path, nargs="*", default=[],
                   help="earlier --json files to plot (with this run, if any)")  # fmt: skip
    return {"related": cmd_bench_related}


def cmd_bench_related(args: argparse.Namespace) -> int:
    """Handler of `newsrec bench related`."""
    runs = [json.loads(path.read_text()) for path in args.runs]
    if args.articles is None and args.corpus is None and not runs:
        raise ValueError("give --articles N (or --corpus DIR, or --runs FILE... to plot)")
    if args.articles is not None or args.corpus is not None:
        config = BenchConfig(
            articles=args.articles or 0, k=args.k, sample=args.sample, n_jobs=args.n_jobs,
            corpus=args.corpus, redis_url=args.redis_url, publish=not args.no_publish,
            method=args.method, knobs={name: values[0] for name, values in args.knob},
            sweeps=tuple((name, tuple(values)) for name, values in args.sweep),
            progress=args.progress or sys.stderr.isatty(),
        )  # fmt: skip
        figures = run(config)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str))
        runs.append(figures)
    if args.plot:
        for path in plot(runs, args.plot):
            print(f"wrote {path}")
    return 0
