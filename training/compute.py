"""Where the training job's heavy stages run: on this machine (threads for the neighbour
searches, spawned processes for vectorising) or, inside `on_cluster(scheduler)`, on a
dask.distributed cluster (NEWSREC_DASK_SCHEDULER or `newsrec train --dask-scheduler`).

A stage is written once, whatever runs it: a module-level task function, the large inputs every
task reads handed to `Pool.share` once, and `Pool.map` over small per-task arguments (row ranges,
one chunk's texts, one block's slices). What `share` does with a value:
  - local threads: nothing (the threads read the caller's arrays);
  - local processes: pickled once to a temporary file that each process loads once;
  - a cluster: scattered once to every worker (client.scatter(broadcast=True)); tasks name it,
    so it is never shipped per task, and it is released when the stage's pool closes.
The tasks are the same functions either way, so the lists are the same either way.

A stage that cuts its data into parts (the sharded search) keeps each part where its tasks run:
`Pool.place(fn, args, where)` builds fn(*args) on worker `where` mod `Pool.places` and keeps it
there, and `map(..., where=...)` sends each task to its part's worker; locally there is one
place, this process.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures as cf
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Task = tuple[Any, ...]

_client: ContextVar[Any] = ContextVar("newsrec_dask_client", default=None)
"""The distributed.Client of the enclosing on_cluster block, or None (run locally)."""

SCATTER_TASK_BYTES = 1 << 20
"""A per-task argument larger than this goes to a worker by scatter, not inside the task
(dask warns about, and the scheduler relays, large task graphs)."""


@dataclass(frozen=True)
class Stored:
    """A shared value as a pickle file that each local worker process loads once."""

    path: str


_loaded: dict[str, Any] = {}
"""A local worker process's shared values, by file (loaded on first use)."""


def _resolve(value: Any) -> Any:
    if not isinstance(value, Stored):
        return value
    if value.path not in _loaded:
        with open(value.path, "rb") as file:
            _loaded[value.path] = pickle.load(file)  # our own file, written by this run
    return _loaded[value.path]


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """A task, where it runs: shared values stored as files are loaded (once) first."""
    return fn(*map(_resolve, args))


class Pool:
    """An executor to map a stage's tasks over, and how its workers get shared inputs."""

    def __init__(self, executor: cf.Executor, workers: int) -> None:
        self.executor, self.workers = executor, workers

    def share(self, value: Any) -> Any:
        """A stand-in for `value` that tasks receive as the value itself (see module doc)."""
        return value

    @property
    def places(self) -> int:
        """Workers that can each keep a part of a stage's data (1: this process)."""
        return 1

    def place(self, fn: Callable[..., Any], args: Task, where: int) -> Any:
        """A stand-in for fn(*args), computed and kept at place `where` (mod `places`): tasks
        sent there receive the value itself."""
        return _call(fn, *args)

    def _submit(self, fn: Callable[..., Any], args: Task, where: int | None) -> cf.Future[Any]:
        return self.executor.submit(_call, fn, *args)

    def map(
        self,
        fn: Callable[..., Any],
        shared: Sequence[Any],
        tasks: Iterable[Task],
        *,
        ordered: bool = True,
        ahead: int = 2,
        where: Callable[[Task], int] | None = None,
    ) -> Iterator[tuple[Task, Any]]:
        """(task, fn(*shared, *task)) for each task: in task order, or as tasks finish. At
        most `ahead` tasks per worker are in flight, so tasks made lazily (a chunk's texts) are
        made only as workers get to them. `where(task)`: the place a task must run at."""
        tasks = iter(tasks)
        pending: dict[cf.Future[Any], Task] = {}  # in submission order

        def submit(count: int) -> None:
            for task in itertools.islice(tasks, count):
                at = None if where is None else where(task)
                pending[self._submit(fn, (*shared, *task), at)] = task

        submit(ahead * self.workers)
        while pending:
            if ordered:
                future = next(iter(pending))
            else:
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                future = next(f for f in pending if f in done)
            task = pending.pop(future)
            try:
                result = future.result()
            except BrokenProcessPool as error:
                raise RuntimeError(
                    "a training worker process died; a script that trains must start from an "
                    "`if __name__ == '__main__':` block (worker processes are spawned and "
                    "import the main module)"
                ) from error
            submit(1)
            yield task, result

    def close(self) -> None:
        """Let go of the workers (local pools) or of the shared values (a cluster)."""
        self.executor.shutdown(cancel_futures=True)


class _ProcessPool(Pool):
    """Spawned local processes; shared values reach them as files in a temporary folder."""

    def __init__(self, n_jobs: int) -> None:
        # Spawned, not forked: a forked worker keeps every page the parent had when it forked.
        context = multiprocessing.get_context("spawn")
        super().__init__(cf.ProcessPoolExecutor(n_jobs, context), n_jobs)
        self._folder = tempfile.TemporaryDirectory(prefix="newsrec-shared-")
        self._count = 0

    def share(self, value: Any) -> Any:
        if value is None:
            return None
        self._count += 1
        path = Path(self._folder.name) / f"shared-{self._count}.pickle"
        with path.open("wb") as file:
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
        return Stored(str(path))

    def close(self) -> None:
        super().close()
        self._folder.cleanup()


