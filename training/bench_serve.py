"""`newsrec bench serve`: our server against the framework's and the store's limits, same run.

Starts N server processes on one port (SO_REUSEPORT), drives them from a separate load-generator
process with Zipf-distributed article ids, then does the same against a bare grpc.aio server that
returns a constant answer, and runs redis-benchmark GET against the same Redis.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recommender.config import Settings
from recommender.embedded import resolve_redis_url
from recommender.store import Keys
from training.demo_data import DemoSpec, generate
from training.pipeline import TrainConfig, train


@dataclass
class ServeBenchConfig:
    """What to measure."""

    articles: int = 3000
    duration: float = 5.0
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 64])
    processes: list[int] = field(default_factory=lambda: [1, 2])
    stream_events: int = 200_000
    stream_batch: int = 1000
    """Events per StreamEventBatches message."""
    methods: list[str] = field(default_factory=lambda: ["GetRelated", "GetPopular", "RecordEvents"])


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_serving(target: str, timeout: float = 60.0, service: str = "") -> None:
    """Block until the health service answers SERVING (any answer for the bare server)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return  # the bare server has no health service, but it answers
                time.sleep(0.1)
    raise TimeoutError(f"no server answered on {target} within {timeout}s")


@contextmanager
def processes(commands: list[list[str]], target: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run server processes for the duration of the block."""
    procs = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands
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


def serve_command(port: int, redis_url: str, namespace: str) -> list[str]:
    """`newsrec serve` on a port, a Redis and a namespace, as a subprocess command."""
    return [sys.executable, "-m", "training.cli", "serve", "--port", str(port),
            "--redis-url", redis_url, "--namespace", namespace]  # fmt: skip


def drop_namespace(client: redis.Redis, namespace: str) -> None:
    """Delete a throwaway namespace's keys (SCAN + UNLINK, never KEYS)."""
    stale = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    for start in range(0, len(stale), 1000):
        client.unlink(*stale[start : start + 1000])


def load(
    target: str,
    method: str,
    ids_file: Path,
    concurrency: int,
    duration: float,
    events: int = 0,
    batch: int = 1000,
) -> dict[str, Any]:
    """One run of the load generator in its own process."""
    command = [
        sys.executable,
        "-m",
        "training.bench_load",
        "--target",
        target,
        "--method",
        method,
        "--ids",
        str(ids_file),
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--events",
        str(events),
        "--batch",
        str(batch),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


STREAMS = (("stream", "StreamEvents"), ("stream_batches", "StreamEventBatches"))
"""Result key and method of the two event streams: one event a message, or a batch a message."""


def streams(
    results: dict[str, Any],
    server: str,
    target: str,
    ids_file: Path,
    config: ServeBenchConfig,
    log: Any,
) -> None:
    """Events/s through StreamEvents and StreamEventBatches (each with its own sessions, so
    neither deduplicates the other); against the bare server, events/s it merely receives."""
    for key, method in STREAMS:
        row = load(
            target, method, ids_file, 0, 0, events=config.stream_events, batch=config.stream_batch
        )
        results[key if server == "newsrec" else f"bare_{key}"] = row
        per_message = f"{row['batch']:,} events a message" if row["batch"] else "1 event a message"
        log(
            f"  {server:8} {method} ({per_message}, {row['streams']} streams): "
            f"{row['accepted']:,} accepted in {row['seconds']:.1f}s = "
            f"{row['events_per_s']:,.0f} events/s"
        )


def redis_get_benchmark(url: str, requests: int = 200_000) -> float | None:
    """redis-benchmark GET requests/s against the same Redis (None if the tool is missing)."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return None
    parsed = urlparse(url)
    where = (
        ["-s", parsed.path]
        if parsed.scheme == "unix"
        else ["-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379)]
    )
    out = subprocess.run(
        [tool, *where, "-t", "get", "-n", str(requests), "-c", "50", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    ).stdout
    found = re.findall(r"GET: ([\d.]+) requests per second", out)
    return float(found[-1]) if found else None


def machine() -> str:
    """One line describing where the figures were measured."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"grpcio {grpc.__version__}, load average before the run {load[0]:.2f}"
    )


def run(settings: Settings, config: ServeBenchConfig, log: Any = print) -> dict[str, Any]:
    """Everything, returned as a dict (and printed as it goes)."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    namespace = f"bench-{secrets.token_hex(4)}"
    client = redis.Redis.from_url(url)
    results: dict[str, Any] = {"machine": machine(), "articles": config.articles, "runs": []}
    log(results["machine"])
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        generate(data, DemoSpec(articles=config.articles, clicks_per_article=2.0))
        train(
            TrainConfig(
                articles=data / "articles.jsonl",
                clicks=data / "clicks.jsonl",
                model_dir=data / "models",
                progress=False,
            ),
            client,
            Keys(namespace),
            log=lambda _m: None,
        )
        ids = [json.loads(line)["id"] for line in (data / "articles.jsonl").open()]
        ids_file = data / "ids.txt"
        ids_file.write_text("\n".join(ids))
        try:
            for count in config.processes:
                port = free_port()
                target = f"127.0.0.1:{port}"
                ours = [serve_command(port, url, namespace)] * count
                bare = [[sys.executable, "-m", "training.bench_bare", "--port", str(port)]] * count
                for name, commands in (("newsrec", ours), ("bare", bare)):
                    methods = config.methods if name == "newsrec" else ["GetRelated"]
                    with processes(commands, target):
                        for method in methods:
                            for c in config.concurrency:
                                row = load(target, method, ids_file, c, config.duration)
                                row.update(
                                    server=name, processes=count, method=method, concurrency=c
                                )
                                results["runs"].append(row)
                                log(
                                    f"  {name:8} x{count} {method:12} c={c:<3} "
                                    f"{row['qps']:8.0f} QPS  p50 {row['p50_ms']:.2f} ms  "
                                    f"p99 {row['p99_ms']:.2f} ms  errors {row['errors']}"
                                )
                        if count == config.processes[0] and config.stream_events:
                            streams(results, name, target, ids_file, config, log)
        finally:
            drop_namespace(client, namespace)
    results["redis_get_per_s"] = redis_get_benchmark(url)
    log(f"  redis-benchmark GET: {results['redis_get_per_s']} requests/s")
    return results


def markdown(results: dict[str, Any]) -> str:
    """The figures as a Markdown table, with our QPS as a fraction of the bare server's."""
    bare = {
        (r["processes"], r["concurrency"]): r["qps"]
        for r in results["runs"]
        if r["server"] == "bare"
    }
    lines = [
        f"Machine: {results['machine']}; corpus {results['articles']:,} articles.",
        "",
        "| server | procs | method | in flight | QPS | x bare | p50 ms | p95 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results["runs"]:
        ratio = (
            r["qps"] / bare[(r["processes"], r["concurrency"])]
            if r["method"] != ("RecordEvents") and (r["processes"], r["concurrency"]) in bare
            else float("nan")
        )
        lines.append(
            f"| {r['server']} | {r['processes']} | {r['method']} | {r['concurrency']} "
            f"| {r['qps']:,.0f} | {ratio:.2f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
            f"| {r['p99_ms']:.2f} |"
        )
    for key, method in STREAMS:
        stream = results.get(key)
        if not stream:
            continue
        floor = results.get(f"bare_{key}")
        per_message = f"{stream['batch']:,} events a message" if stream["batch"] else "one event"
        lines += [
            "",
            f"{method} ({per_message}, {stream['streams']} concurrent streams): "
            f"{stream['accepted']:,} events accepted into Redis in {stream['seconds']:.1f} s = "
            f"**{stream['events_per_s']:,.0f} events/s**"
            + (
                f"; bare server receiving them: {floor['events_per_s']:,.0f} events/s."
                if floor
                else "."
            ),
        ]
    lines += [
        "",
        f"redis-benchmark GET (50 clients, same Redis): "
        f"{results.get('redis_get_per_s') or 'n/a'} requests/s.",
    ]
    return "\n".join(lines)


def plots(results: dict[str, Any], directory: Path) -> list[Path]:
    """QPS vs in-flight calls, and latency percentiles, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    series: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for r in results["runs"]:
        name = f"{r['server']} {r['method']} x{r['processes']}"
        xs, qps, p99 = series.setdefault(name, ([], [], []))
        xs.append(r["concurrency"])
        qps.append(r["qps"])
        p99.append(r["p99_ms"])
    paths = []
    for index, (label, title) in enumerate(
        [
            ("QPS", "Throughput vs calls in flight"),
            ("p99 latency (ms)", "p99 latency vs calls in flight"),
        ]
    ):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name, (xs, qps, p99) in series.items():
            ax.plot(xs, qps if index == 0 else p99, marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("calls in flight")
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = directory / ("serve-qps.png" if index == 0 else "serve-p99.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def add_commands(benches: Any) -> dict[str, Any]:
    """Register `newsrec bench serve`; returns its handler by name."""
    p = benches.add_parser("serve", help="load-test the gRPC server against bare gRPC and Redis")
    p.add_argument("--config", type=Path, help="TOML settings file")
    p.add_argument("--redis-url", help="Redis URL (default $NEWSREC_REDIS_URL, else embedded)")
    p.add_argument("--articles", type=int, default=3000)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    p.add_argument("--concurrency", default="1,8,64", help="calls in flight, comma-separated")
    p.add_argument("--processes", default="1,2", help="server processes, comma-separated")
    p.add_argument(
        "--stream-events",
        type=int,
        default=200_000,
        help="events through StreamEvents and StreamEventBatches each (0 = skip both)",
    )
    p.add_argument("--stream-batch", type=int, default=1000, help="events a batched message")
    p.add_argument("--methods", default="GetRelated,GetPopular,RecordEvents")
    p.add_argument("--json", type=Path, help="also write the raw figures here")
    p.add_argument("--plots", type=Path, help="write QPS and latency plots into DIR")
    return {"serve": cmd_bench_serve}


def cmd_bench_serve(args: Any) -> int:
    """Handler of `newsrec bench serve`."""
    from recommender.config import load_settings

    settings = load_settings(args.config, overrides={"redis_url": args.redis_url})
    config = ServeBenchConfig(
        articles=args.articles,
        duration=args.duration,
        concurrency=[int(c) for c in args.concurrency.split(",")],
        processes=[int(p) for p in args.processes.split(",")],
        stream_events=args.stream_events,
        stream_batch=args.stream_batch,
        methods=args.methods.split(","),
    )
    results = run(settings, config)
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.plots:
        for path in plots(results, args.plots):
            print(f"wrote {path}")
    return 0
