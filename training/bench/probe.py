"""Stand-ins for the training path's search functions that time and record each call, swapped
into training/related/ while `newsrec bench related` runs the real training path."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from training import compute
from training.bench.config import BenchConfig
from training.memory import peak_rss_mb, tree_rss_mb


@dataclass
class Probe:
    """Times the training path's stages and keeps what the quality check needs."""

    config: BenchConfig
    seconds: dict[str, float] = field(default_factory=dict)
    captured: dict[str, Any] = field(default_factory=dict)
    worker_peaks: dict[str, list[float]] = field(default_factory=dict)
    """On a dask cluster: each worker's peak resident MB during each stage."""
    worker_starts: dict[str, list[float]] = field(default_factory=dict)
    """On a dask cluster: each worker's resident MB when each stage began."""
    worker_max: dict[str, float] = field(default_factory=dict)
    """Each worker's highest peak read so far (a stage's start resets the workers' peaks)."""

    def note_peaks(self, peaks: dict[str, float]) -> dict[str, float]:
        """Keep the highest of each worker's peaks; returns `peaks`."""
        for address, mb in peaks.items():
            self.worker_max[address] = max(mb, self.worker_max.get(address, 0.0))
        return peaks

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the block's time to stage `name`, and say so at once (with the dask workers'
        peaks in the stage, on a cluster)."""
        client = compute.current_client()
        if client is not None:
            self.note_peaks(compute.worker_peaks_mb(client))
            began = compute.reset_worker_peaks(client).values()
            self.worker_starts[name] = sorted(round(v) for v in began)
        start = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + took
            if client is not None:
                peaks = sorted(self.note_peaks(compute.worker_peaks_mb(client)).values())
                self.worker_peaks[name] = [round(v) for v in peaks]
                print(f"[bench] {name}: worker peaks {self.worker_peaks[name]} MB (from "
                      f"{self.worker_starts[name]} MB at its start)",
                      file=sys.stderr, flush=True)  # fmt: skip
            # As it happens, so a run that dies (out of memory, say) still tells how far it got.
            print(f"[bench] {name}: {took:.1f} s, peak RSS {peak_rss_mb():,.0f} MB, "
                  f"RSS now (with workers) {tree_rss_mb():,.0f} MB",
                  file=sys.stderr, flush=True)  # fmt: skip

    def feedback_seconds(self) -> float:
        """Time spent in the LSA stage's feedback-neighbour searches."""
        return sum(v for k, v in self.seconds.items() if k.startswith("LSA feedback"))

    def neighbours(
        self, vectors: Any, k: int, allowed: Any = None, recency: Any = None,
        progress: bool = False, **passed: Any,
    ) -> Any:  # fmt: skip
        """training.related.model.neighbours, timed, with the bench's method and knobs."""
        from training.related.lists import Neighbours
        from training.search.neighbours import search

        if recency is not None:  # recency rules need the exact search: timed as it is
            with self.timed("neighbours (exact: recency rules on)"):
                return self._saved["neighbours"](vectors, k, allowed, recency, progress)
        width = max(0, min(k, len(vectors) - 1))
        stage = f"neighbours (k={width})"
        with self.timed(stage):
            found = search(vectors.sparse, width, vectors.dense, vectors.weight,
                           method=self.config.method, allowed=allowed, n_jobs=self.config.n_jobs,
                           progress=progress, **{**passed, **self.config.knobs})  # fmt: skip
        self.captured.update(vectors=vectors, allowed=allowed, found=found, stage=stage)
        return Neighbours(*found)

    def feedback_search(self, matrix: Any, k: int, progress: bool = False, **passed: Any) -> Any:
        """The LSA stage's feedback-neighbour search, timed."""
        from training.search.neighbours import search

        with self.timed(f"LSA feedback neighbours (k={k})"):
            return search(matrix, k, method=self.config.method, n_jobs=self.config.n_jobs,
                          progress=progress, **{**passed, **self.config.knobs})  # fmt: skip

    def duplicate_pairs(
        self, matrix: Any, threshold: float, progress: bool = False, shards: int = 1
    ) -> Any:
        """The near-duplicate pair search, timed."""
        from training.search.pairs import pairs_above

        with self.timed(f"duplicates: search (>= {threshold})"):
            return pairs_above(matrix, threshold, self.config.n_jobs, progress, shards=shards)

    def vectorise(self, articles: Any, *args: Any, **kwargs: Any) -> Any:
        """Vectorising, timed; remembers each article's main section."""
        self.captured["sections"] = [a.sections[0] if a.sections else "" for a in articles]
        with self.timed("vectorise: TF-IDF and duplicate counts"):
            return self._saved["vectorise"](articles, *args, **kwargs)

    def fit_lsa(self, matrix: Any, params: Any, progress: bool = False) -> Any:
        """The LSA fit, timed without the feedback search inside it (it has its own row)."""
        nested = self.feedback_seconds()
        with self.timed("vectorise: LSA (feedback neighbours apart)"):
            fitted = self._saved["fit_lsa"](matrix, params, progress)
        self.seconds["vectorise: LSA (feedback neighbours apart)"] -= (
            self.feedback_seconds() - nested
        )
        return fitted

    def fit_embedding_part(self, matrix: Any, raw: Any, params: Any, progress: bool = False
                           ) -> Any:  # fmt: skip
        """The embedding part (its feedback search and the final rows), timed."""
        with self.timed(f"embedding part (feedback search, k={params.embedding_prf_neighbours})"):
            return self._saved["fit_embedding_part"](matrix, raw, params, progress)

    def duplicate_vectors_of(self, counts: Any) -> Any:
        """Weighting the duplicate counts, timed."""
        with self.timed("duplicates: vectors"):
            return self._saved["duplicate_vectors_of"](counts)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The probes swapped into training.related.model (and lsa's search) for the block."""
        from training.related import lsa, model

        swaps = [
            (model, name)
            for name in (
                "neighbours",
                "duplicate_pairs",
                "vectorise",
                "fit_lsa",
                "fit_embedding_part",
                "duplicate_vectors_of",
            )
        ]
        swaps.append((lsa, "search"))  # fmt: skip
        probes = {"search": self.feedback_search}
        self._saved = {name: getattr(module, name) for module, name in swaps}
        for module, name in swaps:
            setattr(module, name, probes.get(name) or getattr(self, name))
        try:
            yield
        finally:
            for module, name in swaps:
                setattr(module, name, self._saved[name])