class _ClusterPool(Pool):
    """The dask.distributed cluster of a Client: shared values are broadcast to every worker."""

    def __init__(self, client: Any) -> None:
        threads = sum(client.nthreads().values()) or 1
        # pure=False: tasks are never deduplicated by hashing their (large) arguments.
        super().__init__(client.get_executor(pure=False), threads)
        self.client = client
        self._scattered: list[Any] = []
        self._workers = sorted(client.scheduler_info()["workers"])
        self._pinned: dict[str, cf.Executor] = {}

    def _scatter(self, value: Any, broadcast: bool, worker: str | None = None) -> Any:
        # A one-item list: scatter would split a list or tuple into one future per item.
        workers = None if worker is None else [worker]
        future = self.client.scatter([value], broadcast=broadcast, workers=workers, hash=False)[0]
        self._scattered.append(future)
        return future

    def share(self, value: Any) -> Any:
        return None if value is None else self._scatter(value, broadcast=True)

    @property
    def places(self) -> int:
        return max(1, len(self._workers))

    def _worker(self, where: int) -> str:
        return str(self._workers[where % len(self._workers)])

    def _sent(self, args: Task, worker: str | None) -> list[Any]:
        """Arguments as they go to a task: large ones scattered first (to `worker` if given)."""
        from dask.sizeof import sizeof

        big = [not _is_future(a) and sizeof(a) > SCATTER_TASK_BYTES for a in args]
        return [self._scatter(a, False, worker) if b else a for a, b in zip(args, big, strict=True)]

    def place(self, fn: Callable[..., Any], args: Task, where: int) -> Any:
        worker = self._worker(where)
        future = self.client.submit(_call, fn, *self._sent(args, worker), workers=[worker],
                                    allow_other_workers=False, pure=False)  # fmt: skip
        self._scattered.append(future)
        return future

    def _submit(self, fn: Callable[..., Any], args: Task, where: int | None) -> cf.Future[Any]:
        if where is None:
            return self.executor.submit(_call, fn, *self._sent(args, None))
        worker = self._worker(where)
        if worker not in self._pinned:
            self._pinned[worker] = self.client.get_executor(
                pure=False, workers=[worker], allow_other_workers=False
            )
        return self._pinned[worker].submit(_call, fn, *self._sent(args, worker))

    def close(self) -> None:
        for executor in (self.executor, *self._pinned.values()):
            executor.shutdown(wait=False)  # cancels what is still running (after an error)
        for future in self._scattered:
            future.release()
        self._scattered.clear()


def _is_future(value: Any) -> bool:
    from distributed import Future

    return isinstance(value, Future)


def on_a_cluster() -> bool:
    """Whether heavy stages run on a dask cluster here (inside on_cluster with a scheduler)."""
    return _client.get() is not None


@contextmanager
def pool(kind: str, n_jobs: int) -> Iterator[Pool]:
    """The pool a stage maps its tasks over: the cluster's inside on_cluster, else `n_jobs`
    local "threads" (the searches: compiled kernels release the GIL) or spawned "processes"
    (vectorising: tokenising is Python)."""
    client = _client.get()
    chosen: Pool
    if client is not None:
        chosen = _ClusterPool(client)
    elif kind == "threads":
        chosen = Pool(cf.ThreadPoolExecutor(max(1, n_jobs)), max(1, n_jobs))
    elif kind == "processes":
        chosen = _ProcessPool(max(1, n_jobs))
    else:
        raise ValueError(f"pool kind must be threads or processes, not {kind!r}")
    try:
        yield chosen
    finally:
        chosen.close()


def dask_client(scheduler: str) -> Any:
    """A distributed.Client of the scheduler at `scheduler` (tcp://host:port), or a clear
    error naming the extra that installs dask."""
    try:
        from distributed import Client
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"a dask scheduler is set ({scheduler}) but dask is not installed: "
            "pip install 'newsrec[dask]'",
            name=error.name,
        ) from error
    return Client(scheduler)


@contextmanager
def on_cluster(scheduler: str | None, client: Any = None) -> Iterator[Any]:
    """Heavy stages inside the block run on the cluster at `scheduler` (or of `client`), or
    locally when both are None; yields the Client (or None)."""
    if client is None and not scheduler:
        yield None
        return
    own = client is None
    client = dask_client(str(scheduler)) if own else client
    token = _client.set(client)
    try:
        yield client
    finally:
        _client.reset(token)
        if own:
            client.close()


def _own_peak_mb() -> float:
    """This process's peak resident MB since it was exec'd (VmHWM: unlike ru_maxrss, it never
    counts the image of a parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _reset_own_peak() -> float:
    """Start this process's peak resident size again from its size now (Linux clear_refs);
    returns that size."""
    Path("/proc/self/clear_refs").write_text("5")
    return _own_peak_mb()


def worker_peaks_mb(client: Any) -> dict[str, float]:
    """Each dask worker's peak resident MB, by worker address."""
    return {str(k): float(v) for k, v in client.run(_own_peak_mb).items()}


def reset_worker_peaks(client: Any) -> dict[str, float]:
    """Each worker's peak starts again from its resident MB now (returned, by address): a
    stage's own peak is then read at its end."""
    return {str(k): float(v) for k, v in client.run(_reset_own_peak).items()}


def current_client() -> Any:
    """The distributed.Client heavy stages run on here, or None."""
    return _client.get()
