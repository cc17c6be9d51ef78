"""Publishing is atomic: readers see one whole version, failures and kills leave the old one."""

from __future__ import annotations

import json
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
from tests.helpers import ServerThread, eventually, newsrec, newsrec_env, write_jsonl
from training import modeldir
from training import publish as pub
from training.pipeline import TrainConfig, TrainResult, train
from training.related.params import RelatedParams
from training.sources.common import InputError


def run_train(articles: Path, settings: Settings, client: redis.Redis, **kw: object) -> TrainResult:
    """Train and publish; without the embedding blend (publishing is under test, and corpora
    made here would each be encoded cold)."""
    kw.setdefault("related", RelatedParams(embedding_weight=0.0))
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


def test_leftovers_of_a_killed_run_go_at_once(
    tmp_path: Path, client: redis.Redis, keys: Keys
) -> None:
    """With the lock held, a pending version is a killed run's: its keys, its folder and its
    hidden partial and scratch folders go at once; a published version's keys and folder stay."""
    dead, kept = "20990101T000000000Z-dead00", "20980101T000000000Z-live00"
    client.zadd(keys.pending, {dead: time.time()})  # fresh: no waiting for it to go stale
    client.set(keys.related(dead, "a"), b"[]")
    client.zadd(keys.versions, {kept: time.time()})
    client.set(keys.related(kept, "a"), b"[]")
    client.set(keys.pointer, kept)
    folders = [tmp_path / dead, tmp_path / f".partial-{dead}", tmp_path / f".scratch-{dead}-x1"]
    for folder in [*folders, tmp_path / kept]:
        folder.mkdir()
    assert pub.remove_leftovers(client, keys, tmp_path) == [dead]
    assert not client.exists(keys.related(dead, "a")) and client.zcard(keys.pending) == 0
    assert not any(f.exists() for f in folders)
    assert client.exists(keys.related(kept, "a")) and (tmp_path / kept).is_dir()


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
    """A run killed mid-publish leaves the old version serving; the next run deletes its
    pending keys and its unpublished folder at once, and never the folder of a version Redis
    still keeps for rollback (the killed run's folder once pushed one out of the keep-3)."""
    small, _ = write_corpus(tmp_path)
    kept = [run_train(small, settings, client).version for _ in range(3)]
    old = kept[-1]
    rows = make_articles(per_topic=500)
    big = write_jsonl(tmp_path / "big.jsonl", rows)
    env = newsrec_env(settings, NEWSREC_PUBLISH_BATCH="1", NEWSREC_LOCK_LEASE_SECONDS="2")
    # No embedding blend: what is under test is publishing, not a cold encode of 3,000 articles.
    params = tmp_path / "params.toml"
    params.write_text("[related]\nembedding_weight = 0.0\n")
    command = [sys.executable, "-m", "newsrec.cli", "train", "--articles", str(big), "--quiet",
               "--params", str(params)]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def publishing() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        pending = pub.pending_versions(client, keys)
        return bool(pending) and bool(client.exists(keys.related(pending[0], str(rows[0]["id"]))))

    assert eventually(publishing, seconds=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (pending,) = pub.pending_versions(client, keys)
    assert list(client.scan_iter(match=keys.version_prefix(pending) + "*", count=1000))
    assert (settings.model_dir / pending / "manifest.json").is_file()  # written, never published
    listing = newsrec(settings, "versions").stdout.splitlines()
    assert any(line.split()[0] == pending and "pending" in line for line in listing), listing
    assert any(line.startswith(f"* {old}") and line.endswith("live") for line in listing)
    assert pub.live_version(client, keys) == old
    reply = server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01"))
    assert reply.model_version == old and reply.items
    assert client.pttl(keys.lock) <= 2000  # the killed run's lock expires with its lease
    # the next run (waiting out that lease) deletes the killed run's leftovers at once, and
    # keeps what Redis publishes
    result = run_train(small, settings, client, wait_for_lock=30.0)
    assert result.leftovers == [pending]
    assert not list(client.scan_iter(match=keys.version_prefix(pending) + "*", count=1000))
    assert client.zcard(keys.pending) == 0
    published = pub.published_versions(client, keys)
    assert published == [kept[1], kept[2], result.version]
    assert sorted(p.name for p in settings.model_dir.iterdir()) == published  # nothing hidden
    assert pub.rollback(client, keys, to=kept[1]) == kept[1]  # the rollback target, whole
    assert (settings.model_dir / kept[1] / "records.tsv").is_file()


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

    monkeypatch.setattr(modeldir, "np", DiskFillsUp())
    with pytest.raises(OSError, match="No space left"):
        run_train(articles, settings, client)
    monkeypatch.undo()
    assert [p.name for p in settings.model_dir.iterdir()] == [live]  # no half folder, no partial
    assert pub.live_version(client, keys) == live
    assert pub.published_versions(client, keys) == [live]
    assert client.zcard(keys.pending) == 0  # the failed run cleaned up its own pending entry
    # Every array of a model folder loads without pickle (an object array would need it).
    for name in ("neighbours.npz", "vectors.npz"):
        with np.load(settings.model_dir / live / name, allow_pickle=False) as saved:
            assert all(saved[key].dtype != object for key in saved.files)
