"""`newsrec bench serve`'s output: the Markdown table and the QPS and latency plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.bench.machine import describe
from training.bench.serve import STREAMS
from training.workbench.report import pyplot


def markdown(results: dict[str, Any]) -> str:
    """The figures as a Markdown table, with our QPS as a fraction of the bare server's."""
    bare = {
        (r["processes"], r["concurrency"]): r["qps"]
        for r in results["runs"]
        if r["server"] == "bare"
    }
    lines = [
        f"Machine: {describe(results['machine'])}; corpus {results['articles']:,} articles.",
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
    plt = pyplot()

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
