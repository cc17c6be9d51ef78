"""Shared fixtures: a real Redis (NEWSREC_REDIS_URL, else an embedded server), an isolated key
namespace per test, and a real gRPC server on an ephemeral port."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from recommender.config import Settings, load_settings
from recommender.embedded import ensure_embedded, stop_embedded
from recommender.encoder import CACHE_ENV
from recommender.store.keys import Keys
from tests.helpers import ServerThread
from training.related.embeddings import STORE_ENV


@pytest.fixture(scope="session", autouse=True)
def embedding_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedding store for the whole session (its subprocesses inherit it): each corpus
    is encoded once, as a site's nightly runs would."""
    store = Path(os.environ.get(STORE_ENV) or _shared_dir(tmp_path_factory, "embeddings"))
    exports = os.environ.get(CACHE_ENV) or str(tmp_path_factory.mktemp("encoder-cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(STORE_ENV, str(store))
        patch.setenv(CACHE_ENV, exports)  # the model is exported to ONNX once per session
        yield store


def _shared_dir(factory: pytest.TempPathFactory, name: str) -> Path:
    """A temporary folder every pytest-xdist worker of this run shares (BBC is encoded by the
    first test that needs it, not once per worker); the run's own folder without xdist."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return factory.mktemp(name)
    shared = factory.getbasetemp().parent / name
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """NEWSREC_REDIS_URL when set; else an embedded Redis started for this test session."""
    configured = load_settings().redis_url
    if configured:
        yield configured
        return
    data_dir = tmp_path_factory.mktemp("embedded-redis")
    url = ensure_embedded(data_dir)
    yield url
    stop_embedded(data_dir)


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    stale = list(client.scan_iter(match=f"{name}:*", count=1000))
    for start in range(0, len(stale), 1000):
        client.unlink(*stale[start : start + 1000])
    client.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def keys(namespace: str) -> Keys:
    return Keys(namespace)


@pytest.fixture
def settings(redis_url: str, namespace: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test Redis and namespace, with a private model folder."""
    return replace(
        Settings(),
        redis_url=redis_url,
        namespace=namespace,
        port=0,
        model_dir=tmp_path / "models",
        data_dir=tmp_path / "data",
        writer_dir=str(tmp_path / "writer"),
        pointer_cache_seconds=0.0,
    )


@pytest.fixture
def server(settings: Settings) -> Iterator[ServerThread]:
    running = ServerThread(settings)
    yield running
    running.stop()
