"""The Node.js example (examples/node) against a real server and Redis: a site backend in another
language must get the same answers as the Python stubs, send its write token, see a refused
write as a clear error, and read the standard health check. The test installs the npm packages
itself (`npm ci` from the committed lock file, into a temporary copy) and skips where node or
npm is missing or the npm registry cannot be reached."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from tests.corpus import write_corpus
from tests.helpers import ServerThread, eventually, make_certificates
from training.bench.processes import wait_serving
from training.pipeline import TrainConfig, train

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TOKENS = "ci=s3cret,old=0ther"
READY = "recommender.v1.Recommender"
OFFLINE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
           "EHOSTUNREACH", "ERR_SOCKET_TIMEOUT", "network request")  # fmt: skip


def npm_ci(folder: Path) -> None:
    """`npm ci` in folder; skip (saying why) when the registry cannot be reached. No install
    scripts: the only one in the lock file (protobufjs's postinstall) just prints a warning."""
    command = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
               "--fetch-retries=1", "--fetch-timeout=30000"]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.skip("npm ci did not finish in 240 s: is the npm registry reachable?")
    if done.returncode != 0:
        found = [line for line in done.stderr.splitlines() if any(c in line for c in OFFLINE)]
        if found:
            reason = next((line for line in found if "request to" in line), found[0])
            pytest.skip(f"npm cannot reach its registry: {reason.removeprefix('npm error ')}")
        pytest.fail(f"npm ci failed ({done.returncode}):\n{done.stderr}")


@pytest.fixture(scope="module")
def client_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """client.js in a temporary copy of examples/node beside a copy of protos/ (the layout the
    example expects), its packages installed from the lock file."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed for the Node.js client test (not on PATH)")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    major, minor = (int(n) for n in re.findall(r"\d+", version.stdout)[:2])
    if (major, minor) < (18, 3):
        pytest.skip(f"the Node.js example needs node >= 18.3 (util.parseArgs); found {version}")
    root = tmp_path_factory.mktemp("node-client")
    shutil.copytree(ROOT / "protos", root / "protos")
    example = root / "examples" / "node"
    shutil.copytree(ROOT / "examples" / "node", example,
                    ignore=shutil.ignore_patterns("node_modules"))  # fmt: skip
    npm_ci(example)
    return example / "client.js"


def node(script: Path, target: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the client with only the NEWSREC_* variables given (none from the caller's shell)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSREC_")}
    return subprocess.run(["node", str(script), "--target", target, *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The JSON objects the client printed, one a line."""
    return [json.loads(line) for line in done.stdout.splitlines()]


def train_into(tmp_path: Path, settings: Settings, client: redis.Redis) -> str:
    """Train the tiny corpus into the test's namespace; the published version."""
    articles, clicks = write_corpus(tmp_path)
    config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                         progress=False)  # fmt: skip
    return train(config, client, Keys(settings.namespace), log=lambda _m: None).version


@pytest.fixture
def guarded(
    tmp_path: Path, settings: Settings, client: redis.Redis
) -> Iterator[tuple[ServerThread, str]]:
    """A trained model served by a real server whose writes need a token."""
    version = train_into(tmp_path, settings, client)
    server = ServerThread(replace(settings, write_token=TOKENS))
    wait_serving(f"127.0.0.1:{server.port}", service=READY, timeout=10)
    yield server, version
    server.stop()


