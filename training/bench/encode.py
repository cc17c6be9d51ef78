"""`newsrec bench encode`: the encoder's speed on ONNX Runtime against torch, side by side.

Both run the same model on the same texts in the same process, alternating, with the same
thread count: one article at a time (an upsert's encode) and batches (a training run's). The
torch side is how sentence-transformers runs the model (transformers' AutoModel, mean pooling),
so the ratio is what the ONNX export buys. Texts are the project's demo corpus.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from recommender.encoder import BATCH, DEFAULT_MODEL, MAX_TOKENS, article_text, load_encoder
from recommender.encoder import model_path as find_model
from training.demo.generate import DemoSpec, generate
from training.sources.articles import read_articles


def _texts(count: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), DemoSpec(articles=count, clicks_per_article=0, seed=7))
        return [article_text(a) for a in read_articles(Path(tmp) / "articles.jsonl").articles]


def _torch_encoder(model: str, threads: int) -> Any:
    """sentence-transformers' computation through transformers on torch."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the bench's table is the output
    torch.set_num_threads(threads)
    folder = str(find_model(model))
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    network = AutoModel.from_pretrained(folder, local_files_only=True).eval()

    def encode(texts: list[str]) -> np.ndarray[Any, Any]:
        with torch.inference_mode():
            batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS,
                              return_tensors="pt")  # fmt: skip
            tokens = network(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1).numpy()

    return encode


def _measure(encode: Any, texts: list[str], singles: int) -> dict[str, float]:
    latencies = []
    for text in texts[:singles]:
        started = time.perf_counter()
        encode([text])
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        encode(texts[start : start + BATCH])
    batch_seconds = time.perf_counter() - started
    return {
        "one_p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "one_p99_ms": float(np.percentile(latencies, 99) * 1e3),
        "batch_per_s": len(texts) / batch_seconds,
    }


def run(articles: int, singles: int, threads: int, rounds: int, log: Any = print) -> dict[str, Any]:
    """Alternate the two runtimes `rounds` times; print a Markdown row per round and runtime."""
    texts = _texts(articles)
    ours = load_encoder(DEFAULT_MODEL, threads=threads)
    runtimes = {"onnxruntime": ours.encode, "torch": _torch_encoder(DEFAULT_MODEL, threads)}
    gap = float(np.abs(ours.encode(texts[:BATCH]) - runtimes["torch"](texts[:BATCH])).max())
    log(f"{len(texts)} demo texts, {MAX_TOKENS} tokens, {threads} thread(s); "
        f"largest vector difference between the runtimes {gap:.1e}")  # fmt: skip
    log("| round | runtime | one article p50 | p99 | batches of 32 |")
    log("| --- | --- | --- | --- | --- |")
    rows = []
    for round_ in range(1, rounds + 1):
        for name, encode in runtimes.items():
            figures = {"round": round_, "runtime": name, **_measure(encode, texts, singles)}
            rows.append(figures)
            log(f"| {round_} | {name} | {figures['one_p50_ms']:.1f} ms | "
                f"{figures['one_p99_ms']:.1f} ms | {figures['batch_per_s']:.1f} /s |")  # fmt: skip
    ratio = np.median(
        [r["batch_per_s"] for r in rows if r["runtime"] == "onnxruntime"]
    ) / np.median([r["batch_per_s"] for r in rows if r["runtime"] == "torch"])
    log(f"onnxruntime / torch, batch throughput (median of rounds): {ratio:.2f}x")
    return {"threads": threads, "texts": len(texts), "max_difference": gap, "rows": rows,
            "batch_ratio": float(ratio)}  # fmt: skip
