"""Process memory: hand freed heap back to the OS, and measure a process tree's resident size.

A training run frees gigabytes of short-lived Python objects (article bodies, token lists);
glibc keeps such freed heap mapped, so later numpy arrays would grow the process instead of
reusing it. Worker processes are part of a run's footprint, so benchmarks sum their RSS too.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import threading
import time
from contextlib import suppress
from pathlib import Path


def trim_heap() -> None:
    """Return freed heap pages to the OS (glibc's malloc_trim); a no-op elsewhere."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def release_memory() -> None:
    """Collect garbage, then trim_heap."""
    gc.collect()
    trim_heap()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pss_mb(pid: int) -> float:
    """Proportional set size: pages shared with a forked parent count once across the tree
    (summing plain RSS would count them in every worker)."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_rss_mb(pid: int | None = None) -> float:
    """Resident MB of a process and all its descendants, shared pages counted once (Linux
    /proc; 0 elsewhere)."""
    todo, total = [pid or os.getpid()], 0.0
    while todo:
        current = todo.pop()
        total += _pss_mb(current)
        todo += _children(current)
    return total


class TreeRssSampler:
    """Samples tree_rss_mb() on a thread, busy at most a tenth of the time; `peak` is the
    largest sample (MB)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.peak = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            self.peak = max(self.peak, tree_rss_mb())
            # The kernel walks every page table for PSS (0.3 s for a 4.5 GB process): sampling
            # at most a tenth of the time keeps the sampler from slowing what it measures.
            self._stop.wait(max(self.interval, 9 * (time.perf_counter() - start)))

    def __enter__(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
