"""`newsrec bench related`'s output: the printed report and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.workbench.report import pyplot


def _dask_lines(figures: dict[str, Any]) -> list[str]:
    """Each dask worker's peak beside the client's (none for a local run)."""
    dask = figures.get("dask")
    if not dask:
        return []
    peaks = dask["worker_peak_rss_mb"]
    where = f"LocalCluster of {dask['workers']}" if dask["workers"] else dask["scheduler"]
    lines = [f"dask ({where}): client peak {figures['peak_rss_mb']:,.0f} MB; worker peaks (VmHWM):"]
    lines += [f"  {address:<46}{mb:>10,.0f} MB" for address, mb in sorted(peaks.items())]
    starts = dask.get("worker_starts_by_stage", {})
    for stage, mbs in dask.get("worker_peaks_by_stage", {}).items():
        began = ", ".join(f"{mb:,.0f}" for mb in starts.get(stage, []))
        lines.append(f"  in {stage}: {', '.join(f'{mb:,.0f}' for mb in mbs)} MB (from {began})")
    return lines


def table(figures: dict[str, Any]) -> str:
    """The report printed at the end of a run."""
    cfg, q, m = figures["config"], figures["quality"], figures["machine"]
    lines = [
        f"bench related: {figures['articles']:,} articles ({figures['corpus']}), k={cfg['k']}, "
        f"method {cfg['method']} {cfg['knobs'] or '(default knobs)'}, {cfg['n_jobs']} threads, "
        f"{cfg.get('shards', 1)} shard(s)",
        f"machine: {m['cores']} cores {m['cpu']}, {m['memory_gb']} GB, Python {m['python']}, "
        f"numpy {m['numpy']}, scipy {m['scipy']}; load {m['load_before']} before, "
        f"{figures['load_after']} after",
        f"{'stage':<48}{'seconds':>10}",
    ]
    for name, seconds in figures["stages"].items():
        lines.append(f"  {name:<46}{'reused' if seconds is None else f'{seconds:.1f}':>10}")
    lines += [
        f"  {'end to end (all but generate)':<46}{figures['end_to_end_seconds']:>10.1f}",
        f"peak RSS {figures['peak_rss_mb']:,.0f} MB (this process, exact); with its worker "
        f"processes (PSS, sampled every 0.5-6 s): {figures.get('peak_tree_rss_mb', 0):,.0f} MB",
        *_dask_lines(figures),
        f"quality on {q['sample']:,} sampled queries, exact = sklearn brute cosine, same vectors:",
        f"  recall@10 {q['recall@10']:.4f}   recall@{cfg['k']} {q['recall@k']:.4f}   "
        f"P@10 (same section) exact {q['p@10_exact']:.4f} ours {q['p@10_ours']:.4f}",
        f"sklearn NearestNeighbors(metric=cosine, algorithm=brute): {q['sample']:,} queries in "
        f"{q['sklearn_seconds_sample']:.1f} s -> {q['sklearn_seconds_extrapolated']:,.1f} s for "
        f"all {figures['articles']:,} (extrapolated)",
        f"speedup: {figures['speedup']:.1f}x (sklearn extrapolated / our neighbours stage "
        f"{figures['neighbours_seconds']:.1f} s)",
    ]
    for row in q["sweep"]:
        lines.append("  sweep " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Time vs N (ours and sklearn extrapolated) and recall vs each swept knob, as PNGs."""
    plt = pyplot()

    charts = []
    if runs:
        sized = sorted(runs, key=lambda r: int(r["articles"]))
        sizes = [r["articles"] for r in sized]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(sizes, [r["neighbours_seconds"] for r in sized], "o-", label="ours (pruned)")
        brute = [r["quality"]["sklearn_seconds_extrapolated"] for r in sized]
        ax.loglog(sizes, brute, "s--", label="sklearn brute cosine (extrapolated)")
        ax.set(xlabel="articles", ylabel="seconds, top-k of every article")
        charts.append((fig, ax, "related-time-vs-n.png"))
    for figures in runs:
        rows = figures["quality"]["sweep"]
        for knob in dict.fromkeys(next(iter(row)) for row in rows):  # each knob once, in order
            picked = [row for row in rows if knob in row]
            fig, ax = plt.subplots(figsize=(6, 4))
            values = [row[knob] for row in picked]
            for metric, style in (("recall@10", "o-"), ("recall@k", "s-")):
                ax.plot(values, [row[metric] for row in picked], style, label=metric)
            for row in picked:  # what each setting cost
                ax.annotate(f"{row['seconds']:.0f} s", (row[knob], row["recall@10"]), fontsize=7)
            ax.set(xlabel=knob, ylabel="recall vs exact", ylim=(0, 1.02),
                   title=f"{figures['articles']:,} articles")  # fmt: skip
            charts.append((fig, ax, f"related-recall-vs-{knob}.png"))
    out_dir.mkdir(parents=True, exist_ok=True)
    for fig, ax, name in charts:
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
    return [out_dir / name for _, _, name in charts]