def test_node_client_reads_writes_and_checks_health(
    client_js: Path, guarded: tuple[ServerThread, str]
) -> None:
    """`all`: health, related, popular and one event, with the first NEWSREC_WRITE_TOKEN
    entry's secret; each answer equal to what the Python stubs get."""
    server, version = guarded
    target = f"127.0.0.1:{server.port}"
    expected_popular = server.stub.GetPopular(pb.GetPopularRequest(limit=5))  # before the click
    best = server.stub.GetRelated(pb.GetRelatedRequest(article_id="tech-05")).items[0].article_id
    done = node(client_js, target, "all", "tech-05", "--limit", "5", "--session", "reader-1",
                "--exclude", best, NEWSREC_WRITE_TOKEN=TOKENS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    health, related, popular, recorded = lines(done)
    assert [c["call"] for c in (health, related, popular, recorded)] == [
        "Health/Check", "GetRelated", "GetPopular", "RecordEvents"]  # fmt: skip
    assert health["response"] == {"status": "SERVING"}
    items = related["response"]["items"]
    asked = pb.GetRelatedRequest(article_id="tech-05", limit=5, exclude_ids=[best])
    expected = server.stub.GetRelated(asked)
    ids = [i["article_id"] for i in items]
    assert ids == [i.article_id for i in expected.items] and best not in ids
    assert len(ids) == 5 and all(i.startswith("tech-") for i in ids)
    assert [i["score"] for i in items] == pytest.approx([i.score for i in expected.items])
    assert related["response"]["model_version"] == version
    assert items[0]["url"].startswith("https://example.org/tech/") and items[0]["sections"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", items[0]["published_at"])
    top = [i["article_id"] for i in popular["response"]["items"]]
    assert top == [i.article_id for i in expected_popular.items] and top[0] == "tech-01"
    assert recorded["response"]["accepted"] == 1 and recorded["response"]["rejected"] == 0
    again = node(client_js, target, "record", "tech-05", "--session", "reader-1",
                 NEWSREC_CLIENT_TOKEN="0ther")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert lines(again)[0]["response"]["deduplicated"] == 1  # the same reader, the same story


def test_node_client_reports_refusals_clearly(
    client_js: Path, guarded: tuple[ServerThread, str]
) -> None:
    """No token, or a wrong one: UNAUTHENTICATED as JSON and on stderr, exit status 1; an
    unknown article NOT_FOUND the same way."""
    server, _ = guarded
    target = f"127.0.0.1:{server.port}"
    for env in ({}, {"NEWSREC_CLIENT_TOKEN": "s3cre"}, {"NEWSREC_WRITE_TOKEN": "ci=wrong"}):
        done = node(client_js, target, "record", "tech-05", **env)
        assert done.returncode == 1, (env, done.stdout, done.stderr)
        [error] = lines(done)
        assert error["call"] == "RecordEvents" and error["error"]["code"] == "UNAUTHENTICATED"
        assert "RecordEvents" in error["error"]["details"] and "write token" in done.stderr
        assert f"RecordEvents on {target} failed: UNAUTHENTICATED" in done.stderr
    missing = node(client_js, target, "related", "no-such-article")
    assert missing.returncode == 1 and lines(missing)[0]["error"]["code"] == "NOT_FOUND"


def test_node_client_over_tls(
    client_js: Path, tmp_path: Path, settings: Settings, client: redis.Redis
) -> None:
    """With NEWSREC_TLS_CA the client speaks TLS: NOT_SERVING (exit 3) before a model is
    published, SERVING after; plaintext to the same port fails with UNAVAILABLE."""
    certs = make_certificates(tmp_path / "certs")
    secure = replace(settings, tls_cert=str(certs.server_cert), tls_key=str(certs.server_key))
    server = ServerThread(secure)
    target, ca = f"localhost:{server.port}", {"NEWSREC_TLS_CA": str(certs.ca)}
    try:
        early = node(client_js, target, "health", **ca)
        assert early.returncode == 3, early.stderr
        assert lines(early)[0]["response"]["status"] == "NOT_SERVING"
        assert "not SERVING" in early.stderr
        train_into(tmp_path, settings, client)
        assert eventually(lambda: node(client_js, target, "health", **ca).returncode == 0, 10)
        done = node(client_js, target, "popular", "--section", "sport", **ca)
        assert done.returncode == 0, done.stderr
        assert [i["article_id"] for i in lines(done)[0]["response"]["items"]] == ["sport-02"]
        plain = node(client_js, target, "--deadline-ms", "3000", "health")
        assert plain.returncode == 1 and lines(plain)[0]["error"]["code"] == "UNAVAILABLE"
    finally:
        server.stop()
