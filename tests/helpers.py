"""Helpers the tests share (fixtures are in conftest.py): a real gRPC server in a thread, the
`newsrec` command in a subprocess, files, the public data in ../shared, and small builders."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.config import Settings
from recommender.domain import Article
from recommender.server import create_server
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from training.metrics import precision_at_k as list_precision
from training.related.params import RelatedParams, make_vectorizer
from training.related.vectorise import vectorise

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file from ../shared/data, or skip the test saying why."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (CI has ../shared beside the repo)")
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write rows as JSON lines and return the path."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


class ServerThread:
    """A real grpc.aio server on its own event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(create_server(settings), self.loop)
        self.server, self.port = future.result(timeout=30)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.RecommenderStub(self.channel)

    def stop(self) -> None:
        """Stop the server and its loop."""
        self.channel.close()
        asyncio.run_coroutine_threadsafe(self.server.stop(1), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def newsrec_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `newsrec` process on the test's Redis, namespace and models."""
    return {
        **os.environ,
        "NEWSREC_REDIS_URL": settings.redis_url,
        "NEWSREC_NAMESPACE": settings.namespace,
        "NEWSREC_MODEL_DIR": str(settings.model_dir),
        **extra,
    }


def newsrec(
    settings: Settings, *args: str, timeout: float = 120, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `newsrec` command as cron would, on the test's Redis, namespace and models."""
    return subprocess.run(
        [sys.executable, "-m", "newsrec.cli", *args],
        env=newsrec_env(settings, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def random_rows(n: int, terms: int, density: float, seed: int) -> sp.csr_matrix:
    """L2-normalised random sparse rows."""
    rows = sp.random(n, terms, density=density, random_state=seed, format="csr", dtype=np.float32)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1))).ravel()
    return sp.csr_matrix(sp.diags(1 / np.where(norms == 0, 1, norms)) @ rows, dtype=np.float32)


def as_articles(rows: list[dict[str, object]]) -> list[Article]:
    """Articles from the rows tests/corpus.py writes."""
    return [
        Article(
            id=str(r["id"]),
            title=str(r["title"]),
            body=str(r["body"]),
            sections=tuple(r["section"]),  # type: ignore[arg-type]
            tags=tuple(r["tags"]),  # type: ignore[arg-type]
        )
        for r in rows
    ]


def precision_at_k(
    lists: Mapping[str, Sequence[str]], labels: Mapping[str, set[str]], k: int = 10
) -> float:
    """Mean P@k over the labelled articles: an item hits when it shares a label."""
    scores = [
        list_precision([bool(labels.get(other, set()) & own) for other in related], k)
        for article_id, related in lists.items()
        if (own := labels.get(article_id))
    ]
    return sum(scores) / len(scores) if scores else 0.0


def fit_tfidf(
    articles: Sequence[Article], params: RelatedParams
) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """The training job's TF-IDF fit alone: the vectorizer and the L2-normalised rows."""
    fitted = vectorise(list(articles), make_vectorizer(params, len(articles)),
                       params.title_weight, duplicates=False)  # fmt: skip
    return fitted.vectorizer, fitted.tfidf
