"""Processes of the benchmarks: servers started as `newsrec serve` subprocesses, waited for on
their health service, and throwaway Redis namespaces with a trained demo model in them."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recommender.store.keys import Keys
from training.demo.generate import DemoSpec, generate
from training.pipeline import TrainConfig, train


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_serving(target: str, timeout: float = 60.0, service: str = "", poll: float = 0.1) -> None:
    """Block until the health service answers SERVING (any answer for the bare server)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return  # the bare server has no health service, but it answers
            time.sleep(poll)
    raise TimeoutError(f"no server answered on {target} within {timeout}s")


@contextmanager
def processes(
    commands: list[list[str]], target: str, envs: list[dict[str, str]] | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run server processes (each with its own environment, if given) for the block."""
    procs = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for c, env in zip(commands, envs or [None] * len(commands), strict=True)  # type: ignore[list-item]
    ]
    try:
        wait_serving(target)
        time.sleep(0.5)  # let every process of a SO_REUSEPORT group finish binding
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def serve_command(port: int, redis_url: str, namespace: str, role: str = "all") -> list[str]:
    """`newsrec serve` on a port, a Redis and a namespace, as a subprocess command."""
    return [sys.executable, "-m", "newsrec.cli", "serve", "--port", str(port),
            "--redis-url", redis_url, "--namespace", namespace, "--role", role]  # fmt: skip


def drop_namespace(client: redis.Redis, namespace: str) -> None:
    """Delete a throwaway namespace's keys (SCAN + UNLINK, never KEYS)."""
    stale = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    for start in range(0, len(stale), 1000):
        client.unlink(*stale[start : start + 1000])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (or another /proc status field, e.g. VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_mb(pid: int) -> dict[str, float]:
    """A process's resident memory in MB: all of it (rss), its own (anon: heap and private
    arrays), mapped files (file: shared page cache, reclaimable), and its peak (hwm)."""
    fields = {"rss": "VmRSS", "anon": "RssAnon", "file": "RssFile", "hwm": "VmHWM"}
    return {name: rss_mb(pid, field) for name, field in fields.items()}


def scrape_histograms(port: int, name: str) -> dict[str, dict[str, float]]:
    """Count, sum and mean (ms) of each label value of a histogram on a /metrics port."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (f"{name}_count", f"{name}_sum"):
                label = next(iter(sample.labels.values()), "")
                found.setdefault(label, {})[sample.name.rsplit("_", 1)[1]] = sample.value
    for values in found.values():
        values["mean_ms"] = 1000 * values.get("sum", 0.0) / max(values.get("count", 0.0), 1.0)
    return found


@dataclass(frozen=True)
class TrainedDemo:
    """A demo corpus trained and published into a throwaway namespace."""

    namespace: str
    folder: Path
    """Holds articles.jsonl (and clicks.jsonl) of the corpus."""


@contextmanager
def trained_demo(client: redis.Redis, spec: DemoSpec, clicks: bool = True) -> Iterator[TrainedDemo]:
    """Generate the demo corpus, train and publish it into a fresh namespace; the namespace
    and the files are deleted when the block ends, whatever happened."""
    namespace = f"bench-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            generate(folder, spec)
            config = TrainConfig(
                articles=folder / "articles.jsonl",
                clicks=(folder / "clicks.jsonl") if clicks else None,
                model_dir=folder / "models",
                progress=False,
            )
            train(config, client, Keys(namespace), log=lambda _m: None)
            yield TrainedDemo(namespace, folder)
        finally:
            drop_namespace(client, namespace)
