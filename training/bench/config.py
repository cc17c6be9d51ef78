"""What one `newsrec bench related` run measures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    embedding_weight: float | None = None
    """The blend's embedding share (None: the shipped default; 0: no encoder at all)."""
    dask_scheduler: str | None = None
    """Run the heavy stages on this dask.distributed scheduler (training/compute.py)."""
    dask_workers: int = 0
    """Or start a LocalCluster of this many one-thread worker processes for the run (0: none)."""
    shards: int = 1
    """RelatedParams.search_shards: the searches' corpus shards (one per dask worker to split
    the rows between them)."""
