"""Publishing is atomic: readers see one whole version, failures and kills leave the old one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import make_articles, write_corpus
from tests.helpers import ServerThread, write_jsonl
from training import publish as pub
from training.pipeline import TrainConfig, TrainResult, train
from training.sources.common import InputError


def run_train(articles: Path, settings: Settings, client: redis.Redis, **kw: object) -> TrainResult:
    config = TrainConfig(articles=articles, model_dir=settings.model_dir, progress=False, **kw)  # type: ignore[arg-type]
    return train(config, client, Keys(settings.namespace), log=lambda _m: None)


@pytest.mark.slow
def test_versions_rollback_and_retention(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    articles, _ = write_corpus(tmp_path)
    versions = [run_train(articles, settings, client, keep_versions=3).version for _ in range(4)]
    assert pub.live_version(client, keys) == versions[-1]
    assert pub.published_versions(client, keys) == versions[1:]  # oldest pruned
    assert not list(client.scan_iter(match=keys.version_prefix(versions[0]) + "*"))
    assert sorted(p.name for p in settings.model_dir.iterdir()) == versions[1:]
    assert pub.rollback(client, keys) == versions[2]
    assert pub.live_version(client, keys) == versions[2]
    assert pub.rollback(client, keys, to=versions[3]) == versions[3]
    with pytest.raises(ValueError, match="not published"):
        pub.rollback(client, keys, to=versions[0])
    manifest = json.loads((settings.model_dir / versions[3] / "manifest.json").read_text())
    assert manifest["version"] == versions[3]
    assert len(manifest["inputs"]["articles"]["sha256"]) == 64
    assert {
        "vectorizer.json",
        "neighbours.npz",
        "vectors.npz",
        "popular.json",
        "manifest.json",
    } <= {p.name for p in (settings.model_dir / versions[3]).iterdir()}
    # The vectors blob goes to Redis from the model folder's vectors.npz, chunk by chunk.
    blob = (settings.model_dir / versions[3] / "vectors.npz").read_bytes()
    chunks = [
        bytes(client.get(keys.vectors_chunk(versions[3], n)) or b"")  # type: ignore[arg-type]
        for n in range(manifest["vector_chunks"])
    ]
    assert manifest["vector_chunks"] >= 1 and b"".join(chunks) == blob


def test_bad_input_publishes_nothing(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys
) -> None:
    articles, _ = write_corpus(tmp_path)
    good = run_train(articles, settings, client).version
    broken = tmp_path / "broken.jsonl"
    broken.write_text(articles.read_text() + "{not json\n")
    with pytest.raises(InputError, match=r"broken\.jsonl:41"):
        run_train(broken, settings, client)
    assert pub.live_version(client, keys) == good
    assert pub.published_versions(client, keys) == [good]
    assert client.zcard(keys.pending) == 0


def test_stale_pending_versions_are_pruned(client: redis.Redis, keys: Keys) -> None:
    client.zadd(keys.pending, {"19990101T000000000Z-dead00": 1.0})
    client.set(keys.related("19990101T000000000Z-dead00", "a"), b"[]")
    removed = pub.prune(client, keys, keep=3)
    assert removed == ["19990101T000000000Z-dead00"]
    assert not client.exists(keys.related("19990101T000000000Z-dead00", "a"))


@pytest.mark.slow
def test_reader_polling_during_publish_sees_one_whole_version(
    tmp_path: Path, settings: Settings, client: redis.Redis, server: ServerThread
) -> None:
    rows = make_articles(per_topic=150)
    v1 = run_train(write_jsonl(tmp_path / "v1.jsonl", rows), settings, client).version
    for row in rows:
        row["title"] = f"Second {row['title']}"
    seen: dict[str, int] = {}
    mixed: list[str] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            reply = server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-07", limit=20))
            second = {i.title.startswith("Second ") for i in reply.items}
            expected = {reply.model_version != v1}
            if second != expected:
                mixed.append(reply.model_version)
            seen[reply.model_version] = seen.get(reply.model_version, 0) + 1

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        v2 = run_train(
            write_jsonl(tmp_path / "v2.jsonl", rows), settings, client, publish_batch=5
        ).version
        time.sleep(0.2)
    finally:
        done.set()
        reader.join()
    assert not mixed
    assert seen.get(v1, 0) > 0 and seen.get(v2, 0) > 0  # it read both, before and after


@pytest.mark.slow
def test_training_killed_mid_publish_leaves_old_version_live(
    tmp_path: Path, settings: Settings, client: redis.Redis, keys: Keys, server: ServerThread
) -> None:
    small, _ = write_corpus(tmp_path)
    old = run_train(small, settings, client).version
    big = write_jsonl(tmp_path / "big.jsonl", make_articles(per_topic=500))
    env = {
        **os.environ,
        "NEWSREC_REDIS_URL": settings.redis_url,
        "NEWSREC_NAMESPACE": settings.namespace,
        "NEWSREC_PUBLISH_BATCH": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsrec.cli",
            "train",
            "--articles",
            str(big),
            "--quiet",
            "--model-dir",
            str(tmp_path / "models2"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while client.zcard(keys.pending) == 0:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (pending,) = pub.pending_versions(client, keys)
    assert list(client.scan_iter(match=keys.version_prefix(pending) + "*", count=1000))
    assert pub.live_version(client, keys) == old
    reply = server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01"))
    assert reply.model_version == old and reply.items
    # the next run succeeds and, once the killed run's leftovers are stale, prunes them
    assert run_train(small, settings, client).version != old
    assert pending in pub.prune(client, keys, keep=3, now=time.time() + pub.STALE_PENDING_SECONDS)
    assert not list(client.scan_iter(match=keys.version_prefix(pending) + "*", count=1000))


def test_model_dir_is_never_half_written(
    tmp_path: Path,
    settings: Settings,
    client: redis.Redis,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    articles, _ = write_corpus(tmp_path)
    live = run_train(articles, settings, client).version

    class DiskFillsUp:
        """numpy as publish uses it, but the disk fills up while neighbours.npz is written."""

        def __getattr__(self, name: str) -> object:
            return getattr(np, name)

        @staticmethod
        def savez(path: Path, **arrays: object) -> None:
            Path(path).write_bytes(b"PK\x03\x04 half of an archive")
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(pub, "np", DiskFillsUp())
    with pytest.raises(OSError, match="No space left"):
        run_train(articles, settings, client)
    monkeypatch.undo()
    assert [p.name for p in settings.model_dir.iterdir()] == [live]  # no half folder, no partial
    assert pub.live_version(client, keys) == live
    assert pub.published_versions(client, keys) == [live]
    # Every array of a model folder loads without pickle (an object array would need it).
    for name in ("neighbours.npz", "vectors.npz"):
        with np.load(settings.model_dir / live / name, allow_pickle=False) as saved:
            assert all(saved[key].dtype != object for key in saved.files)
