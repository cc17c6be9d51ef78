"""Training's heavy stages on a real dask.distributed cluster (a LocalCluster of two worker
processes, one thread each) give what the local run gives: the same vectors, neighbours,
near-duplicate pairs and published Related lists, on the BBC data and on a generated corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from recommender.config import Settings
from recommender.domain import Article
from recommender.store.keys import Keys
from tests.helpers import newsrec_env, shared_file
from training import compute
from training.pipeline import TrainConfig, train
from training.related.duplicates import duplicate_vectors_of
from training.related.model import article_vectors, build_related
from training.related.params import RelatedParams, make_vectorizer
from training.related.vectorise import Vectorised, vectorise
from training.search.neighbours import search
from training.search.pairs import pairs_above
from training.sources.articles import read_articles

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

PARAMS = RelatedParams(embedding_weight=0.0)
"""The encoder is not what these tests check (it runs on the client either way)."""


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A real LocalCluster: two worker processes, one thread each."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:  # fmt: skip
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Article]:
    """3,000 articles of the demo corpus (sections, near-duplicate republications)."""
    from training.demo.generate import DemoSpec, generate

    folder = tmp_path_factory.mktemp("generated")
    generate(folder, DemoSpec(articles=3000, clicks_per_article=0))
    return read_articles(folder / "articles.jsonl", "jsonl", 0).articles


def _vectorised(articles: list[Article], **options: Any) -> Vectorised:
    return vectorise(list(articles), make_vectorizer(PARAMS, len(articles)), 1, **options)


def _same_neighbours(local: tuple[np.ndarray, np.ndarray], far: tuple[np.ndarray, np.ndarray]
                     ) -> None:  # fmt: skip
    np.testing.assert_array_equal(far[0], local[0])
    np.testing.assert_allclose(far[1], local[1], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_chunked_vectorising_on_the_cluster_matches_local(
    scheduler: str, generated: list[Article]
) -> None:
    # 500-article chunks over a vocabulary fitted on 1,000 sampled articles: both thresholds
    # of vectorise.py crossed, 6 chunks on the workers.
    local = _vectorised(generated, n_jobs=2, chunk_rows=500, fit_rows=1000)
    with compute.on_cluster(scheduler):
        assert compute.on_a_cluster()
        far = _vectorised(generated, n_jobs=2, chunk_rows=500, fit_rows=1000)
    assert not compute.on_a_cluster()
    for name in ("tfidf", "counts"):
        a, b = getattr(local, name), getattr(far, name)
        assert a.shape == b.shape and a.nnz == b.nnz and a.nnz > 0
        np.testing.assert_array_equal(b.indptr, a.indptr)
        np.testing.assert_array_equal(b.indices, a.indices)
        np.testing.assert_allclose(b.data, a.data, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "shards"), [("exact", 1), ("pruned", 1), ("pruned", 2)])
def test_neighbour_search_on_the_cluster_matches_local(
    scheduler: str, generated: list[Article], method: str, shards: int
) -> None:
    fitted = _vectorised(generated)
    dense = np.random.default_rng(0).normal(size=(len(generated), 16)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    allowed = np.ones(len(generated), dtype=bool)
    allowed[::7] = False
    vectors = article_vectors(fitted.tfidf, None, 0.0, dense, 0.3)
    knobs: dict[str, Any] = {"block": 128, "shards": shards} if method == "pruned" else {}
    knobs |= {"method": method, "allowed": allowed}
    args = (vectors.sparse, 20, vectors.dense, vectors.weight)
    local = search(*args, **knobs)
    with (
        compute.on_cluster(scheduler) as client,
        distributed.get_task_stream(client) as stream,
    ):
        far = search(*args, **knobs)
    assert len({task["worker"] for task in stream.data}) == 2  # both workers took blocks
    _same_neighbours(local, far)
    assert (local[0][:, 0] >= 0).all()


def test_each_shard_is_kept_by_one_worker_and_its_tasks_run_there(scheduler: str) -> None:
    # What makes memory per worker fall with a sharded search: a part placed at `where` lives on
    # one worker only, and the tasks sent to `where` run on that worker.
    with (
        compute.on_cluster(scheduler) as client,
        compute.pool("threads", 1) as pool,
        distributed.get_task_stream(client) as stream,
    ):
        assert pool.places == 2
        parts = [pool.place(np.arange, (s * 10, s * 10 + 10), where=s) for s in range(2)]
        distributed.wait(parts)
        holders = client.who_has(parts)
        owners = [holders[part.key] for part in parts]
        assert all(len(owner) == 1 for owner in owners) and owners[0] != owners[1]
        tasks = [(part, s) for s, part in enumerate(parts) for _ in range(3)]  # np.take(part, s)
        got = list(pool.map(np.take, (), tasks, where=lambda task: int(task[1])))
    assert sorted(int(value) for _, value in got) == [0] * 3 + [11] * 3
    ran = [(task["worker"], task["key"]) for task in stream.data]
    assert len({worker for worker, _ in ran}) == 2
    for worker, _ in ran:  # every task (placing or using a part) ran on a part's holder
        assert (worker,) in {tuple(owner) for owner in owners}


@pytest.mark.slow
def test_near_duplicate_pairs_on_the_cluster_match_local(
    scheduler: str, generated: list[Article]
) -> None:
    counts = _vectorised(generated).counts
    assert counts is not None
    rows, _ = duplicate_vectors_of(counts)
    local = pairs_above(rows, 0.5, budget=1 << 16)  # small blocks: many tasks
    with compute.on_cluster(scheduler):
        far = pairs_above(rows, 0.5, budget=1 << 16)
        sharded = pairs_above(rows, 0.5, budget=1 << 16, shards=2)  # one shard per worker
    assert len(local) > 0
    np.testing.assert_array_equal(far, local)
    np.testing.assert_array_equal(sharded, local)


@pytest.mark.slow
def test_related_lists_on_the_cluster_match_local(scheduler: str, generated: list[Article]) -> None:
    local, _ = build_related(list(generated), PARAMS, False)
    with compute.on_cluster(scheduler):
        far, _ = build_related(list(generated), PARAMS, False)
    _same_neighbours((local.lists.indices, local.lists.scores),
                     (far.lists.indices, far.lists.scores))  # fmt: skip
    for name in ("indices", "prf_neighbours", "duplicate_pairs", "duplicate_shown"):
        np.testing.assert_array_equal(far.arrays[name], local.arrays[name])


def _trained(settings: Settings, client: redis.Redis, name: str, scheduler: str | None
             ) -> dict[str, np.ndarray]:  # fmt: skip
    config = TrainConfig(
        articles=shared_file("bbc", "articles.jsonl"), related=PARAMS, progress=False,
        model_dir=settings.model_dir / name, embedding_store=None, dask_scheduler=scheduler,
    )  # fmt: skip
    result = train(config, client, Keys(f"{settings.namespace}-{name}"), log=lambda _: None)
    with np.load(result.model_path / "neighbours.npz", allow_pickle=False) as saved:
        return {key: saved[key] for key in saved.files}


@pytest.mark.slow
def test_training_bbc_with_a_scheduler_publishes_the_same_lists(
    scheduler: str, settings: Settings, client: redis.Redis
) -> None:
    local = _trained(settings, client, "local", None)
    far = _trained(settings, client, "dask", scheduler)
    assert set(far) == set(local)
    for key, array in local.items():
        if array.dtype.kind == "f":
            np.testing.assert_allclose(far[key], array, rtol=0, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(far[key], array, err_msg=key)


@pytest.mark.slow
def test_newsrec_train_takes_the_scheduler_from_the_environment(
    scheduler: str, settings: Settings, tmp_path: Path
) -> None:
    from tests.corpus import write_corpus

    articles, _ = write_corpus(tmp_path, per_topic=10)
    params = tmp_path / "params.toml"
    params.write_text("[related]\nembedding_weight = 0.0\n")
    env = newsrec_env(settings, NEWSREC_DASK_SCHEDULER=scheduler)
    done = subprocess.run(
        [sys.executable, "-m", "newsrec.cli", "train", "--articles", str(articles), "--quiet",
         "--params", str(params)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "published" in done.stdout


def test_a_scheduler_without_dask_installed_names_the_extra(
    settings: Settings, tmp_path: Path
) -> None:
    # The interpreter is told dask is not there (None in sys.modules makes its import fail).
    blocked = "import sys; sys.modules['distributed'] = None; from newsrec.cli import main; "
    articles = tmp_path / "articles.jsonl"
    articles.write_text('{"id": "a", "title": "t", "body": "b"}\n')
    command = f"{blocked}sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", command, "train", "--articles", str(articles), "--quiet",
         "--dask-scheduler", "tcp://127.0.0.1:1"],
        env=newsrec_env(settings), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "pip install 'newsrec[dask]'" in done.stderr, done.stderr
    assert "dask extra" in done.stderr


def test_the_scheduler_setting_is_read_like_every_other() -> None:
    from recommender.config import ConfigError, load_settings

    assert load_settings(env={"NEWSREC_DASK_SCHEDULER": "tcp://10.0.0.5:8786"}).dask_scheduler \
        == "tcp://10.0.0.5:8786"  # fmt: skip
    assert load_settings(env={}).dask_scheduler == ""
    with pytest.raises(ConfigError, match="dask_scheduler"):
        load_settings(env={"NEWSREC_DASK_SCHEDULER": "tcp://host :1"})


@pytest.mark.slow
def test_bench_related_on_the_cluster_reports_each_workers_peak_per_stage(
    scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from newsrec.cli import main

    code = main(["bench", "related", "--articles", "1500", "--corpus", str(tmp_path / "corpus"),
                 "--no-publish", "--sample", "100", "--embedding-weight", "0", "--shards", "2",
                 "--dask-scheduler", scheduler, "--json", str(tmp_path / "b.json")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "2 shard(s)" in out and "in neighbours (k=60):" in out
    dask = json.loads((tmp_path / "b.json").read_text())["dask"]
    stages = dask["worker_peaks_by_stage"]
    assert len(stages["neighbours (k=60)"]) == 2  # both workers, each with its own figure
    assert min(stages["neighbours (k=60)"]) > 50  # a python process with numpy: tens of MB
    began = dask["worker_starts_by_stage"]["neighbours (k=60)"]
    assert len(began) == 2 and all(
        0 < a <= b for a, b in zip(began, sorted(stages["neighbours (k=60)"]), strict=True)
    )
    highest = max(max(mbs) for mbs in stages.values())  # the run's peak covers its stages'
    assert max(dask["worker_peak_rss_mb"].values()) >= highest - 1
